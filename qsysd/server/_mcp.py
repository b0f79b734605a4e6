"""The MCP server: the registry's tools and prompts, and live resources, on mcp's low-level Server.

The low-level ``Server`` is used (not ``MCPServer``) for exact schemas from the registry,
paging, and full control of errors: every failure of a tool becomes an ``isError`` result
with a specific message; nothing escapes as a bare "Error executing tool". The resources and
their subscriptions, for both protocol eras, are in ``_resources``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import structlog
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from qsysd import __version__
from qsysd.api import QsysApi
from qsysd.errors import (
    CoreError,
    LookupFailed,
    PolicyViolation,
    QsysdError,
    ToolInputError,
)
from qsysd.logs import bound_context
from qsysd.plugins import PERMISSIONS, Permission, PermissionDenied, Registry, Tool, ToolContext
from qsysd.server._common import page, to_json
from qsysd.server._resources import LiveResources

__all__ = [
    "INSTRUCTIONS",
    "QsysMcp",
    "QsysMcpServer",
    "build_mcp_server",
    "tool_error_message",
]

log = structlog.get_logger(__name__)

INSTRUCTIONS = (
    "qsysd controls QSC Q-SYS audio systems. Start with qsys_summary (zones and levels) or "
    "qsys_status (Cores). Find controls from plain words with qsys_find_controls, read with "
    "qsys_get, change with qsys_set (gains in dB, mutes true/false, optional ramp seconds). "
    "Writes are checked by a safety policy: a refused write names the rule; ask the user "
    "before retrying a large gain change with confirm: true."
)

PrincipalSource = str | Callable[[ServerRequestContext[Any, Any]], str]
PermissionSource = Collection[Permission] | Callable[[str], Collection[Permission]]


def tool_error_message(exc: BaseException, tool: str) -> str:
    """The message an agent reads when a tool fails: what happened and what to do."""
    if isinstance(exc, LookupFailed):
        return f"{exc}. Use qsys_find_controls or qsys_list_components to find the right name."
    if isinstance(exc, PolicyViolation):
        return str(exc)
    if isinstance(exc, ToolInputError):
        return f"{exc}. See the inputSchema of {tool}."
    if isinstance(exc, PermissionDenied):
        return str(exc)
    if isinstance(exc, CoreError):
        hint = "it may succeed later" if exc.retryable else "do not retry it unchanged"
        return f"{exc} ({type(exc).__name__}; {hint}). qsys_status shows the Core's state."
    if isinstance(exc, QsysdError):
        return str(exc)
    return (
        f"internal error in {tool}: {type(exc).__name__}: {exc}. This is a bug in qsysd or a "
        "plugin; the request was not completed."
    )


def _error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


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
        api: QsysApi,
        registry: Registry,
        *,
        principal: PrincipalSource = "stdio",
        permissions: PermissionSource = PERMISSIONS,
        page_size: int = 100,
        status_interval: float = 1.0,
    ) -> None:
        self.api = api
        self.registry = registry
        self._principal = principal
        self._permissions = permissions
        self.page_size = page_size
        self.resources = LiveResources(
            api,
            page_size=page_size,
            status_interval=status_interval,
            registry=registry,
            principal=self.principal,
        )

    # identity -------------------------------------------------------------------------------

    def principal(self, ctx: ServerRequestContext[Any, Any]) -> str:
        if isinstance(self._principal, str):
            return self._principal
        return self._principal(ctx)

    def permissions(self, principal: str) -> Collection[Permission]:
        if callable(self._permissions):
            return self._permissions(principal)
        return self._permissions

    # tools ----------------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools, cursor = page(
            self.registry.tools(), params.cursor if params else None, self.page_size
        )
        return types.ListToolsResult(tools=[_tool_type(t) for t in tools], next_cursor=cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # Every log line of this call (core link, journal, ...) carries the request id.
        with bound_context(request_id=str(ctx.request_id)):
            return await self._call_tool(ctx, params)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name = params.name
        started = time.perf_counter()
        principal = "unknown"
        try:
            principal = self.principal(ctx)
            output = await self.registry.call_tool(
                name,
                params.arguments,
                ToolContext(self.api, principal),
                permissions=self.permissions(principal),
            )
        except Exception as exc:  # every failure is an isError result the agent can act on
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            if isinstance(exc, QsysdError):
                log.info("tool.failed", tool=name, principal=principal, error=str(exc)[:200],
                         duration_ms=duration_ms)  # fmt: skip
            else:
                log.exception("tool.crashed", tool=name, principal=principal)
            return _error_result(tool_error_message(exc, name))
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        log.info("tool.called", tool=name, principal=principal, duration_ms=duration_ms)
        return types.CallToolResult(
            content=[types.TextContent(text=to_json(output))], structured_content=output
        )

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
    api: QsysApi,
    registry: Registry,
    *,
    name: str = "qsysd",
    principal: PrincipalSource = "stdio",
    permissions: PermissionSource = PERMISSIONS,
    page_size: int = 100,
    watch: bool = True,
    instructions: str = INSTRUCTIONS,
) -> QsysMcpServer:
    """An MCP server for ``registry``'s tools and prompts over ``api``, serving both eras.

    ``principal`` names the caller (a string, or a function of the request context, e.g. from
    the HTTP access token); ``permissions`` is what that principal may do (a collection, or a
    function of the principal). With ``watch`` the server notifies resource subscribers while
    a connection is open.
    """
    handlers = QsysMcp(
        api, registry, principal=principal, permissions=permissions, page_size=page_size
    )
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
