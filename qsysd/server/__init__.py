"""Front ends: MCP over stdio (here) and HTTP (the integrator's), built from the registry."""

from qsysd.server._http import HttpFrontEnd as HttpFrontEnd
from qsysd.server._mcp import (
    INSTRUCTIONS as INSTRUCTIONS,
    QsysMcp as QsysMcp,
    QsysMcpServer as QsysMcpServer,
    build_mcp_server as build_mcp_server,
)
from qsysd.server._stdio import serve_stdio as serve_stdio

__all__ = [
    "INSTRUCTIONS",
    "HttpFrontEnd",
    "QsysMcp",
    "QsysMcpServer",
    "build_mcp_server",
    "serve_stdio",
]
