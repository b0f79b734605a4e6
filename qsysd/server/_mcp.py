"""The MCP server: the registry's tools and prompts, and live resources, on mcp's low-level Server.

The low-level ``Server`` is used (not ``MCPServer``) for exact schemas from the registry,
paging, and full control of errors: every failure of a tool becomes an ``isError`` result
with a specific message; nothing escapes as a bare "Error executing tool". The resources and
their subscriptions, for both protocol eras, are in ``_resources``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import mcp_types as types
import structlog
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from qsysd import __version__
from qsysd.access import CallPath, Principal
from qsysd.errors import LookupFailed, describe
from qsysd.plugins import Tool
from qsysd.server._common import page, to_json
from qsysd.server._resources import LiveResources

__all__ = [
    "INSTRUCTIONS",
    "QsysMcp",
    "QsysMcpServer",
    "ToolAnswer",
    "build_mcp_server",
]

log = structlog.get_logger(__name__)

INSTRUCTIONS = (
    "qsysd controls QSC Q-SYS audio systems. Start with qsys_summary (zones and levels) or "
    "qsys_status (Cores). Find controls from plain words with qsys_find_controls, read with "
    "qsys_get, change with qsys_set (gains in dB, mutes true/false, optional ramp seconds). "
    "Writes are checked by a safety policy: a refused write names the rule; ask the user "
    "before retrying a large gain change with confirm: true."
)

#: Who calls through one MCP server: fixed (stdio), or a function of the request (HTTP).
PrincipalSource = Principal | Callable[[ServerRequestContext[Any, Any]], Principal]


@attrs.frozen
class ToolAnswer:
    """What a ``tools/call`` answers before it is shaped: the tool's output, or why not."""

    output: dict[str, Any] | None
    error: str | None = None

    def result(self) -> types.CallToolResult:
        """The SDK's result: the output as structured content and as its JSON text."""
        if self.error is not None:
            return types.CallToolResult(content=[types.TextContent(text=self.error)], is_error=True)
        return types.CallToolResult(
            content=[types.TextContent(text=to_json(self.output))], structured_content=self.output
        )


def _tool_type(tool: Tool) -> types.Tool:
    hints = tool.annotations()
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
        annotations=types.ToolAnnotations(
            title=hints["title"],
            read_only_hint=hints["readOnlyHint"],
            destructive_hint=hints["destructiveHint"],
            idempotent_hint=hints["idempotentHint"],
            open_world_hint=hints["openWorldHint"],
        ),
    )


class QsysMcp:
    """The handlers behind one MCP ``Server``: tools and prompts here, ``resources`` beside."""

    def __init__(
        self,
        calls: CallPath,
        *,
        principal: PrincipalSource,
        page_size: int = 100,
        status_interval: float = 1.0,
    ) -> None:
        self.calls = calls
        self.api = calls.api
        self.registry = calls.registry
        self._principal = principal
        self.page_size = page_size
        self.resources = LiveResources(
            calls.api,
            page_size=page_size,
            status_interval=status_interval,
            registry=calls.registry,
            principal=lambda ctx: self.principal(ctx).name,
        )

    def principal(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        if isinstance(self._principal, Principal):
            return self._principal
        return self._principal(ctx)

    # tools ----------------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools, cursor = page(
            self.calls.tools(self.principal(ctx)), params.cursor if params else None, self.page_size
        )
        return types.ListToolsResult(tools=[_tool_type(t) for t in tools], next_cursor=cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # Over HTTP the gateway's X-Request-Id names the request; over stdio the JSON-RPC id.
        scope = getattr(ctx.request, "scope", None)
        http_id = scope.get("qsysd.request_id") if isinstance(scope, dict) else None
        request_id = str(http_id) if http_id is not None else str(ctx.request_id)
        return await self.run_tool(
            self.principal(ctx), params.name, params.arguments, request_id=request_id
        )

    async def run_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        request_id: str,
    ) -> types.CallToolResult:
        """The ``tools/call`` result for ``principal``."""
        answer = await self.answer_tool(principal, name, arguments, request_id=request_id)
        return answer.result()

    async def answer_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        request_id: str,
    ) -> ToolAnswer:
        """:meth:`run_tool` before the SDK's result is built (the stdio lean path shapes it)."""
        try:
            output = await self.calls.call_tool(principal, name, arguments, request_id=request_id)
        except Exception as exc:  # every failure is an isError result the agent can act on
            return ToolAnswer(None, describe(exc, tool=name).detail)
        return ToolAnswer(output)

    @property
    def fixed_principal(self) -> Principal | None:
        """The one caller of every request (stdio), or None when it depends on the request."""
        return self._principal if isinstance(self._principal, Principal) else None

    def tool_input_schema(self, name: str) -> dict[str, Any] | None:
        try:
            return self.registry.tool(name).input_schema
        except LookupFailed:
            return None

    # prompts --------------------------------------------------------------------------------

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts, cursor = page(
            self.registry.prompts(), params.cursor if params else None, self.page_size
        )
        return types.ListPromptsResult(
            prompts=[
                types.Prompt(
                    name=p.name,
                    title=p.title,
                    description=p.description,
                    arguments=[
                        types.PromptArgument(
                            name=a.name, description=a.description, required=a.required
                        )
                        for a in p.arguments
                    ],
                )
                for p in prompts
            ],
            next_cursor=cursor,
        )

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        try:
            prompt = self.registry.prompt(params.name)
        except LookupFailed as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        arguments = dict(params.arguments or {})
        missing = [a.name for a in prompt.arguments if a.required and not arguments.get(a.name)]
        if missing:
            raise MCPError(
                types.INVALID_PARAMS,
                f"prompt {prompt.name!r} needs the argument(s): {', '.join(missing)}",
            )
        return types.GetPromptResult(
            description=prompt.description,
            messages=[
                types.PromptMessage(
                    role="user", content=types.TextContent(text=prompt.render(arguments))
                )
            ],
        )


class QsysMcpServer(Server[Any]):
    """mcp's low-level Server, with ``qsys``: the handlers and subscription state behind it."""

    qsys: QsysMcp


def build_mcp_server(
    calls: CallPath,
    *,
    principal: PrincipalSource,
    name: str = "qsysd",
    page_size: int = 100,
    watch: bool = True,
    instructions: str = INSTRUCTIONS,
) -> QsysMcpServer:
    """An MCP server for the call path's tools and prompts, serving both protocol eras.

    ``principal`` is the caller (fixed, or a function of the request context, e.g. from the
    HTTP access token). With ``watch`` the server notifies resource subscribers while it runs.
    """
    handlers = QsysMcp(calls, principal=principal, page_size=page_size)
    resources = handlers.resources

    @asynccontextmanager
    async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        if not watch:
            yield {}
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resources.watch_changes)
            try:
                yield {}
            finally:
                resources.listen.close()
                nursery.cancel_scope.cancel()

    server = QsysMcpServer(
        name,
        version=__version__,
        title="qsysd: Q-SYS control for AI agents",
        instructions=instructions,
        lifespan=lifespan,
        get_tool_input_schema=handlers.tool_input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_prompts=handlers.list_prompts,
        on_get_prompt=handlers.get_prompt,
        on_list_resources=resources.list_resources,
        on_list_resource_templates=resources.list_resource_templates,
        on_read_resource=resources.read_resource,
        on_subscribe_resource=resources.subscribe,
        on_unsubscribe_resource=resources.unsubscribe,
        on_subscriptions_listen=resources.listen,
    )
    server.qsys = handlers
    return server
