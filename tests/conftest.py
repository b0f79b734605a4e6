"""Shared test configuration: each test is marked by the folder it lives in."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_CATEGORIES = ("unit", "integration", "e2e", "reliability")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for category in _CATEGORIES:
            if category in parts:
                item.add_marker(getattr(pytest.mark, category))


class _Tee(io.TextIOBase):
    """Log output to stderr (whatever it is now: pytest swaps it) and to every buffer listed."""

    def __init__(self) -> None:
        self.buffers: list[io.StringIO] = []

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        for buffer in self.buffers:
            buffer.write(text)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


#: Every test's log lines go through here (qsysd's structlog and the stdlib's handlers alike).
_LOG = _Tee()


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> None:
    """Library code logs through structlog; keep it on stderr as the daemon does."""
    from qsysd.logs import configure_logging

    configure_logging("debug", "console", stream=_LOG)


@pytest.fixture
def log_text(_logs_to_stderr: None) -> Iterator[Callable[[], str]]:
    """What qsysd logs during the test, as JSON lines: ``log_text()`` reads it so far."""
    from qsysd.logs import configure_logging

    stream = io.StringIO()
    _LOG.buffers.append(stream)
    configure_logging("debug", "json", stream=_LOG)
    try:
        yield stream.getvalue
    finally:
        _LOG.buffers.remove(stream)
        configure_logging("debug", "console", stream=_LOG)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(_logs_to_stderr: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test: no API token it created and no secret it revealed is in a log line.

    (Daemons run as subprocesses check their own log lines in their tests.)
    """
    from qsysd.access import TokenStore
    from qsysd.config import Secret

    seen: set[str] = set()
    reveal, create = Secret.reveal, TokenStore.create

    def revealing(self: Secret) -> str:
        value = reveal(self)
        if len(value) >= 4:  # shorter values would match ordinary words
            seen.add(value)
        return value

    def creating(self: TokenStore, *args: Any, **kwargs: Any) -> str:
        token = create(self, *args, **kwargs)
        seen.add(token)
        return token

    monkeypatch.setattr(Secret, "reveal", revealing)
    monkeypatch.setattr(TokenStore, "create", creating)
    written = io.StringIO()
    _LOG.buffers.append(written)
    try:
        yield
    finally:
        _LOG.buffers.remove(written)
    for line in written.getvalue().splitlines():
        leaked = [s for s in seen if s in line]
        for secret in leaked:
            line = line.replace(secret, "<SECRET>")
        assert not leaked, f"a secret is in a log line: {line[:300]}"
