"""Shared test configuration: each test is marked by the folder it lives in."""

from __future__ import annotations

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
