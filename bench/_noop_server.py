"""The baseline: a bare MCP SDK low-level server with one no-op tool over the SDK's own stdio.

Run as ``python -m bench._noop_server``; it answers ``tools/list`` with one tool, ``noop``,
and every ``tools/call`` with the text ``ok``. Nothing else happens per call, so its latency
is the SDK's and the stdio transport's own cost.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

NOOP = types.Tool(
    name="noop", description="Does nothing.", input_schema={"type": "object", "properties": {}}
)


async def _list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[NOOP])


async def _call_tool(ctx: Any, params: Any) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text="ok")])


async def main() -> None:
    server: Server[Any] = Server("noop", on_list_tools=_list_tools, on_call_tool=_call_tool)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    trio.run(main)
