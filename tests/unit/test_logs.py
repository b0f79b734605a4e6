"""Logging: JSON lines on the given stream, context carried, secrets never written."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from qsysd.logs import HotLogger, bound_context, configure_logging, get_logger


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_event_fields_and_context() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    with bound_context(request_id="r-1", core="main"):
        get_logger("t").info("core.connected", host="h")
    get_logger("t").info("core.outside")
    record, outside = lines(stream)
    assert "request_id" not in outside  # the context ends with the block
    assert record["event"] == "core.connected"
    assert record["host"] == "h"
    assert record["request_id"] == "r-1"
    assert record["core"] == "main"
    assert record["level"] == "info"


def test_level_filters_debug() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    get_logger("t").info("quiet")
    get_logger("t").warning("loud")
    assert [r["event"] for r in lines(stream)] == ["loud"]


def test_secret_is_redacted_everywhere() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", secrets=["hunter2"], stream=stream)
    log = get_logger("t")
    log.info("logon failed for hunter2", password="hunter2", nested={"x": ["a hunter2 b"]})
    logging.getLogger("foreign").warning("stdlib says hunter2")
    try:
        raise ValueError("bad pin hunter2")
    except ValueError:
        log.exception("boom")
    text = stream.getvalue()
    assert "hunter2" not in text
    assert text.count("***") >= 5


def test_console_format_is_readable() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    get_logger("t").info("core.connected", core="main")
    out = stream.getvalue()
    assert "core.connected" in out and "core=main" in out
    assert not out.lstrip().startswith("{")


def test_a_hot_logger_follows_each_configuration_and_capture_logs() -> None:
    log = HotLogger("t.hot")
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    log.info("one")
    configure_logging("warning", "json", stream=second)  # a new stream and level
    log.info("filtered")
    log.warning("two")
    with structlog.testing.capture_logs() as captured:
        log.warning("captured")
    log.error("three")
    assert [r["event"] for r in lines(first)] == ["one"]
    assert [r["event"] for r in lines(second)] == ["two", "three"]
    assert [e["event"] for e in captured] == ["captured"]


def test_bound_context_restores_outer_values_and_unsets_its_own() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    log = HotLogger("t.ctx")
    with bound_context(request_id="outer"):
        with bound_context(request_id="inner", door="stdio"):
            log.info("inside")
        log.info("after_inner")
        with pytest.raises(ValueError), bound_context(request_id="failing"):
            raise ValueError("boom")
        log.info("after_error")
    log.info("outside")
    inside, after_inner, after_error, outside = lines(stream)
    assert (inside["request_id"], inside["door"]) == ("inner", "stdio")
    assert after_inner["request_id"] == "outer" and "door" not in after_inner
    assert after_error["request_id"] == "outer"
    assert "request_id" not in outside and "door" not in outside
