"""qsysd: discover and control QSC Q-SYS audio systems from AI agents (MCP) and software."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
