"""The MCP server: the registry's tools and prompts, and live resources, on mcp's low-level Server.

The low-level ``Server`` is used (not ``MCPServer``) for exact schemas from the registry,
paging, and full control of errors: every failure of a tool becomes an ``isError`` result
with a specific message; nothing escapes as a bare "Error executing tool". Both protocol
eras are served: resource subscriptions through ``resources/subscribe`` (2025 era) and
``subscriptions/listen`` (2026-07-28), both fed by one StateStore watcher.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import structlog
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
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
from qsysd.plugins import PERMISSIONS, Permission, PermissionDenied, Registry, Tool, ToolContext
from qsysd.state import ControlReading

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

SCHEME = "qsys"
CORES_URI = f"{SCHEME}://cores"


def components_uri(core: str) -> str:
    return f"{SCHEME}://core/{_quote(core)}/components"


def controls_uri(core: str, component: str | None) -> str:
    if component is None:
        return f"{SCHEME}://core/{_quote(core)}/named"
    return f"{SCHEME}://core/{_quote(core)}/component/{_quote(component)}/controls"


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


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


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _reading_json(r: ControlReading) -> dict[str, Any]:
    v = r.value
    return {
        "name": r.info.ref.name,
        "type": r.info.type,
        "direction": r.info.direction,
        "value": _scalar(v.value) if v else None,
        "string": v.string if v else None,
        "position": v.position if v else None,
        "min": r.info.value_min,
        "max": r.info.value_max,
        "age_s": round(r.age, 3),
        "stale": r.stale,
    }


class QsysMcp:
    """The handlers and subscription state behind one MCP ``Server``."""

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
        self.status_interval = status_interval
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        # 2025-era subscribers: uri -> sessions (each keeps its connection's outbound channel).
        self._legacy: dict[str, list[ServerSession]] = {}
        self.notifications_sent = 0

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

    def _page(self, items: list[Any], cursor: str | None) -> tuple[list[Any], str | None]:
        try:
            start = int(cursor) if cursor else 0
        except ValueError:
            start = -1
        if not 0 <= start <= len(items):
            # Cursors are opaque: only one this server gave out is valid.
            raise MCPError(
                types.INVALID_PARAMS,
                f"invalid cursor {(cursor or '')[:40]!r}; use the nextCursor of the previous page",
            )
        end = start + self.page_size
        return items[start:end], (str(end) if end < len(items) else None)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        page, cursor = self._page(self.registry.tools(), params.cursor if params else None)
        return types.ListToolsResult(tools=[_tool_type(t) for t in page], next_cursor=cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # Every log line of this call (core link, journal, ...) carries the request id.
        with structlog.contextvars.bound_contextvars(request_id=str(ctx.request_id)):
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
            content=[types.TextContent(text=_json(output))], structured_content=output
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
        page, cursor = self._page(self.registry.prompts(), params.cursor if params else None)
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
                for p in page
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

    # resources ------------------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        resources = [
            types.Resource(
                uri=CORES_URI,
                name="cores",
                title="Q-SYS Cores",
                description="Connection and engine status of every Core.",
                mime_type="application/json",
            )
        ]
        for core in self.api.core_names():
            resources.append(
                types.Resource(
                    uri=components_uri(core),
                    name=f"{core}/components",
                    title=f"Components of {core}",
                    description=f"Every component of Core {core!r} with its type.",
                    mime_type="application/json",
                )
            )
            for comp in self.api.store.components(core):
                resources.append(
                    types.Resource(
                        uri=controls_uri(core, comp.name),
                        name=f"{core}/{comp.name}",
                        title=f"{comp.name} controls",
                        description=f"Controls of {comp.name} ({comp.type}) with live values.",
                        mime_type="application/json",
                    )
                )
        page, cursor = self._page(resources, params.cursor if params else None)
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=f"{SCHEME}://core/{{core}}/components",
                    name="components",
                    description="A Core's components (names URL-encoded).",
                    mime_type="application/json",
                ),
                types.ResourceTemplate(
                    uri_template=f"{SCHEME}://core/{{core}}/component/{{component}}/controls",
                    name="controls",
                    description="A component's controls with live values; subscribe for changes.",
                    mime_type="application/json",
                ),
                types.ResourceTemplate(
                    uri_template=f"{SCHEME}://core/{{core}}/named",
                    name="named-controls",
                    description="A Core's named controls with live values.",
                    mime_type="application/json",
                ),
            ]
        )

    def read_uri(self, uri: str) -> Any:
        """The JSON data behind a resource URI; LookupFailed for an unknown one."""
        if uri == CORES_URI:
            return {"cores": [_status_json(s) for s in self.api.statuses()]}
        prefix = f"{SCHEME}://core/"
        if not uri.startswith(prefix):
            raise LookupFailed(f"unknown resource {uri!r}")
        parts = [urllib.parse.unquote(p) for p in uri[len(prefix) :].split("/")]
        if len(parts) == 2 and parts[1] == "components":
            core = self.api.core(parts[0])
            return {
                "core": core,
                "components": [
                    {"name": c.name, "type": c.type} for c in self.api.store.components(core)
                ],
            }
        if len(parts) == 2 and parts[1] == "named":
            core = self.api.core(parts[0])
            readings = self.api.controls(core, None)
            return {"core": core, "controls": [_reading_json(r) for r in readings]}
        if len(parts) == 4 and parts[1] == "component" and parts[3] == "controls":
            core = self.api.core(parts[0])
            comp = self.api.component(core, parts[2])
            readings = self.api.controls(core, comp.name)
            return {
                "core": core,
                "component": comp.name,
                "type": comp.type,
                "controls": [_reading_json(r) for r in readings],
            }
        raise LookupFailed(f"unknown resource {uri!r}")

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            data = self.read_uri(str(params.uri))
        except QsysdError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=str(params.uri), mime_type="application/json", text=_json(data)
                )
            ]
        )

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        try:
            self.read_uri(uri)
        except QsysdError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        sessions = self._legacy.setdefault(uri, [])
        if all(s is not ctx.session for s in sessions):
            sessions.append(ctx.session)
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        sessions = [s for s in self._legacy.get(uri, []) if not _same_connection(s, ctx.session)]
        if sessions:
            self._legacy[uri] = sessions
        else:
            self._legacy.pop(uri, None)
        return types.EmptyResult()

    async def notify(self, uris: Collection[str]) -> None:
        """Tell subscribers of both eras that these resources changed."""
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
            for session in list(self._legacy.get(uri, ())):
                try:
                    await session.send_resource_updated(uri)
                    self.notifications_sent += 1
                except Exception as exc:  # a closed connection: forget its subscriptions
                    log.info("mcp.subscriber_dropped", uri=uri, error=repr(exc))
                    self._forget(session)

    def _forget(self, session: ServerSession) -> None:
        for uri in list(self._legacy):
            kept = [s for s in self._legacy[uri] if not _same_connection(s, session)]
            if kept:
                self._legacy[uri] = kept
            else:
                del self._legacy[uri]

    async def watch_changes(self) -> None:
        """Turn StateStore changes and Core status changes into resource notifications."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_status)
            async with self.api.store.watch(None) as watcher:
                async for batch in watcher:
                    uris = {controls_uri(v.ref.core, v.ref.component) for v in batch}
                    await self.notify(sorted(uris))
            nursery.cancel_scope.cancel()

    async def _watch_status(self) -> None:
        last = None
        while True:
            current = [(s.core, s.connected, s.state, s.status_code) for s in self.api.statuses()]
            if last is not None and current != last:
                await self.notify([CORES_URI])
            last = current
            await trio.sleep(self.status_interval)


def _same_connection(a: ServerSession, b: ServerSession) -> bool:
    return a is b or getattr(a, "_connection", a) is getattr(b, "_connection", b)


def _status_json(s: Any) -> dict[str, Any]:
    return {
        "name": s.core,
        "connected": s.connected,
        "state": s.state,
        "platform": s.platform,
        "design_name": s.design_name,
        "design_code": s.design_code,
        "status": s.status_string,
        "status_code": s.status_code,
        "since": s.since,
        "last_error": s.last_error,
        "breaker": s.breaker,
    }


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

    @asynccontextmanager
    async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        if not watch:
            yield {}
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handlers.watch_changes)
            try:
                yield {}
            finally:
                handlers.listen.close()
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
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_read_resource=handlers.read_resource,
        on_subscribe_resource=handlers.subscribe,
        on_unsubscribe_resource=handlers.unsubscribe,
        on_subscriptions_listen=handlers.listen,
    )
    server.qsys = handlers
    return server
