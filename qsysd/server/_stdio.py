"""MCP over stdio on trio file descriptors, with stray output kept off the wire.

The SDK's own ``stdio_server()`` moves every line through worker threads; here the wire is
a pair of :class:`trio.lowlevel.FdStream` on duplicates of fds 0 and 1, and fd 0 is then
pointed at /dev/null and fd 1 at stderr, so a stray ``print()`` (ours, a plugin's, a child
process's) cannot corrupt the JSON-RPC stream.

Every line gets an answer: one that is not JSON (invalid syntax or UTF-8, a lone surrogate,
nesting deeper than 1,024) is answered with a JSON-RPC -32700 error, one that is JSON but
not a JSON-RPC message (not an object, no ``jsonrpc: "2.0"``, params not an object, a bad
id, nesting deeper than the SDK's parser takes: :data:`MAX_NESTING`) or longer than
:data:`MAX_LINE_BYTES` with -32600; each is logged once. The SDK, which would drop them
unanswered, never sees them.

With ``hold``, requests that need the Cores' state (``tools/call``, ``resources/read``)
wait until ``hold`` is set before they are passed on, so a tool called during start-up
answers from synced state; everything else (``initialize``, ``tools/list``, ...) is
answered at once. The daemon sets it once the Cores are synced or its connect wait ends.

``tools/call`` takes a lean path (``_lean.LeanCalls``): the line is parsed once,
validated by the SDK's own request models, run by the same handler, written into answer
frames the SDK's own result shaping rendered once per protocol version (the era's surface,
``resultType`` and the ``serverInfo`` stamp) and sent at once, without the SDK's
per-request memory-stream hops, dispatcher task, OpenTelemetry span and second parse.
Anything it cannot answer exactly as the SDK would (before ``initialize`` was answered,
invalid params, an envelope on the wrong era, a live tracer, middleware) goes to the SDK,
which answers it as before. docs/architecture.md has the numbers.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

import orjson
import structlog
import trio
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server

from qsysd.errors import FrameTooLarge
from qsysd.qrc import RecordSplitter
from qsysd.server._lean import LeanCalls, lean_calls as make_lean_calls
from qsysd.server._stdio_cache import ANSWER_HEAD, CachedAnswers

if TYPE_CHECKING:
    from qsysd._early import EarlyStart, Prelude

__all__ = ["serve_stdio"]

log = structlog.get_logger(__name__)

_CHUNK = 65536
# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_ID = (str, int)
_ID_OR_NONE = (str, int, type(None))
_CONTAINER = (dict, list)


#: A longer line from the MCP client is refused (and logged): no real request comes near it.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Containers nested deeper than this the SDK's parser (pydantic's) refuses, and the SDK then
#: drops the message unanswered: such a line is answered here instead.
MAX_NESTING = 200
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: Requests held until the Cores are synced (see ``hold``).
HELD_METHODS = frozenset({"tools/call", "resources/read"})


class _Writer:
    """``write()``/``flush()`` of text onto a send stream (each write is one message line)."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream
        self._fd = stream.fileno() if isinstance(stream, trio.lowlevel.FdStream) else None
        self._lock = trio.Lock()  # the SDK's writer and the reader's error answers share it
        self.unanswered = _Unanswered()
        #: Sees each line the SDK writes while set (the lean path learns the era from it).
        self.watch: Callable[[str], None] | None = None
        self.cache: CachedAnswers | None = None

    async def write(self, text: str) -> None:
        """Write one of the SDK's messages (an answer is crossed off ``unanswered``)."""
        if self.watch is not None:
            self.watch(text)
        data = text.encode("utf-8")
        if self.cache is not None and not await self.cache.answered(text, data):
            self.unanswered.answered(data)  # answered by the early door already
            return
        await self.answer(data)

    async def answer(self, data: bytes, msg_id: str | int | None = None) -> None:
        """Write a message line; an answer (its id if known, else read from the line) is
        crossed off ``unanswered``."""
        await self.send(data)
        if msg_id is None:
            self.unanswered.answered(data)
        else:
            self.unanswered.discard(msg_id)

    async def send(self, data: bytes) -> None:
        if self._lock.locked():
            async with self._lock:
                await self._stream.send_all(data)
            return
        # Free: taken without a checkpoint, and the line written at once when the pipe has
        # room (it usually has), so an answer costs no trip through trio's scheduler.
        self._lock.acquire_nowait()
        try:
            sent = 0
            if self._fd is not None:
                with contextlib.suppress(OSError):  # send_all retries, and raises trio's errors
                    sent = os.write(self._fd, data)
            if sent < len(data):
                await self._stream.send_all(data[sent:] if sent else data)
        finally:
            self._lock.release()

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()


def _parse(line: bytes) -> tuple[tuple[int, str, Any] | None, dict[str, Any]]:
    """The message of a line, and the (code, message, id) of the error it needs, if any."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return (PARSE_ERROR, f"Parse error: {exc}", None), {}
    if not isinstance(message, dict):
        return (INVALID_REQUEST, "Invalid Request: a message must be a JSON object", None), {}
    msg_id = message.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, _ID_OR_NONE):
        return (INVALID_REQUEST, "Invalid Request: id must be a string or an integer", None), {}
    if message.get("jsonrpc") != "2.0":
        return (INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', msg_id), message
    if _too_deep(line, message):
        deep = f"Invalid Request: nested deeper than {MAX_NESTING} levels"
        return (INVALID_REQUEST, deep, msg_id), message
    if "method" in message:
        if not isinstance(message["method"], str):
            return (INVALID_REQUEST, "Invalid Request: method must be a string", msg_id), message
        if not isinstance(message.get("params", {}), dict):
            return (INVALID_REQUEST, "Invalid Request: params must be an object", msg_id), message
    elif msg_id is None or ("result" not in message and "error" not in message):
        return (
            INVALID_REQUEST,
            "Invalid Request: neither a request nor a response",
            msg_id,
        ), message
    return None, message


class _Unanswered:
    """Requests passed to the SDK and not answered yet: a stop waits for their answers."""

    def __init__(self) -> None:
        self._ids: set[str | int] = set()
        self._emptied: trio.Event | None = None  # only while a stop waits

    def asked(self, message: dict[str, Any]) -> None:
        if message.get("method") == "notifications/cancelled":
            # A cancelled request gets no answer: nothing to wait for.
            params = message.get("params") or {}
            self.discard(params.get("requestId"))
        elif "method" in message and message.get("id") is not None:
            self._ids.add(message["id"])

    def answered(self, data: bytes) -> None:
        if not self._ids:
            return
        head = ANSWER_HEAD.match(data)  # the SDK's usual form; anything else is parsed
        if head is not None:
            self.discard(orjson.loads(head.group(1)))
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict) and "method" not in message:
            self.discard(message.get("id"))

    def discard(self, msg_id: Any) -> None:
        if isinstance(msg_id, _ID):
            self._ids.discard(msg_id)
        if not self._ids and self._emptied is not None:
            self._emptied.set()

    async def wait_none(self) -> None:
        while self._ids:
            self._emptied = trio.Event()
            await self._emptied.wait()


def _too_deep(line: bytes, message: dict[str, Any]) -> bool:
    """Whether ``message`` (parsed from ``line``) nests containers past :data:`MAX_NESTING`."""
    if line.count(b"[") + line.count(b"{") <= MAX_NESTING:
        return False  # too few brackets to nest that deep: the usual case, and cheap
    stack: list[tuple[Any, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, _CONTAINER))
    return False


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
        prelude: Prelude | None = None,
        cache: CachedAnswers | None = None,
    ) -> None:
        self._stream = stream
        self._fd = stream.fileno() if isinstance(stream, trio.lowlevel.FdStream) else None
        self._prelude = bytes(prelude.data) if prelude is not None else b""
        self._eof = prelude is not None and prelude.eof  # the early door met end of input
        self._cache = cache
        self._limit = limit
        self._writer = writer
        self._hold = hold
        self._lean = lean
        self._stopped = False
        self._receiving: trio.CancelScope | None = None

    def stop(self) -> None:
        """Read no further; the lines end once every request read is answered."""
        self._stopped = True
        if self._receiving is not None:
            self._receiving.cancel()

    async def _receive(self) -> bytes | bytearray:
        if self._stopped:
            return b""
        if self._prelude:  # what the early door read comes first, in order
            data, self._prelude = self._prelude, b""
            return data
        if self._eof:
            return b""
        if self._fd is None:
            with trio.CancelScope() as self._receiving:
                return await self._stream.receive_some(_CHUNK)
            return b""  # stop() cancelled the wait
        # Read first, wait only when there is nothing (the usual case between requests):
        # one trip through trio's scheduler a request instead of three.
        waited = False
        while True:
            try:
                data = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                with trio.CancelScope() as self._receiving:
                    await trio.lowlevel.wait_readable(self._fd)
                    waited = True
                    continue
                return b""  # stop() cancelled the wait
            except OSError as exc:  # as FdStream.receive_some says it
                if exc.errno == errno.EBADF:
                    raise trio.ClosedResourceError("file was already closed") from None
                raise trio.BrokenResourceError from exc
            if not waited:  # data kept coming: let the calls it started run meanwhile
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def _refuse(self, code: int, message: str, msg_id: Any, size: int) -> None:
        log.warning("mcp.stdio_bad_line", code=code, error=message[:200], line_bytes=size)
        if self._writer is not None:
            error = {"code": code, "message": message}
            answer = {"jsonrpc": "2.0", "id": msg_id, "error": error}
            # Not through write(): this answer's id may be a request's still in flight.
            await self._writer.send(orjson.dumps(answer) + b"\n")

    async def _accept(self, line: bytes) -> bool:
        """Whether to pass ``line`` on (a JSON-RPC message); answers and logs it if not."""
        problem, message = _parse(line)
        if problem is not None:
            await self._refuse(*problem, len(line))
            return False
        if self._writer is not None:
            self._writer.unanswered.asked(message)
        if self._cache is not None:
            self._cache.asked(message)
        if self._lean is not None and self._lean.take(message, line):
            return False
        hold = self._hold
        if hold is not None and not hold.is_set() and message.get("method") in HELD_METHODS:
            await hold.wait()
        return True

    async def __aiter__(self) -> AsyncIterator[str]:
        splitter = RecordSplitter(b"\n", self._limit, noun="line")
        while data := await self._receive():
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
        if self._stopped:  # not EOF: the client is still there and waits for its answers
            if self._writer is not None:
                await self._writer.unanswered.wait_none()
            return
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
    stopping: trio.Event | None = None,
    lean_calls: bool = True,
    early: EarlyStart | None = None,
) -> None:
    """Serve one MCP connection over stdin/stdout until stdin closes (or ``stopping`` is set).

    With ``divert`` (the default), fd ``stdin_fd`` reads /dev/null and fd ``stdout_fd``
    writes to stderr while serving; both are restored on return. With ``hold``, tool calls
    and resource reads wait until it is set (the rest is answered at once). Once
    ``stopping`` is set no more requests are read; those read are answered before return.
    ``lean_calls`` False sends every request through the SDK's session layer (tests compare
    the two). ``early``: the early door of ``qsysd._early`` (taken over first) and its
    answer cache (answers recorded into it).
    """
    prelude = None
    if early is not None and early.door is not None:
        prelude = await trio.to_thread.run_sync(early.door.take_over)
        if prelude.answered:
            log.info(
                "mcp.stdio_early_answered",
                methods=[method for _, method, _, _ in prelude.answered],
                read_bytes=len(prelude.data),
                eof=prelude.eof,
            )
    cache = early.cache if early is not None else None
    if cache is not None and cache.problem is not None:
        log.warning(
            "mcp.stdio_cache_unusable",
            path=str(cache.path),
            problem=cache.problem,
            hint="ignored; it is written anew once the daemon is ready",
        )
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
    answers = None
    if early is not None:
        answers = CachedAnswers(cache, prelude, writer.send)
        writer.cache = answers
    lean = make_lean_calls(server, writer) if lean_calls else None
    if lean is not None:
        lean.hold = hold
    reader = _LineReader(
        receive, writer=writer, hold=hold, lean=lean, prelude=prelude, cache=answers
    )
    # While answers are cached, a stale tools/list is corrected with list_changed: declared.
    options = NotificationOptions(tools_changed=cache is not None)
    log.info("mcp.stdio_serving", lean_calls=lean is not None, early=prelude is not None)
    try:
        async with receive, send, trio.open_nursery() as nursery:
            if lean is not None:
                await nursery.start(lean.run)
            if stopping is not None:
                nursery.start_soon(_stop_reading, stopping, reader)
            if answers is not None:
                nursery.start_soon(answers.keep_saved, hold)
            async with stdio_server(stdin=cast(Any, reader), stdout=cast(Any, writer)) as (
                read_stream,
                write_stream,
            ):
                await server.run(
                    read_stream, write_stream, server.create_initialization_options(options)
                )
            if answers is not None:
                await answers.save_last()
            # End of input: calls still running end (answered "Connection closed"), as the SDK's.
            nursery.cancel_scope.cancel()
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        log.info("mcp.stdio_closed")


async def _stop_reading(stopping: trio.Event, reader: _LineReader) -> None:
    await stopping.wait()
    reader.stop()
