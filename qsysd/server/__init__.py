"""Front ends: MCP over stdio (here) and HTTP (the integrator's), built from the registry.

``HttpFrontEnd`` (Quart, Hypercorn) is imported on first use, so a stdio-only daemon never
loads the HTTP stack; the SDK's package initialisers are deferred (see ``_sdk``).
"""

from typing import TYPE_CHECKING, Any

from qsysd.server._sdk import defer_package_inits

defer_package_inits()

from qsysd.server._mcp import (  # noqa: E402  (after the deferral)
    INSTRUCTIONS as INSTRUCTIONS,
    QsysMcp as QsysMcp,
    QsysMcpServer as QsysMcpServer,
    build_mcp_server as build_mcp_server,
)
from qsysd.server._stdio import serve_stdio as serve_stdio  # noqa: E402

if TYPE_CHECKING:
    from qsysd.server._http import HttpFrontEnd as HttpFrontEnd

__all__ = [
    "INSTRUCTIONS",
    "HttpFrontEnd",
    "QsysMcp",
    "QsysMcpServer",
    "build_mcp_server",
    "serve_stdio",
]


def __getattr__(name: str) -> Any:
    if name == "HttpFrontEnd":
        from qsysd.server._http import HttpFrontEnd

        return HttpFrontEnd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
