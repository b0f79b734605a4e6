"""MCP over stdio on trio file descriptors, with stray output kept off the wire.

The SDK's own ``stdio_server()`` moves every line through worker threads; here the wire is
a pair of :class:`trio.lowlevel.FdStream` on duplicates of fds 0 and 1, and fd 0 is then
pointed at /dev/null and fd 1 at stderr, so a stray ``print()`` (ours, a plugin's, a child
process's) cannot corrupt the JSON-RPC stream.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, cast

import structlog
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

__all__ = ["serve_stdio"]

log = structlog.get_logger(__name__)

_CHUNK = 65536


#: A longer line from the MCP client is dropped (and logged): no real request comes near it.
MAX_LINE_BYTES = 16 * 1024 * 1024


class _LineReader:
    """Async iteration over the UTF-8 lines of a receive stream, each at most ``limit`` bytes."""

    def __init__(self, stream: trio.abc.ReceiveStream, limit: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[str]:
        buffer = bytearray()
        scanned = 0  # bytes of buffer known to hold no newline
        skipping = False  # inside an oversize line: drop bytes up to its newline
        while True:
            data = await self._stream.receive_some(_CHUNK)
            if not data:
                break
            buffer += data
            while (end := buffer.find(b"\n", scanned)) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                scanned = 0
                if not skipping and len(line) > self._limit:
                    log.error("mcp.stdio_line_too_long", limit_bytes=self._limit)
                elif not skipping and line.strip():
                    yield line.decode("utf-8", errors="replace")
                skipping = False
            if len(buffer) > self._limit:
                if not skipping:
                    log.error("mcp.stdio_line_too_long", limit_bytes=self._limit)
                skipping = True
                buffer.clear()
            scanned = len(buffer)
        if buffer.strip() and not skipping:
            yield buffer.decode("utf-8", errors="replace")


class _Writer:
    """``write()``/``flush()`` of text onto a send stream (each write is one message line)."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream

    async def write(self, text: str) -> None:
        await self._stream.send_all(text.encode("utf-8"))

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()


async def serve_stdio(
    server: Server[Any], *, stdin_fd: int = 0, stdout_fd: int = 1, divert: bool = True
) -> None:
    """Serve one MCP connection over stdin/stdout until stdin closes.

    With ``divert`` (the default), fd ``stdin_fd`` reads /dev/null and fd ``stdout_fd``
    writes to stderr while serving; both are restored on return.
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
    log.info("mcp.stdio_serving")
    try:
        async with (
            receive,
            send,
            stdio_server(
                stdin=cast(Any, _LineReader(receive)), stdout=cast(Any, _Writer(send))
            ) as (read_stream, write_stream),
        ):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        log.info("mcp.stdio_closed")
