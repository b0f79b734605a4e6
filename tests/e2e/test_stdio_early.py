"""`qsysd serve --stdio`'s early door: the second spawn answers from the answer cache.

Real processes on real pipes: the first spawn's answers are recorded in the state folder,
the second's come from the cache before the MCP SDK is imported (its log says so), byte for
byte the same; a stale, corrupt or foreign cache is corrected or ignored, never fatal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp import Client, StdioServerParameters

from qsysd._early import CACHE_FILE
from qsysd.emulator import EmulatorServer, demo_design, serve_emulator
from tests.e2e.test_stdio_door import INIT as DOOR_INIT
from tests.e2e.test_stdio_serve import MODES, config_for

WAIT = 30.0
PV = "io.modelcontextprotocol/protocolVersion"
INIT: dict[str, Any] = json.loads(DOOR_INIT)
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
ENVELOPE = {"_meta": {PV: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}
DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": ENVELOPE}
MODERN_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": ENVELOPE}
STATUS_CALL = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "qsys_status", "arguments": {}},
}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


class Daemon:
    """One `qsysd serve --stdio` child: raw lines in and out, its stderr kept."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buffer = bytearray()
        self.stderr = bytearray()
        self._arrived = trio.Event()

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def line(self) -> bytes:
        """The next line on stdout, its newline included."""
        assert self.process.stdout is not None
        while (end := self.buffer.find(b"\n")) < 0:
            data = await self.process.stdout.receive_some(1 << 20)
            assert data, "qsysd closed stdout"
            self.buffer += data
        out = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return out

    async def follow_stderr(self) -> None:
        assert self.process.stderr is not None
        while data := await self.process.stderr.receive_some(65536):
            self.stderr += data
            self._arrived.set()
            self._arrived = trio.Event()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for text in self.stderr.decode().splitlines():
            assert text.startswith("{"), f"not a log line: {text}"  # never a traceback
            out.append(json.loads(text))
        return out

    async def wait_event(self, name: str) -> dict[str, Any]:
        while True:
            for record in self.events():
                if record.get("event") == name:
                    return record
            await self._arrived.wait()

    async def close(self) -> int:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        return await self.process.wait()


@asynccontextmanager
async def spawned(config: Path, **env: str) -> AsyncIterator[Daemon]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "qsysd", "serve", "--stdio", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, QSYSD_LOAD_PLUGINS="", **env),
    )
    daemon = Daemon(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.follow_stderr)
            with trio.fail_after(WAIT):
                yield daemon
                if process.returncode is None:
                    assert await daemon.close() == 0
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with serve_emulator(demo_design()) as emu:
        yield emu


async def session(config: Path, opening: list[dict[str, Any]]) -> tuple[list[bytes], Daemon]:
    """Spawn, send ``opening``, read its answers, make a (held) call, close: answers, daemon."""
    async with spawned(config) as daemon:
        await daemon.send(b"".join(line(m) for m in opening))
        answers = [await daemon.line() for m in opening if "id" in m]
        call = STATUS_CALL
        if opening is MODERN_OPENING:
            call = {**call, "params": {**call["params"], **ENVELOPE}}
        await daemon.send(line(call))  # answered once the Core is synced: ready
        called = json.loads(await daemon.line())
        assert called["id"] == 3 and not called["result"]["isError"], called
    return answers, daemon


def early_methods(daemon: Daemon) -> list[str] | None:
    for record in daemon.events():
        if record["event"] == "mcp.stdio_early_answered":
            methods: list[str] = record["methods"]
            return methods
    return None


LEGACY_OPENING = [INIT, INITIALIZED, LIST]
MODERN_OPENING = [DISCOVER, MODERN_LIST]


@pytest.mark.parametrize("opening", [LEGACY_OPENING, MODERN_OPENING], ids=["2025", "2026"])
async def test_the_second_spawn_answers_from_the_cache_byte_for_byte(
    emulator: EmulatorServer, tmp_path: Path, opening: list[dict[str, Any]]
) -> None:
    config = config_for(emulator, tmp_path)
    first, daemon = await session(config, opening)
    assert early_methods(daemon) is None  # nothing cached yet: the SDK answered
    cache = tmp_path / "state" / CACHE_FILE
    assert cache.stat().st_mode & 0o777 == 0o600
    # answers and hashes only: nothing of the configuration or the client in clear
    stored = cache.read_text()
    assert "127.0.0.1" not in stored and "Core_Status" not in stored and "pipe" not in stored
    second, daemon = await session(config, opening)
    assert early_methods(daemon) == [m["method"] for m in opening if "id" in m]
    assert second == first  # the same bytes as the SDK's own answers
    assert not [r for r in daemon.events() if r["event"] == "mcp.stdio_cache_stale"]
    if opening is LEGACY_OPENING:
        capabilities = json.loads(first[0])["result"]["capabilities"]
        assert capabilities["tools"] == {"listChanged": True}  # declared while caching


@pytest.mark.parametrize("mode", MODES)
async def test_the_sdk_client_works_over_a_cold_and_a_warm_start(
    emulator: EmulatorServer, tmp_path: Path, mode: str
) -> None:
    config = config_for(emulator, tmp_path)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qsysd", "serve", "--stdio", "--config", str(config)],
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )
    listings = []
    for _ in range(2):
        with trio.fail_after(WAIT):
            async with Client(params, mode=mode) as client:
                listings.append(sorted(t.name for t in (await client.list_tools()).tools))
                result = await client.call_tool("qsys_status", {})
                assert not result.is_error
    assert listings[0] == listings[1] and "qsys_get" in listings[0]
    assert (tmp_path / "state" / CACHE_FILE).exists()


async def staled(
    emulator: EmulatorServer, tmp_path: Path, opening: list[dict[str, Any]]
) -> tuple[Path, list[bytes], Path]:
    """A warm cache whose tools/list is stale: (config, the first answers, the cache file)."""
    config = config_for(emulator, tmp_path)
    first, _ = await session(config, opening)
    cache = tmp_path / "state" / CACHE_FILE
    text = cache.read_text()
    # the tool set as a previous version had it: qsys_status described differently
    assert text.count("Connection and engine status") == 1
    cache.write_text(text.replace("Connection and engine status", "Status of old"))
    return config, first, cache


async def test_a_stale_tools_list_is_corrected_with_list_changed(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first, cache = await staled(emulator, tmp_path, LEGACY_OPENING)
    async with spawned(config) as daemon:
        await daemon.send(b"".join(line(m) for m in LEGACY_OPENING))
        assert await daemon.line() == first[0]
        stale = await daemon.line()
        assert b"Status of old" in stale  # the early door answered from the stale cache
        changed = json.loads(await daemon.line())
        assert changed == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        warning = await daemon.wait_event("mcp.stdio_cache_stale")
        assert warning["level"] == "warning" and warning["method"] == "tools/list"
        await daemon.send(line({**LIST, "id": 9}))  # the client lists again
        relisted = await daemon.line()
        assert relisted == first[1].replace(b'"id":2', b'"id":9', 1)
        await daemon.send(line(STATUS_CALL))
        assert json.loads(await daemon.line())["id"] == 3
    assert "Status of old" not in cache.read_text()  # corrected for the next start
    third, daemon = await session(config, LEGACY_OPENING)
    assert third == first and early_methods(daemon) == ["initialize", "tools/list"]


async def test_a_changed_configuration_is_a_miss_not_a_stale_answer(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    first, _ = await session(config_for(emulator, tmp_path), LEGACY_OPENING)
    # another stdio role sees another tool set: the configuration is part of the key
    changed = config_for(emulator, tmp_path, '[auth]\nstdio_role = "viewer"\n')
    answers, daemon = await session(changed, LEGACY_OPENING)
    assert early_methods(daemon) is None
    assert answers[1] != first[1]  # viewer: no write tools
    again, daemon = await session(changed, LEGACY_OPENING)
    assert again == answers and early_methods(daemon) == ["initialize", "tools/list"]


@pytest.mark.parametrize(
    "content",
    [b'{"format": 1, "salt": "00', b"\x00\xff garbage", b'{"format": 7}', b"[1, 2]"],
    ids=["truncated", "binary", "foreign-format", "foreign-shape"],
)
async def test_a_corrupt_cache_is_ignored_with_a_warning_and_rewritten(
    emulator: EmulatorServer, tmp_path: Path, content: bytes
) -> None:
    config = config_for(emulator, tmp_path)
    first, _ = await session(config, LEGACY_OPENING)
    cache = tmp_path / "state" / CACHE_FILE
    cache.write_bytes(content)
    answers, daemon = await session(config, LEGACY_OPENING)
    assert answers == first and early_methods(daemon) is None
    warning = await daemon.wait_event("mcp.stdio_cache_unusable")
    assert warning["level"] == "warning" and warning["problem"]
    json.loads(cache.read_bytes())  # written anew
    _, daemon = await session(config, LEGACY_OPENING)
    assert early_methods(daemon) == ["initialize", "tools/list"]


async def test_the_cache_switch_off_reads_and_writes_nothing(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config = config_for(emulator, tmp_path, "[daemon]\nstdio_cache = false\n")
    answers, _ = await session(config, LEGACY_OPENING)
    assert json.loads(answers[0])["result"]["capabilities"]["tools"] == {"listChanged": False}
    assert not (tmp_path / "state" / CACHE_FILE).exists()


async def warm(emulator: EmulatorServer, tmp_path: Path) -> tuple[Path, list[bytes]]:
    config = config_for(emulator, tmp_path)
    first, _ = await session(config, LEGACY_OPENING)
    return config, first


async def test_end_of_input_during_the_early_phase_stops_the_daemon(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first = await warm(emulator, tmp_path)
    async with spawned(config) as daemon:
        await daemon.send(b"".join(line(m) for m in LEGACY_OPENING))
        assert daemon.process.stdin is not None
        await daemon.process.stdin.aclose()  # the client leaves before qsysd finished importing
        assert [await daemon.line(), await daemon.line()] == first
        assert await daemon.process.wait() == 0
        await daemon.wait_event("daemon.stopped")
    record = next(r for r in daemon.events() if r["event"] == "mcp.stdio_early_answered")
    assert record["eof"] is True


async def test_a_cancel_during_the_early_phase_reaches_the_session(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first = await warm(emulator, tmp_path)
    async with spawned(config) as daemon:
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 3, "reason": "changed my mind"},
        }
        # the call is held (not cached): the early door stops there; the cancel follows it
        opening = [
            *LEGACY_OPENING,
            STATUS_CALL,
            cancel,
            {"jsonrpc": "2.0", "id": 4, "method": "ping"},
        ]
        await daemon.send(b"".join(line(m) for m in opening))
        assert [await daemon.line(), await daemon.line()] == first
        assert json.loads(await daemon.line()) == {"jsonrpc": "2.0", "id": 4, "result": {}}
        await daemon.send(line({**STATUS_CALL, "id": 5}))
        answer = json.loads(await daemon.line())
        assert answer["id"] == 5  # the cancelled call (3) was never answered
    assert early_methods(daemon) == ["initialize", "tools/list"]


async def test_bad_lines_during_the_early_phase_get_the_real_doors_errors(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first = await warm(emulator, tmp_path)
    async with spawned(config) as daemon:
        huge = b'{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":"' + b"a" * (17 << 20)
        await daemon.send(line(INIT) + b"not json\n" + huge + b'"}}\n')
        assert await daemon.line() == first[0]
        parse = json.loads(await daemon.line())
        assert parse["error"]["code"] == -32700 and parse["id"] is None
        too_long = json.loads(await daemon.line())
        assert too_long["error"] == {
            "code": -32600,
            "message": "Invalid Request: a line over 16777216 bytes",
        }
        await daemon.send(line(INITIALIZED) + line({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        assert json.loads(await daemon.line()) == {"jsonrpc": "2.0", "id": 9, "result": {}}
    assert early_methods(daemon) == ["initialize"]
    bad = [r for r in daemon.events() if r["event"] == "mcp.stdio_bad_line"]
    assert len(bad) == 2


async def test_a_stale_tools_list_on_2026_is_told_to_the_listen_stream(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config, first, cache = await staled(emulator, tmp_path, MODERN_OPENING)
    listen = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True}, **ENVELOPE},
    }
    async with spawned(config) as daemon:
        await daemon.send(b"".join(line(m) for m in [*MODERN_OPENING, listen]))
        assert await daemon.line() == first[0]
        assert b"Status of old" in await daemon.line()
        ack = json.loads(await daemon.line())
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        changed = json.loads(await daemon.line())
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 3
        await daemon.wait_event("mcp.stdio_cache_stale")
        call = {**STATUS_CALL, "id": 4, "params": {**STATUS_CALL["params"], **ENVELOPE}}
        await daemon.send(line(call))  # answered once the daemon is ready: the cache is saved
        assert json.loads(await daemon.line())["id"] == 4
    assert "Status of old" not in cache.read_text()
