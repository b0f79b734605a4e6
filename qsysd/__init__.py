"""qsysd: discover and control QSC Q-SYS audio systems from AI agents (MCP) and software."""

from __future__ import annotations

# Not `typing`: importing it costs the early stdio door (qsysd._early) about 10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    __version__: str

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Resolved on first use: importlib.metadata costs more than the early stdio door may spend.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("qsysd")
        except PackageNotFoundError:  # running from a source tree that was never installed
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
