"""The floor: the least a trio stdio server can do per request, with no MCP SDK at all.

Run as ``python -m bench._floor_server``. It reads lines from fd 0 as qsysd's door does (a
non-blocking pipe, wait only when empty), answers each request in a task of its own (what
keeps qsysd's calls concurrent and cancellable) with a fixed answer written straight to fd
1: ``initialize`` with a 2025-11-25 result, ``tools/list`` with one tool, ``noop``, and
every ``tools/call`` with the text ``ok``. Its CPU per call is what one request costs in
Python on trio before any work: a read, a parse, a task, a write.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import trio

_NOOP = {"name": "noop", "description": "Does nothing.", "inputSchema": {"type": "object"}}
_RESULTS: dict[str, Any] = {
    "initialize": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "floor", "version": "1"},
    },
    "tools/list": {"tools": [_NOOP]},
    "tools/call": {"content": [{"type": "text", "text": "ok"}], "isError": False},
    "ping": {},
}


async def _answer(out: int, message: dict[str, Any]) -> None:
    with trio.CancelScope():  # noqa: ASYNC100 (its cost is part of the floor: a call has one)
        result = _RESULTS.get(message["method"])
        if result is None:
            answer = {"code": -32601, "message": f"Method not found: {message['method']}"}
            line = {"jsonrpc": "2.0", "id": message["id"], "error": answer}
        else:
            line = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        os.write(out, orjson.dumps(line) + b"\n")


async def main() -> None:
    read_fd, out = os.dup(0), os.dup(1)
    os.set_blocking(read_fd, False)
    buffer = bytearray()
    async with trio.open_nursery() as nursery:
        while True:
            try:
                data = os.read(read_fd, 65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(read_fd)
                continue
            if not data:
                return
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                message = orjson.loads(bytes(buffer[:end]))
                del buffer[: end + 1]
                if "id" in message and "method" in message:
                    nursery.start_soon(_answer, out, message)


if __name__ == "__main__":
    trio.run(main)
