"""MCP over stdio on trio file descriptors, with stray output kept off the wire.

The SDK's own ``stdio_server()`` moves every line through worker threads; here the wire is
a pair of :class:`trio.lowlevel.FdStream` on duplicates of fds 0 and 1, and fd 0 is then
pointed at /dev/null and fd 1 at stderr, so a stray ``print()`` (ours, a plugin's, a child
process's) cannot corrupt the JSON-RPC stream.

Every line gets an answer: one that is not JSON (invalid syntax or UTF-8, a lone surrogate,
nesting deeper than 1,024) is answered with a JSON-RPC -32700 error, one that is JSON but
not a JSON-RPC message (not an object, no ``jsonrpc: "2.0"``, params not an object, a bad
id) or longer than :data:`MAX_LINE_BYTES` with -32600; each is logged once. The SDK, which
would drop them unanswered, never sees them.

With ``hold``, requests that need the Cores' state (``tools/call``, ``resources/read``)
wait until ``hold`` is set before they are passed on, so a tool called during start-up
answers from synced state; everything else (``initialize``, ``tools/list``, ...) is
answered at once. The daemon sets it once the Cores are synced or its connect wait ends.

``tools/call`` takes a lean path (:class:`_LeanCalls`): the line is parsed once, validated
by the SDK's own request models, run by the same handler, shaped by the SDK's own result
serializer (the era's surface, ``resultType`` and the ``serverInfo`` stamp) and written at
once, without the SDK's per-request memory-stream hops, dispatcher task, OpenTelemetry span
and second parse. Anything it cannot answer exactly as the SDK would (before ``initialize``
was answered, invalid params, an envelope on the wrong era, a live tracer, middleware) goes
to the SDK, which answers it as before. docs/architecture.md has the numbers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import mcp_types as types
import orjson
import structlog
import trio
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.lowlevel import Server
from mcp.server.runner import modern_error_data
from mcp.server.stdio import stdio_server
from mcp.shared.dispatcher import as_request_id, coerce_request_id
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import methods as sdk_methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace

from qsysd.access import Principal
from qsysd.errors import FrameTooLarge
from qsysd.qrc import RecordSplitter
from qsysd.server._mcp import QsysMcp

__all__ = ["serve_stdio"]

log = structlog.get_logger(__name__)

_CHUNK = 65536


#: A longer line from the MCP client is refused (and logged): no real request comes near it.
MAX_LINE_BYTES = 16 * 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: Requests held until the Cores are synced (see ``hold``).
HELD_METHODS = frozenset({"tools/call", "resources/read"})
#: How long an answer written at end of input may take (the SDK's bound for the same).
_SHUTDOWN_WRITE_S = 2.0


class _Writer:
    """``write()``/``flush()`` of text onto a send stream (each write is one message line)."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream
        self._lock = trio.Lock()  # the SDK's writer and the reader's error answers share it
        #: Sees each line the SDK writes while set (the lean path learns the era from it).
        self.watch: Callable[[str], None] | None = None

    async def write(self, text: str) -> None:
        if self.watch is not None:
            self.watch(text)
        await self.send(text.encode("utf-8"))

    async def send(self, line: bytes) -> None:
        async with self._lock:
            await self._stream.send_all(line)

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()


def _parse(line: bytes) -> tuple[dict[str, Any] | None, tuple[int, str, Any] | None]:
    """The message of a line, or the (code, message, id) of the error answer it needs."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, (PARSE_ERROR, f"Parse error: {exc}", None)
    problem = _problem(message)
    return (message, None) if problem is None else (None, problem)


def _problem(message: Any) -> tuple[int, str, Any] | None:
    """(code, message, id) of the error answer a parsed line needs; None if it is a message."""
    if not isinstance(message, dict):
        return INVALID_REQUEST, "Invalid Request: a message must be a JSON object", None
    msg_id = message.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, str | int | None):
        return INVALID_REQUEST, "Invalid Request: id must be a string or an integer", None
    if message.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', msg_id
    if "method" in message:
        if not isinstance(message["method"], str):
            return INVALID_REQUEST, "Invalid Request: method must be a string", msg_id
        if not isinstance(message.get("params", {}), dict):
            return INVALID_REQUEST, "Invalid Request: params must be an object", msg_id
    elif msg_id is None or ("result" not in message and "error" not in message):
        return INVALID_REQUEST, "Invalid Request: neither a request nor a response", msg_id
    return None


class _LeanCalls:
    """``tools/call`` answered in process, exactly as the SDK's session layer would answer it.

    :meth:`take` sees every message the reader accepts and keeps the ``tools/call`` requests
    it can answer itself: the connection's era is known (the first request decides it, by
    the SDK's rule; a 2025 connection also needs its ``initialize`` answered), the SDK's
    request models accept the params, and nothing would observe the SDK's pipeline (no
    middleware beyond its OpenTelemetry span, no tracer configured, no cache hint). Each
    call runs in a task of :meth:`run`'s nursery, so the reader goes on reading: a
    ``notifications/cancelled`` for it cancels it unanswered, as in the SDK, and at
    end of input it is cancelled and answered "Connection closed".
    """

    def __init__(
        self, server: Server[Any], qsys: QsysMcp, principal: Principal, writer: _Writer
    ) -> None:
        self._server = server
        self._qsys = qsys
        self._principal = principal
        self._writer = writer
        self.hold: trio.Event | None = None
        self.era: str | None = None  # "legacy" or "modern", once the first request decided
        self.version: str | None = None  # legacy: the version an answered initialize chose
        self._initializing: set[Any] = set()
        self._in_flight: dict[Any, tuple[trio.CancelScope, list[bool]]] = {}
        self._nursery: trio.Nursery | None = None
        self.calls = 0  # answered here (statistics, tests)

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Own the calls' tasks until cancelled (at end of input)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def take(self, message: dict[str, Any], line: bytes) -> bool:
        """Whether ``message`` is answered here (else the SDK gets it)."""
        method = message.get("method")
        if method is None:
            return False  # a response to a request of ours
        params = message.get("params")
        msg_id = message.get("id")
        if msg_id is None:
            if method == "notifications/cancelled":
                self._cancel(params)
            return False
        if self.era is None:
            self._decide(line, method, params)
        if method == "initialize":
            if self.era == "legacy":
                self._initializing.add(msg_id)
                self._writer.watch = self._watch
            return False
        if method != "tools/call" or self._nursery is None or not self._plain():
            return False
        version = self._version(method, params)
        if version is None:
            return False
        try:  # as the SDK validates: the era's surface, then the handler's params model
            sdk_methods.validate_client_request(method, version, params)
            typed = types.CallToolRequestParams.model_validate(params or {}, by_name=False)
        except Exception:  # the SDK answers it with its own error
            return False
        # In flight from now on, so a cancel read before the task first runs still finds it.
        entry = (trio.CancelScope(), [False])
        self._in_flight[coerce_request_id(msg_id)] = entry
        self._nursery.start_soon(self._call, msg_id, typed, version, entry)
        return True

    def _decide(self, line: bytes, method: str, params: Any) -> None:
        """The SDK's rule: the first request (as its parser sees one) picks the era."""
        try:
            parsed = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValueError:
            return
        if isinstance(parsed, types.JSONRPCRequest):
            modern = method != "initialize" and _enveloped(params)
            self.era = "modern" if modern else "legacy"

    def _version(self, method: str, params: Any) -> str | None:
        if self.era == "legacy":
            return None if _enveloped(params) else self.version
        if self.era == "modern":
            route = classify_inbound_request({"method": method, "params": params})
            return None if isinstance(route, InboundLadderRejection) else route.protocol_version
        return None

    def _plain(self) -> bool:
        """Whether nothing would see a difference: only the SDK's span, and no tracer."""
        return (
            all(type(m) is OpenTelemetryMiddleware for m in self._server.middleware)
            and isinstance(
                trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
            )
            and "tools/call" not in self._server.cache_hints
        )

    def _watch(self, text: str) -> None:
        """Learn the negotiated version from the SDK's answer to ``initialize``."""
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(answer, dict) or answer.get("id") not in self._initializing:
            return
        self._initializing.discard(answer.get("id"))
        result = answer.get("result")
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.version = result["protocolVersion"]
        if not self._initializing:
            self._writer.watch = None

    def _cancel(self, params: Any) -> None:
        request_id = as_request_id(params.get("requestId") if isinstance(params, dict) else None)
        if request_id is None:
            return
        entry = self._in_flight.get(coerce_request_id(request_id))
        if entry is not None:
            entry[1][0] = True  # cancelled by the peer: never answered
            entry[0].cancel()

    async def _call(
        self,
        msg_id: Any,
        params: types.CallToolRequestParams,
        version: str,
        entry: tuple[trio.CancelScope, list[bool]],
    ) -> None:
        key = coerce_request_id(msg_id)
        scope, peer_cancelled = entry
        answering = False
        try:
            with scope:
                try:
                    if self.hold is not None and not self.hold.is_set():
                        await self.hold.wait()
                    result = await self._qsys.run_tool(
                        self._principal, params.name, params.arguments, request_id=str(msg_id)
                    )
                    answer: dict[str, Any] = {"result": self._shape(version, result)}
                except Exception as exc:  # as the SDK's dispatcher maps it, per era
                    answer = {"error": self._error(version, exc)}
                finally:
                    if self._in_flight.get(key) is entry:
                        del self._in_flight[key]
                if not peer_cancelled[0]:
                    answering = True
                    self.calls += 1
                    await self._send({"jsonrpc": "2.0", "id": msg_id, **answer})
        except trio.Cancelled:
            if not answering and not peer_cancelled[0]:  # end of input: say so, as the SDK does
                closed = {"code": types.CONNECTION_CLOSED, "message": "Connection closed"}
                with trio.move_on_after(_SHUTDOWN_WRITE_S, shield=True):
                    await self._send({"jsonrpc": "2.0", "id": msg_id, "error": closed})
            raise

    def _shape(self, version: str, result: types.CallToolResult) -> dict[str, Any]:
        """The SDK's wire form of a result: its dump, the era's surface, the 2026 fields."""
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped = sdk_methods.serialize_server_result("tools/call", version, dumped)
        if version in MODERN_PROTOCOL_VERSIONS:
            dumped.setdefault("resultType", "complete")
            if dumped.get("_meta") is None:
                dumped["_meta"] = {types.SERVER_INFO_META_KEY: self._server.server_info_stamp}
        return dumped

    def _error(self, version: str, exc: Exception) -> dict[str, Any]:
        if version in MODERN_PROTOCOL_VERSIONS:
            error = modern_error_data(exc)
        else:
            mapped = handler_exception_to_error_data(exc)
            if mapped is None:
                log.exception("mcp.stdio_call_crashed")
            error = mapped or types.ErrorData(code=0, message=str(exc))
        dumped: dict[str, Any] = error.model_dump(by_alias=True, mode="json", exclude_none=True)
        return dumped

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._writer.send(orjson.dumps(message) + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("mcp.stdio_answer_dropped", id=message.get("id"))


def _enveloped(params: Any) -> bool:
    """Whether params carry the 2026-07-28 envelope (the SDK's era signal)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and types.PROTOCOL_VERSION_META_KEY in meta


class _LineReader:
    """Async iteration over the JSON-RPC lines of a receive stream, each at most ``limit`` bytes.

    With a ``writer``, a line that is no JSON-RPC message is answered with an error there
    (and logged) instead of being passed on; with ``hold``, see the module docstring.
    """

    def __init__(
        self,
        stream: trio.abc.ReceiveStream,
        limit: int = MAX_LINE_BYTES,
        *,
        writer: _Writer | None = None,
        hold: trio.Event | None = None,
        lean: _LeanCalls | None = None,
    ) -> None:
        self._stream = stream
        self._limit = limit
        self._writer = writer
        self._hold = hold
        self._lean = lean

    async def _refuse(self, code: int, message: str, msg_id: Any, size: int) -> None:
        log.warning("mcp.stdio_bad_line", code=code, error=message[:200], line_bytes=size)
        if self._writer is not None:
            error = {"code": code, "message": message}
            answer = {"jsonrpc": "2.0", "id": msg_id, "error": error}
            await self._writer.write(orjson.dumps(answer).decode() + "\n")

    async def _accept(self, line: bytes) -> bool:
        """Whether to pass ``line`` on (a JSON-RPC message); answers and logs it if not."""
        message, problem = _parse(line)
        if problem is not None:
            await self._refuse(*problem, len(line))
            return False
        assert message is not None
        if self._lean is not None and self._lean.take(message, line):
            return False
        hold = self._hold
        if hold is not None and not hold.is_set() and message.get("method") in HELD_METHODS:
            await hold.wait()
        return True

    async def __aiter__(self) -> AsyncIterator[str]:
        splitter = RecordSplitter(b"\n", self._limit, noun="line")
        while data := await self._stream.receive_some(_CHUNK):
            splitter.receive_data(data)
            while True:
                try:
                    line = splitter.next_record()
                except FrameTooLarge:
                    await self._too_long()
                    continue
                if line is None:
                    break
                if line.strip() and await self._accept(line):
                    yield line.decode("utf-8")
        last = splitter.finish()
        if last is not None and last.strip() and await self._accept(last):
            yield last.decode("utf-8")

    async def _too_long(self) -> None:
        message = f"Invalid Request: a line over {self._limit} bytes"
        await self._refuse(INVALID_REQUEST, message, None, self._limit)


async def serve_stdio(
    server: Server[Any],
    *,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    divert: bool = True,
    hold: trio.Event | None = None,
    lean_calls: bool = True,
) -> None:
    """Serve one MCP connection over stdin/stdout until stdin closes.

    With ``divert`` (the default), fd ``stdin_fd`` reads /dev/null and fd ``stdout_fd``
    writes to stderr while serving; both are restored on return. With ``hold``, tool calls
    and resource reads wait until it is set (the rest is answered at once). ``lean_calls``
    False sends every request through the SDK's session layer (tests compare the two).
    """
    wire_in, wire_out = os.dup(stdin_fd), os.dup(stdout_fd)
    saved: list[tuple[int, int]] = []
    if divert:
        saved = [(stdin_fd, os.dup(stdin_fd)), (stdout_fd, os.dup(stdout_fd))]
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, stdin_fd)
        os.close(null)
        os.dup2(2, stdout_fd)
    receive = trio.lowlevel.FdStream(wire_in)
    send = trio.lowlevel.FdStream(wire_out)
    writer = _Writer(send)
    lean = _lean_calls(server, writer) if lean_calls else None
    if lean is not None:
        lean.hold = hold
    reader = _LineReader(receive, writer=writer, hold=hold, lean=lean)
    log.info("mcp.stdio_serving", lean_calls=lean is not None)
    try:
        async with receive, send, trio.open_nursery() as nursery:
            if lean is not None:
                await nursery.start(lean.run)
            async with stdio_server(stdin=cast(Any, reader), stdout=cast(Any, writer)) as (
                read_stream,
                write_stream,
            ):
                await server.run(read_stream, write_stream, server.create_initialization_options())
            nursery.cancel_scope.cancel()  # end of input: calls still running end, as the SDK's
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        log.info("mcp.stdio_closed")


def _lean_calls(server: Server[Any], writer: _Writer) -> _LeanCalls | None:
    """The lean path of a qsysd server with one fixed caller (stdio); None for any other."""
    qsys = getattr(server, "qsys", None)
    principal = qsys.fixed_principal if isinstance(qsys, QsysMcp) else None
    if qsys is None or principal is None:
        return None
    return _LeanCalls(server, qsys, principal, writer)
