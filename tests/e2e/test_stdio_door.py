"""`qsysd serve --stdio` on a raw pipe: the door opens before the Core is synced, and every
line gets an answer, even one the JSON-RPC parser rejects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from qsysd.emulator import serve_emulator
from tests.e2e.test_stdio_serve import config_for

WAIT = 30.0


class Pipe:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buffer = bytearray()

    async def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line + b"\n")

    async def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while (end := self.buffer.find(b"\n")) < 0:
            data = await self.process.stdout.receive_some(65536)
            assert data, "qsysd closed stdout"
            self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        answer: dict[str, Any] = json.loads(line)
        return answer


async def open_pipe(config: Path) -> Pipe:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "qsysd", "serve", "--stdio", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )
    return Pipe(process)


async def close(pipe: Pipe) -> None:
    assert pipe.process.stdin is not None
    await pipe.process.stdin.aclose()
    with trio.fail_after(WAIT):
        assert await pipe.process.wait() == 0


INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "pipe", "version": "1"},
        },
    }
).encode()
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


async def test_tools_list_is_answered_before_the_core_is_synced_and_a_call_waits_for_it(
    tmp_path: Path,
) -> None:
    async with serve_emulator() as emulator:
        emulator.stall()  # the Core accepts the connection and answers nothing
        pipe = await open_pipe(config_for(emulator, tmp_path))
        with trio.fail_after(WAIT):
            await pipe.send(INIT)
            assert (await pipe.answer())["id"] == 1
            await pipe.send(INITIALIZED)
            await pipe.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
            listing = await pipe.answer()
            assert listing["id"] == 2 and listing["result"]["tools"]
            # qsysd answered tools/list with the Core silent: the door opened before sync
            call = {"name": "qsys_get", "arguments": {"controls": ["Bar.gain"]}}
            request = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call}
            await pipe.send(json.dumps(request).encode())
            emulator.stall(False)  # the held call is answered once the Core is synced
            answer = await pipe.answer()
        assert answer["id"] == 3
        assert not answer["result"]["isError"], answer
        value = answer["result"]["structuredContent"]["values"][0]
        assert value["control"] == "Bar.gain" and value["stale"] is False
        await close(pipe)


async def test_lines_the_parser_rejects_are_answered_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    async with serve_emulator() as emulator:
        pipe = await open_pipe(config_for(emulator, tmp_path))
        with trio.fail_after(WAIT):
            await pipe.send(INIT)
            assert (await pipe.answer())["id"] == 1
            await pipe.send(INITIALIZED)
            bad = [
                (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"\\ud800"}}',
                 -32700),
                (b"{" * 5000, -32700),
                (b"not json", -32700),
                (b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":"x"}', -32600),
            ]  # fmt: skip
            for line, code in bad:
                await pipe.send(line)
                answer = await pipe.answer()
                assert answer["error"]["code"] == code, (line[:40], answer)
            await pipe.send(b'{"jsonrpc":"2.0","id":7,"method":"ping"}')
            assert (await pipe.answer()) == {"jsonrpc": "2.0", "id": 7, "result": {}}
        await close(pipe)
