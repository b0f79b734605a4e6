"""Shared test configuration: each test is marked by the folder it lives in."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_CATEGORIES = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for category in _CATEGORIES:
            if category in parts:
                item.add_marker(getattr(pytest.mark, category))


@pytest.fixture(autouse=True, scope="session")
def _logs_to_stderr() -> None:
    """Library code logs through structlog; keep it on stderr as the daemon does."""
    from qsysd.logs import configure_logging

    configure_logging("debug", "console")


@pytest.fixture
def log_text() -> Iterator[Callable[[], str]]:
    """What qsysd logs during the test, as JSON lines: ``log_text()`` reads it so far."""
    from qsysd.logs import configure_logging

    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    try:
        yield stream.getvalue
    finally:
        configure_logging("debug", "console")
