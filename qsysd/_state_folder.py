"""Where the state folder is by default: stdlib only, so the early stdio door can use it."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_state_dir"]

APP = "qsysd"


def default_state_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> str:
    """Where qsysd keeps its snapshot and journal when ``state.dir`` is not set.

    ``$STATE_DIRECTORY`` under systemd (``StateDirectory=qsysd``; the first of several), else
    the per-user state folder: ``$XDG_STATE_HOME/qsysd`` or ``~/.local/state/qsysd`` (Linux
    and other Unix), ``~/Library/Application Support/qsysd`` (macOS),
    ``%LOCALAPPDATA%\\qsysd`` (Windows). Never relative to the working directory, which an
    MCP client chooses.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "win32":  # no systemd; and ':' belongs to drive letters there
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local else _home(env) / "AppData" / "Local"
        return str(base / APP)
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]  # systemd lists several with ':'
    if systemd:
        return systemd
    if platform == "darwin":
        return str(_home(env) / "Library" / "Application Support" / APP)
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if os.path.isabs(xdg) else _home(env) / ".local" / "state"
    return str(base / APP)


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else Path.home()
