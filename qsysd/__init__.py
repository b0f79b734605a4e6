"""qsysd: discover and control QSC Q-SYS audio systems from AI agents (MCP) and software."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qsysd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
