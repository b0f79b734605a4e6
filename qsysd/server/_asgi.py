"""The ASGI layer in front of every HTTP route: request ids, limits, host checks, access log.

:class:`Gateway` sees every request before the MCP app or the REST app does, so nothing below
it can forget a limit: it accepts or makes the ``X-Request-Id``, checks Host and Origin
against DNS rebinding, caps concurrent requests and body size, times out slow bodies, turns
anything that escapes an app into a problem document, and writes one JSON access log line.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import attrs
import structlog
import trio

from qsysd.errors import PROBLEM_PREFIX
from qsysd.logs import bound_context
from qsysd.server._page import PAGE_CSP

__all__ = ["PRINCIPAL_KEY", "ASGIApp", "Gateway", "GatewayLimits", "problem_body", "send_problem"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("qsysd.http")
access_log = structlog.get_logger("qsysd.http.access")

#: Where the gateway puts the authenticated Principal in the ASGI scope.
PRINCIPAL_KEY = "qsysd.principal"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Security headers on every answer; HSTS is added to answers served over TLS.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)
#: Over TLS: browsers keep to HTTPS for a year (RFC 6797); never sent over plain HTTP.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")
#: The status page's document is the one answer a browser renders: its policy lets it load its
#: own script, style and icon and call this origin, and nothing else (see PAGE_CSP).
PAGE_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (k, PAGE_CSP.encode()) if k == b"content-security-policy" else (k, v)
    for k, v in SECURITY_HEADERS
)


def security_headers(path: str, *, https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The security headers of an answer to ``path``."""
    headers = PAGE_SECURITY_HEADERS if path == "/" else SECURITY_HEADERS
    return (*headers, HSTS_HEADER) if https else headers


def problem_body(
    status: int, slug: str, title: str, detail: str, *, retryable: bool = False, **extra: Any
) -> bytes:
    """An RFC 9457 problem document."""
    doc = {
        "type": PROBLEM_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "retryable": retryable,
        **extra,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


async def send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    retryable: bool = False,
    **extra: Any,
) -> None:
    body = problem_body(status, slug, title, detail, retryable=retryable, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@attrs.frozen
class GatewayLimits:
    max_body_bytes: int = 1_048_576
    read_timeout: float = 30.0
    max_concurrent_requests: int = 256
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


class ClientGone(Exception):
    """The client closed the connection before the answer was sent."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def matches_host(value: str, patterns: tuple[str, ...]) -> bool:
    """``value`` (a Host header or Origin) against patterns; ``name:*`` allows any port."""
    for pattern in patterns:
        if pattern == value:
            return True
        if (
            pattern.endswith(":*")
            and value.startswith(pattern[:-1])
            and value[len(pattern) - 1 :].isdigit()
        ):
            return True
    return False


class Gateway:
    """Routes requests by path prefix to ASGI apps, with the checks every route shares.

    ``routes`` maps a path prefix (``/mcp``) to an app; ``default`` takes the rest. Lifespan
    events go to ``default`` (the Quart app, whose start-up and shut-down hooks must run).
    """

    def __init__(
        self,
        routes: dict[str, ASGIApp],
        default: ASGIApp,
        limits: GatewayLimits,
    ) -> None:
        self.routes = routes
        self.default = default
        self.limits = limits
        self._slots = trio.Semaphore(limits.max_concurrent_requests)
        self.rejected: dict[int, int] = {}

    def _route(self, path: str) -> ASGIApp:
        for prefix, app in self.routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.default(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets are not served
            await send({"type": "websocket.close", "code": 1003})
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        scope["qsysd.request_id"] = request_id
        started = time.perf_counter()
        status_seen: list[int] = [0]
        sent_bytes = [0]
        id_header = (b"x-request-id", request_id.encode())
        security = security_headers(scope["path"], https=scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen[0] = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"server", b"x-request-id")
                ]
                message = {**message, "headers": [*headers, id_header, *security]}
            elif message["type"] == "http.response.body":
                sent_bytes[0] += len(message.get("body", b""))
            try:
                await send(message)
            except (trio.Cancelled, KeyboardInterrupt):
                raise
            except BaseException as exc:  # Hypercorn refuses sends on a closed connection
                status_seen[0] = status_seen[0] or 499
                raise ClientGone(str(exc)) from exc

        with bound_context(request_id=request_id):
            try:
                await self._handle(scope, receive, send_with_headers, status_seen)
            finally:
                client = scope.get("client")
                access_log.info(
                    "http.request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status_seen[0],
                    bytes=sent_bytes[0],
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    client=f"{client[0]}:{client[1]}" if client else None,
                )

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, status_seen: list[int]
    ) -> None:
        limits = self.limits
        host = _header(scope, b"host")
        if limits.allowed_hosts and (host is None or not matches_host(host, limits.allowed_hosts)):
            self._count(421)
            await send_problem(
                send, 421, "host-not-allowed", "Host not allowed",
                f"Host header {host!r} is not one this server answers to "
                "(http.allowed_hosts); this protects against DNS rebinding",
            )  # fmt: skip
            return
        origin = _header(scope, b"origin")
        if origin is not None and not matches_host(origin, limits.allowed_origins):
            self._count(403)
            await send_problem(
                send, 403, "origin-not-allowed", "Origin not allowed",
                f"Origin {origin!r} is not allowed (http.allowed_origins)",
            )  # fmt: skip
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            self._count(413)
            await send_problem(
                send, 413, "body-too-large", "Request body too large",
                f"the body may be at most {limits.max_body_bytes} bytes (http.max_body_bytes)",
            )  # fmt: skip
            return
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            self._count(503)
            await send_problem(
                send, 503, "server-busy", "Too many requests in progress",
                f"{limits.max_concurrent_requests} requests are in progress "
                "(http.max_concurrent_requests); retry shortly",
                headers=[(b"retry-after", b"1")], retryable=True,
            )  # fmt: skip
            return
        try:
            await self._call_app(scope, receive, send, status_seen)
        finally:
            self._slots.release()

    async def _call_app(
        self, scope: Scope, receive: Receive, send: Send, status_seen: list[int]
    ) -> None:
        limits = self.limits
        received = [0]
        body_done = [scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS")]

        async def bounded_receive() -> Message:
            if body_done[0]:
                return await receive()
            with trio.move_on_after(limits.read_timeout) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise _BodyTooSlow
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limits.max_body_bytes:
                    raise _BodyTooLarge
                if not message.get("more_body", False):
                    body_done[0] = True
            else:
                body_done[0] = True
            return message

        app = self._route(scope["path"])
        try:
            await app(scope, bounded_receive, send)
        except* _BodyTooLarge:
            if not status_seen[0]:
                self._count(413)
                await send_problem(
                    send, 413, "body-too-large", "Request body too large",
                    f"the body may be at most {limits.max_body_bytes} bytes",
                )  # fmt: skip
        except* _BodyTooSlow:
            if not status_seen[0]:
                self._count(408)
                await send_problem(
                    send, 408, "request-timeout", "Request body too slow",
                    f"the body did not arrive within {limits.read_timeout:g} s (http.read_timeout)",
                )  # fmt: skip
        except* ClientGone:
            log.debug("http.client_gone", path=scope.get("path"))
        except* Exception as group:
            log.error("http.app_error", path=scope.get("path"), exc_info=group)
            if not status_seen[0]:
                with contextlib.suppress(ClientGone):
                    await send_problem(
                        send, 500, "internal-error", "Internal error",
                        "the server failed while answering; this is a bug in qsysd, please "
                        "report it with the X-Request-Id",
                    )  # fmt: skip

    def _count(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1
