"""The state folder: a default that works wherever qsysd starts, and a check that it is usable."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qsysd._state_folder import default_state_dir as default_state_dir
from qsysd.errors import describe_os_error

if TYPE_CHECKING:
    from qsysd.config._model import StateConfig

__all__ = ["default_state_dir", "state_dir_problem", "uses_state_dir"]


def uses_state_dir(state: StateConfig) -> bool:
    """Whether the daemon writes to ``state.dir`` (file snapshots or the journal)."""
    return state.backend == "file" or state.journal


def state_dir_problem(directory: str) -> str | None:
    """Create ``directory`` if needed and write a file in it; None when that works.

    Otherwise one line saying what failed and what to do, for ``config check`` and start-up.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"state.dir: the state folder {directory!r} cannot be created: "
            f"{describe_os_error(exc)}; set state.dir to a folder this user may write"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".qsysd-write-check-"):
            pass
    except OSError as exc:
        return (
            f"state.dir: the state folder {directory!r} is not writable: "
            f"{describe_os_error(exc)}; set state.dir to a folder this user may write, or fix "
            "its permissions"
        )
    return None
