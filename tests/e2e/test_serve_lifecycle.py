"""`qsysd serve` as a subprocess: graceful stop on every door, a forced stop, SIGHUP, fd://."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from test_http_serve import QSYSD, WAIT, LogTail, _wait_in_flight, write_config

from qsysd.emulator import demo_design, serve_emulator

RAMPED_WRITE = {"changes": [{"control": "Bar.gain", "value": -16, "ramp": 1}]}
SLOW_READ = {"controls": ["Restaurant.gain"], "fresh": True}


class StdioWire:
    """An MCP client on the daemon's stdin/stdout: JSON-RPC lines, as the protocol defines them."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.buffer = b""

    async def send(self, message: dict[str, Any]) -> None:
        await self.stdin.send_all(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def answer(self, request_id: int) -> dict[str, Any]:
        """The answer to ``request_id`` (notifications before it are skipped)."""
        while True:
            *lines, self.buffer = self.buffer.split(b"\n")
            for index, line in enumerate(lines):
                message = json.loads(line)
                if message.get("id") == request_id:
                    self.buffer = b"\n".join([*lines[index + 1 :], self.buffer])
                    return dict(message)
            chunk = await self.stdout.receive_some(65536)
            assert chunk, f"stdout closed before the answer to request {request_id}"
            self.buffer += chunk

    async def initialize(self) -> None:
        await self.send(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "lifecycle-test", "version": "1"},
                },
            }
        )
        assert "result" in await self.answer(1)
        await self.send({"method": "notifications/initialized"})

    async def call_tool(self, request_id: int, name: str, arguments: dict[str, Any]) -> None:
        await self.send(
            {
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )


@asynccontextmanager
async def serve(
    config: Path, *, stdio: bool = False, command: list[str] | None = None, **options: Any
) -> AsyncIterator[tuple[trio.Process, LogTail]]:
    """`qsysd serve` (with ``--stdio``) as a subprocess, its stderr followed as it comes."""
    args = command or [*QSYSD, "serve", *(["--stdio"] if stdio else []), "--config", str(config)]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                args,
                stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
                check=False,
                **options,
            )
        )
        assert process.stderr is not None
        logs = LogTail()
        nursery.start_soon(logs.follow, process.stderr)
        try:
            yield process, logs
        finally:
            if process.returncode is None:
                process.kill()


async def test_sigterm_lets_a_ramped_write_on_stdio_and_a_slow_read_on_rest_finish(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator, core="keepalive_interval = 59.0\n")
            async with serve(config, stdio=True) as (process, logs):
                base = str((await logs.wait_for("http.listening"))["urls"][0]).rstrip("/")
                wire = StdioWire(process)
                await wire.initialize()
                await logs.wait_for("daemon.ready")
                emulator.set_reply_delay(1.0)  # every answer of the Core takes a second
                answers: dict[str, Any] = {}

                async def rest_read() -> None:
                    async with httpx.AsyncClient(timeout=WAIT) as client:
                        answers["rest"] = await client.post(
                            f"{base}/api/v1/tools/qsys_get", json=SLOW_READ
                        )

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(rest_read)
                    await wire.call_tool(2, "qsys_set", RAMPED_WRITE)
                    await _wait_in_flight(base, 2)  # both calls wait for the Core now
                    process.send_signal(signal.SIGTERM)
                    answers["stdio"] = await wire.answer(2)
                assert await process.wait() == 0
                await logs.wait_for("daemon.stopped")
    written = answers["stdio"]["result"]
    assert written["isError"] is False, written
    assert written["structuredContent"]["results"][0]["ok"] is True
    assert answers["rest"].status_code == 200, answers["rest"].text
    assert answers["rest"].json()["values"][0]["control"] == "Restaurant.gain"
    assert emulator.get_value("Bar", "gain") == -16
    events = [r["event"] for r in logs.records]
    stopping = events.index("daemon.stopping")
    assert events.index("daemon.signal") < stopping
    called = [r for r in logs.records[stopping:] if r["event"] == "tool.called"]
    assert {r["door"] for r in called} == {"stdio", "rest"}
    assert stopping < events.index("core.link_stopped") < events.index("daemon.stopped")
    snapshot = json.loads((tmp_path / "state" / "snapshot.json").read_text())
    assert "venue" in json.dumps(snapshot)
    assert (tmp_path / "state" / "journal.sqlite3").is_file()
