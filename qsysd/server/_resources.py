"""The live ``qsys://`` resources: listing, reading, and change notifications for subscribers.

Both protocol eras are served: ``resources/subscribe`` (2025 era, per session) and
``subscriptions/listen`` (2026-07-28, through the SDK's bus), both fed by one StateStore
watcher, open while anyone subscribes (a write's change costs nothing here otherwise).
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Collection
from typing import Any

import attrs
import mcp_types as types
import structlog
import trio
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourceUpdated,
    ServerEvent,
)
from mcp.shared.exceptions import MCPError

from qsysd.api import QsysApi
from qsysd.errors import LookupFailed, QsysdError
from qsysd.plugins import Registry, Resource, ToolContext
from qsysd.server._common import page, to_json
from qsysd.state import CoreStatus, Watcher
from qsysd.tools import control_out

log = structlog.get_logger(__name__)

SCHEME = "qsys"
CORES_URI = f"{SCHEME}://cores"


def components_uri(core: str) -> str:
    return f"{SCHEME}://core/{_quote(core)}/components"


@functools.lru_cache(maxsize=1 << 16)  # a batch of changes names each component again
def controls_uri(core: str, component: str | None) -> str:
    if component is None:
        return f"{SCHEME}://core/{_quote(core)}/named"
    return f"{SCHEME}://core/{_quote(core)}/component/{_quote(component)}/controls"


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class LiveResources:
    """The resource handlers and the subscribers of both eras behind one MCP ``Server``."""

    def __init__(
        self,
        api: QsysApi,
        *,
        page_size: int = 100,
        status_interval: float = 1.0,
        registry: Registry | None = None,
        principal: Callable[[ServerRequestContext[Any, Any]], str] | None = None,
    ) -> None:
        self.api = api
        self.registry = registry
        self._principal = principal
        self.page_size = page_size
        self.status_interval = status_interval
        self.bus = _CountingBus(self._follow)
        self.listen = ListenHandler(self.bus)
        # 2025-era subscribers: uri -> sessions (each keeps its connection's outbound channel).
        self._legacy: dict[str, list[ServerSession]] = {}
        self.notifications_sent = 0
        # The store is watched only while someone subscribes (and watch_changes runs): with
        # no subscriber, a change costs nothing here.
        self._watching = False
        self._watcher: Watcher | None = None
        self._followed = trio.Event()

    # listing and reading --------------------------------------------------------------------

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
            for comp in self.api.all_components(core):
                resources.append(
                    types.Resource(
                        uri=controls_uri(core, comp.name),
                        name=f"{core}/{comp.name}",
                        title=f"{comp.name} controls",
                        description=f"Controls of {comp.name} ({comp.type}) with live values.",
                        mime_type="application/json",
                    )
                )
        for r in self.registry.resources() if self.registry else ():
            resources.append(
                types.Resource(
                    uri=r.uri,
                    name=r.name,
                    title=r.title,
                    description=r.description,
                    mime_type=r.mime_type,
                )
            )
        items, cursor = page(resources, params.cursor if params else None, self.page_size)
        return types.ListResourcesResult(resources=items, next_cursor=cursor)

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
            raise LookupFailed(f"unknown resource {uri!r}", hint="resources/list names them.")
        parts = [urllib.parse.unquote(p) for p in uri[len(prefix) :].split("/")]
        if len(parts) == 2 and parts[1] == "components":
            core = self.api.core(parts[0])
            return {
                "core": core,
                "components": [
                    {"name": c.name, "type": c.type} for c in self.api.all_components(core)
                ],
            }
        if len(parts) == 2 and parts[1] == "named":
            core = self.api.core(parts[0])
            readings = self.api.controls(core, None)
            return {"core": core, "controls": [attrs.asdict(control_out(r)) for r in readings]}
        if len(parts) == 4 and parts[1] == "component" and parts[3] == "controls":
            core = self.api.core(parts[0])
            comp = self.api.component(core, parts[2])
            readings = self.api.controls(core, comp.name)
            return {
                "core": core,
                "component": comp.name,
                "type": comp.type,
                "controls": [attrs.asdict(control_out(r)) for r in readings],
            }
        raise LookupFailed(f"unknown resource {uri!r}", hint="resources/list names them.")

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        owned = self.registry.resource(str(params.uri)) if self.registry else None
        if owned is not None:
            return await self._read_plugin_resource(ctx, *owned)
        try:
            data = self.read_uri(str(params.uri))
        except QsysdError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=str(params.uri), mime_type="application/json", text=to_json(data)
                )
            ]
        )

    async def _read_plugin_resource(
        self, ctx: ServerRequestContext[Any, Any], plugin: str, resource: Resource
    ) -> types.ReadResourceResult:
        principal = self._principal(ctx) if self._principal else "unknown"
        config = self.registry.context(plugin).config if self.registry else None
        tool_ctx = ToolContext(self.api, principal, config=config, plugin=plugin)
        try:
            data = await resource.read(tool_ctx)
        except QsysdError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        except Exception as exc:  # a broken plugin resource is an error, never a crash
            log.error("plugin.resource_failed", plugin=plugin, uri=resource.uri,
                      error=repr(exc), exc_info=exc)  # fmt: skip
            raise MCPError(
                types.INTERNAL_ERROR, f"resource {resource.uri!r} of plugin {plugin!r} failed"
            ) from None
        text = data if isinstance(data, str) else to_json(data)
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=resource.uri, mime_type=resource.mime_type, text=text
                )
            ]
        )

    # subscriptions --------------------------------------------------------------------------

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
        self._follow()
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self._forget(ctx.session, [str(params.uri)])
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
                    self._forget(session, list(self._legacy))

    def _forget(self, session: ServerSession, uris: Collection[str]) -> None:
        """Drop the subscriptions of ``session``'s connection to ``uris``."""
        for uri in uris:
            kept = [s for s in self._legacy.get(uri, ()) if not _same_connection(s, session)]
            if kept:
                self._legacy[uri] = kept
            else:
                self._legacy.pop(uri, None)

    def _subscribed(self) -> bool:
        return bool(self._legacy) or self.bus.listeners > 0

    def _follow(self) -> None:
        """Watch the store from now on, if not yet: called as a subscription is made, so no
        change after it is missed."""
        if self._watching and self._watcher is None:
            self._watcher = self.api.watch(None)
            self._followed.set()

    async def watch_changes(self) -> None:
        """Turn StateStore changes and Core status changes into resource notifications.

        The store is watched while anyone subscribes; after the last subscriber leaves,
        the next change ends the watch.
        """
        self._watching = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_status)
                if self._subscribed():
                    self._follow()
                while True:
                    await self._followed.wait()
                    assert self._watcher is not None
                    async with self._watcher as watcher:
                        async for batch in watcher:
                            uris = {controls_uri(v.ref.core, v.ref.component) for v in batch}
                            await self.notify(sorted(uris))
                            if not self._subscribed():
                                break
                    self._watcher = None
                    self._followed = trio.Event()
        finally:
            self._watching = False
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None

    async def _watch_status(self) -> None:
        last = None
        while True:
            current = [(s.core, s.connected, s.state, s.status_code) for s in self.api.statuses()]
            if last is not None and current != last:
                await self.notify([CORES_URI])
            last = current
            await trio.sleep(self.status_interval)


class _CountingBus(InMemorySubscriptionBus):
    """The SDK's subscription bus, counting its listeners; ``on_listener`` as one comes."""

    def __init__(self, on_listener: Callable[[], None]) -> None:
        super().__init__()
        self.listeners = 0
        self._on_listener = on_listener

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        self._on_listener()
        subscribed = True

        def remove() -> None:
            nonlocal subscribed
            if subscribed:
                subscribed = False
                self.listeners -= 1
            unsubscribe()

        return remove


def _same_connection(a: ServerSession, b: ServerSession) -> bool:
    return a is b or getattr(a, "_connection", a) is getattr(b, "_connection", b)


def _status_json(s: CoreStatus) -> dict[str, Any]:
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
