"""The HTTP front end: Hypercorn (trio) serving MCP at /mcp and the REST app beside it.

```
HttpFrontEnd.run
├── EventHub.run                      numbered value/status events for /api/v1/events
├── session_manager.run()             the MCP SDK's Streamable HTTP sessions (both eras)
└── hypercorn.trio.serve(Gateway)     every request: id, limits, host/origin, access log
    ├── /mcp          -> MCP Streamable HTTP (the same server as stdio, principal per request)
    └── everything else -> Quart-Trio: /api/v1/..., /health, /ready, /metrics, / (status page)
```
Stop goes through Hypercorn's ``shutdown_trigger``: listeners close, in-flight requests get
``stop_grace`` seconds to finish, event streams end, then connections close.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

import attrs
import structlog
import trio

from qsysd.access import Authenticator, CallPath, Door, Principal
from qsysd.config import HttpConfig, is_loopback, parse_listen_address
from qsysd.config._check import UNAUTHENTICATED_NETWORK
from qsysd.core import CoreLink
from qsysd.errors import AuthenticationFailed, ConfigError, RateLimited
from qsysd.plugins import Registry
from qsysd.server._asgi import (
    PRINCIPAL_KEY,
    Gateway,
    GatewayLimits,
    Receive,
    Scope,
    Send,
    send_problem,
)
from qsysd.server._events import EventHub
from qsysd.server._mcp import build_mcp_server
from qsysd.server._page import PAGE_PATHS
from qsysd.state import Journal, SnapshotTask, StateStore

__all__ = ["HttpFrontEnd", "local_principal"]

log = structlog.get_logger("qsysd.http")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Paths anyone may read: liveness, and the status page's shell (it holds no data: its script
#: reads the API with the operator's token).
OPEN_PATHS = ("/health", *PAGE_PATHS)
RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource"


def local_principal(door: str, address: str | None) -> Principal:
    """The caller on a loopback-only server without access control: every permission."""
    return Principal("local", door="mcp" if door == "mcp" else "rest", address=address)


def session_owner(principal: Principal) -> Any:
    """The MCP SDK's user for ``principal``: it binds a legacy session to who opened it.

    The SDK's session manager answers 404 to a request for a session opened with other
    credentials; each call is authorized by its own request's principal all the same.
    """
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    # ``token`` is not compared (the owner is client_id, issuer, subject): never store it.
    return AuthenticatedUser(
        AccessToken(token="", client_id=principal.name, scopes=[], subject=principal.name)
    )


def anonymous_principal(address: str | None) -> Principal:
    """The caller of an open path when authentication is on: no permission at all."""
    return Principal("anonymous", door="rest", role="", permissions=frozenset(), address=address)


def _base_url(scope: Scope) -> str:
    """This server's URL as the client addressed it (the Host header passed the gateway)."""
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    return f"{scope.get('scheme', 'http')}://{host}"


def resource_metadata(scope: Scope, authenticator: Authenticator) -> dict[str, Any]:
    """The OAuth protected-resource metadata (RFC 9728) of the MCP endpoint.

    With JWTs the resource is the configured audience (what clients ask their authorization
    server for) and the authorization server is the configured issuer.
    """
    return authenticator.resource_metadata(f"{_base_url(scope)}/mcp")


def challenge(scope: Scope, exc: AuthenticationFailed) -> bytes:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750, with the RFC 9728 metadata URL)."""
    parts = [f'resource_metadata="{_base_url(scope)}{RESOURCE_METADATA_PATH}/mcp"']
    if exc.error is not None:
        description = str(exc).replace('"', "'").replace("\\", "")
        parts += [f'error="{exc.error}"', f'error_description="{description}"']
    return ("Bearer " + ", ".join(parts)).encode("latin-1", "replace")


def _default_hosts(config: HttpConfig) -> tuple[str, ...]:
    local = tuple(p for h in LOCAL_HOSTS for p in (h, f"{h}:*"))
    return (*local, *config.allowed_hosts)


def _default_origins(config: HttpConfig) -> tuple[str, ...]:
    local = tuple(f"{scheme}://{h}:*" for scheme in ("http", "https") for h in LOCAL_HOSTS)
    local += tuple(f"{scheme}://{h}" for scheme in ("http", "https") for h in LOCAL_HOSTS)
    return (*local, *config.allowed_origins)


def check_inherited_socket(fd: int, *, network_allowed: bool = False) -> None:
    """An ``fd://`` socket must be a listening stream socket on loopback or a unix path."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(
            [f"http.listen: fd://{fd} is not an open socket ({exc.strerror})"]
        ) from None
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ConfigError([f"http.listen: fd://{fd} is not a stream socket"])
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = sock.getsockname()[0]
            if not is_loopback(host) and not network_allowed:
                raise ConfigError(
                    [f"http.listen: fd://{fd} is bound to {host}, beyond loopback; "
                     f"{UNAUTHENTICATED_NETWORK}"]
                )  # fmt: skip
    finally:
        sock.detach()  # the descriptor stays open for Hypercorn


def _authorization(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            return str(value.decode("latin-1"))
    return None


async def send_json(send: Send, document: Any) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@attrs.define
class HttpFrontEnd:
    """The HTTP doors of one daemon."""

    config: HttpConfig
    calls: CallPath
    links: Mapping[str, CoreLink]
    store: StateStore
    registry: Registry
    authenticator: Authenticator = attrs.Factory(Authenticator)
    journal: Journal | None = None
    snapshots: SnapshotTask | None = None
    gateway: Gateway | None = None
    events: EventHub | None = None
    urls: list[str] = attrs.Factory(list)
    _shutdown: trio.Event = attrs.Factory(trio.Event)
    _stopping: trio.Event = attrs.Factory(trio.Event)

    def stop(self) -> None:
        """Stop accepting; in-flight requests get ``stop_grace`` seconds to finish."""
        self._stopping.set()
        if self.events is not None:
            self.events.close()
        self._shutdown.set()

    def _hypercorn_config(self) -> Any:
        from hypercorn.config import Config as HypercornConfig

        c = self.config
        hc = HypercornConfig()
        hc.bind = [parse_listen_address(a).bind() for a in c.listen_addresses()]
        for address in map(parse_listen_address, c.listen_addresses()):
            if address.kind == "fd":
                check_inherited_socket(
                    address.fd,
                    network_allowed=self.authenticator.required or c.allow_unauthenticated_network,
                )
        if c.tls_cert and c.tls_key:
            hc.certfile = c.tls_cert
            hc.keyfile = c.tls_key
        hc.keep_alive_timeout = c.keep_alive_timeout
        hc.graceful_timeout = c.stop_grace
        hc.include_server_header = False
        hc.h11_max_incomplete_size = 16 * 1024
        hc.errorlog = logging.getLogger("qsysd.http.hypercorn")
        hc.accesslog = None  # the gateway writes the access log
        return hc

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until :meth:`stop`; ``task_status.started`` gets the bound URLs."""
        from hypercorn.trio import serve
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        # Imported here: a stdio-only daemon never loads Quart or prometheus-client.
        from qsysd.server._metrics import (
            HttpStatistics,
            MetricsSources,
            build_registry,
            render_metrics,
        )
        from qsysd.server._rest import build_rest_app

        c = self.config
        hc = self._hypercorn_config()  # raises ConfigError before anything is bound
        events = EventHub(
            self.store,
            lambda: self.calls.api.statuses(),
            history=c.event_history,
        )
        self.events = events

        def mcp_principal(ctx: Any) -> Principal:
            http_request = ctx.request
            scope = getattr(http_request, "scope", None) or {}
            principal = scope.get(PRINCIPAL_KEY)
            if isinstance(principal, Principal):
                return principal
            # The gateway always sets one; should a request ever come without, it may do nothing.
            return anonymous_principal(None)

        mcp_server = build_mcp_server(self.calls, principal=mcp_principal)
        manager = StreamableHTTPSessionManager(
            app=mcp_server,
            security_settings=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=list(_default_hosts(c)),
                allowed_origins=list(_default_origins(c)),
            ),
            max_request_body_size=c.max_body_bytes,
        )
        registry = build_registry(
            MetricsSources(
                calls=self.calls,
                links=self.links,
                store=self.store,
                registry=self.registry,
                journal=self.journal,
                snapshots=self.snapshots,
                http=lambda: HttpStatistics(
                    refused=dict(self.gateway.rejected) if self.gateway else {},
                    event_streams=rest.streams,
                    events_published=events.published,
                ),
            )
        )
        rest = build_rest_app(
            self.calls,
            links=self.links,
            store=self.store,
            events=events,
            metrics=lambda: render_metrics(registry),
            max_event_streams=c.max_event_streams,
            max_body_bytes=c.max_body_bytes,
            read_timeout=c.read_timeout,
            stopping=self._stopping,
            tokens=self.authenticator.tokens,
        )

        async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
            if self._stopping.is_set():
                await send_problem(
                    send, 503, "stopping", "Stopping", "qsysd is stopping; retry on another "
                    "instance or after the restart", retryable=True,
                )  # fmt: skip
                return
            await manager.handle_request(scope, receive, send)

        authenticator = self.authenticator
        calls = self.calls
        limits = calls.limits

        async def authenticated(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
            client = scope.get("client")
            address = client[0] if client else None
            path = scope["path"]
            door: Door = "mcp" if path == "/mcp" or path.startswith("/mcp/") else "rest"
            if path == RESOURCE_METADATA_PATH or path.startswith(RESOURCE_METADATA_PATH + "/"):
                await send_json(send, resource_metadata(scope, authenticator))
                return
            if authenticator.required and path in OPEN_PATHS:
                scope[PRINCIPAL_KEY] = anonymous_principal(address)
                await app(scope, receive, send)
                return
            authorization = _authorization(scope)
            try:
                if authenticator.required and authorization is not None:
                    # Once an address failed too often, no credentials are even looked at.
                    await limits.check("failed-authentication", address=address)
                principal = authenticator.authenticate(authorization, door, address)
                scope[PRINCIPAL_KEY] = principal
                if door == "mcp" and authenticator.required:
                    scope["user"] = session_owner(principal)
            except RateLimited as exc:
                log.info("auth.rate_limited", door=door, client=address, path=path)
                await calls.audit(None, "limited", door=door, address=address,
                                  request_id=scope.get("qsysd.request_id"), tool=None,
                                  arguments={"method": scope.get("method"), "path": path},
                                  error=f"failed authentication: {exc}")  # fmt: skip
                await send_problem(
                    send, 429, "rate-limited", "Too many failed authentications", str(exc),
                    headers=[(b"retry-after", str(exc.retry_after).encode())], retryable=True,
                    request_id=scope.get("qsysd.request_id"),
                )  # fmt: skip
                return
            except AuthenticationFailed as exc:
                log.info("auth.failed", door=door, client=address, path=path,
                         reason=str(exc)[:200])  # fmt: skip
                await calls.audit(None, "unauthenticated", door=door, address=address,
                                  request_id=scope.get("qsysd.request_id"), tool=None,
                                  arguments={"method": scope.get("method"), "path": path},
                                  error=str(exc))  # fmt: skip
                if exc.error is not None:  # a first request without credentials is no guess
                    with contextlib.suppress(RateLimited):
                        await limits.spend("failed-authentication", principal=None, address=address)
                await send_problem(
                    send, 401, "authentication-failed", "Authentication required", str(exc),
                    headers=[(b"www-authenticate", challenge(scope, exc))],
                    request_id=scope.get("qsysd.request_id"),
                )  # fmt: skip
                return
            await app(scope, receive, send)

        async def mcp_route(scope: Scope, receive: Receive, send: Send) -> None:
            await authenticated(mcp_app, scope, receive, send)

        async def rest_route(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                await rest.app(scope, receive, send)  # type: ignore[arg-type]
                return
            await authenticated(rest.app, scope, receive, send)

        self.gateway = Gateway(
            {"/mcp": mcp_route},
            rest_route,
            GatewayLimits(
                max_body_bytes=c.max_body_bytes,
                read_timeout=c.read_timeout,
                max_concurrent_requests=c.max_concurrent_requests,
                allowed_hosts=_default_hosts(c),
                allowed_origins=_default_origins(c),
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(events.run)
            async with manager.run(), trio.open_nursery() as serving:
                try:
                    self.urls = await serving.start(
                        lambda task_status: serve(
                            self.gateway,  # type: ignore[arg-type]
                            hc,
                            shutdown_trigger=self._shutdown.wait,
                            task_status=task_status,
                        )
                    )
                except* OSError as group:
                    exc = group.exceptions[0]
                    reason = getattr(exc, "strerror", None) or str(exc)
                    raise ConfigError(
                        [f"http.listen: cannot listen on {', '.join(hc.bind)}: {reason}"]
                    ) from None
                log.info("http.listening", urls=self.urls)
                task_status.started(self.urls)
                # serve() returns once in-flight requests finished or stop_grace passed;
                # only then do the MCP sessions end.
            nursery.cancel_scope.cancel()
        log.info("http.stopped")
