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


class _LineReader:
    """Async iteration over the UTF-8 lines of a receive stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[str]:
        pending = b""
        while True:
            data = await self._stream.receive_some(_CHUNK)
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line.decode("utf-8", errors="replace")
        if pending.strip():
            yield pending.decode("utf-8", errors="replace")


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
