"""Outside services a test needs (redis-server, mosquitto, a browser, the MCP Inspector).

Locally a missing one skips the test, saying which and how to get it; under ``CI=true`` it
fails it, so CI (``.ci/run`` installs them all) never loses a test silently.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "require_service"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_service(name: str, *, how: str, found: str | None = None) -> str:
    """The service's path (``found``, else ``name`` looked up on PATH); skip or fail if none.

    ``how`` says how to get it, e.g. ``"apt-get install redis-server"``.
    """
    path = found if found is not None else shutil.which(name)
    if path:
        return path
    message = f"{name} is not available; to run this test: {how}"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)
