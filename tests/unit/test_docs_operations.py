"""docs/operations.md stays true: its log reference is the code's events, its files exist."""

from __future__ import annotations

import ast
import re

from _contrib import OPERATIONS, ROOT, documented_log_events

LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
EVENT = re.compile(r"^[a-z][a-z_]*\.[a-z_.]+$")


def logged_events() -> set[str]:
    """Every event name qsysd passes to a structlog call (``log.info("core.connected", ...)``)."""
    found = set()
    for path in sorted((ROOT / "qsysd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and EVENT.match(node.args[0].value)
            ):
                found.add(node.args[0].value)
    return found


def test_the_log_reference_lists_every_event_the_code_logs() -> None:
    logged, documented = logged_events(), documented_log_events()
    assert len(logged) > 50, "the scan finds the log calls"
    assert logged - documented == set(), "logged but missing from docs/operations.md"
    assert documented - logged == set(), "in docs/operations.md but never logged"


def test_every_file_the_guide_names_exists() -> None:
    text = OPERATIONS.read_text()
    named = set(re.findall(r"`((?:contrib|scripts|tests)/[\w./-]+)`", text))
    named |= set(re.findall(r"\b(contrib/[\w./-]*\w)", text))
    assert len(named) > 10
    for path in sorted(named):
        assert (ROOT / path).exists(), f"docs/operations.md names {path}, which does not exist"
