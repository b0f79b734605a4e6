"""The reliability suite: faults, hostile input, crashes and a soak, recorded for the docs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _record import ReliabilityRecord, record_path

_SESSION_RECORD = ReliabilityRecord()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[ReliabilityRecord]:
    """Record what this test tried; kept only if the test passes."""
    mine = ReliabilityRecord()
    yield mine
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        _SESSION_RECORD.trials.extend(mine.trials)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _SESSION_RECORD.trials:
        _SESSION_RECORD.write(record_path())
