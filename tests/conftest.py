"""Shared test configuration: each test is marked by the folder it lives in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(autouse=True)
def _no_secret_in_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
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
    yield
    for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
        line = record.getMessage()
        leaked = [s for s in seen if s in line]
        for secret in leaked:
            line = line.replace(secret, "<SECRET>")
        assert not leaked, f"a secret is in a log line of {record.name}: {line[:300]}"
