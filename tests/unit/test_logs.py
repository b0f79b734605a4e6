"""Logging: JSON lines on the given stream, context carried, secrets never written."""

from __future__ import annotations

import io
import json
import logging

from qsysd.logs import bound_context, configure_logging, get_logger


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
