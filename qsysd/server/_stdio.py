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

``tools/call`` takes a lean path (``_lean.LeanCalls``): the line is parsed once,
validated by the SDK's own request models, run by the same handler, shaped by the SDK's own
result serializer (the era's surface, ``resultType`` and the ``serverInfo`` stamp) and
written at once, without the SDK's per-request memory-stream hops, dispatcher task,
OpenTelemetry span and second parse. Anything it cannot answer exactly as the SDK would
(before ``initialize`` was answered, invalid params, an envelope on the wrong era, a live
tracer, middleware) goes to the SDK, which answers it as before. docs/architecture.md has
the numbers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import orjson
import structlog
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from qsysd.errors import FrameTooLarge
from qsysd.qrc import RecordSplitter
from qsysd.server._lean import LeanCalls, lean_calls as make_lean_calls

__all__ = ["serve_stdio"]

log = structlog.get_logger(__name__)

_CHUNK = 65536


#: A longer line from the MCP client is refused (and logged): no real request comes near it.
MAX_LINE_BYTES = 16 * 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: Requests held until the Cores are synced (see ``hold``).
HELD_METHODS = frozenset({"tools/call", "resources/read"})


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
        lean: LeanCalls | None = None,
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
    lean = make_lean_calls(server, writer) if lean_calls else None
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
