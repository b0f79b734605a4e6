"""The processes a benchmark drives: the emulator, the daemon, the baseline server, and clients.

Every server runs in its own process, so no figure pays for another's event loop: the
emulator (``qsysd emulate``), the daemon (``qsysd serve --stdio``) and the bare SDK server
(``bench._noop_server``). :class:`LineClient` is the minimal JSON-RPC client on a child's
stdio (write a line, read lines until the answer with that id), speaking either protocol era,
with orjson (so a figure is little of the client's own: parsing a listing's 60 KB answer costs
it 0.07 ms, where the stdlib's json takes 0.25 ms);
:class:`RawQrc` is a QRC client on a plain TCP socket.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio

from qsysd.qrc import FrameDecoder, Request, Response, encode_frame

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ERAS = (LEGACY, MODERN)
_PV_KEY = "io.modelcontextprotocol/protocolVersion"
_CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"
_INFO_KEY = "io.modelcontextprotocol/clientInfo"
_CLIENT_INFO = {"name": "qsysd-bench", "version": "1"}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class Emulator:
    """``qsysd emulate`` in its own process on a free port."""

    def __init__(self, process: trio.Process, port: int) -> None:
        self.process = process
        self.host = "127.0.0.1"
        self.port = port


@asynccontextmanager
async def emulator(components: int | None) -> AsyncIterator[Emulator]:
    args = [sys.executable, "-m", "qsysd", "emulate", "--listen", "127.0.0.1:0"]
    args += ["--ws-listen", "off", "--idle-timeout", "3600", "--log-level", "info"]
    if components is not None:
        args += ["--generate", str(components)]
    process = await trio.lowlevel.open_process(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        port = None
        buffer = b""
        with trio.fail_after(60):
            while port is None:
                data = await process.stderr.receive_some(65536)
                if not data:
                    raise RuntimeError("the emulator exited before listening")
                buffer += data
                found = re.search(rb'"qrc": "127\.0\.0\.1:(\d+)"', buffer)
                if found:
                    port = int(found.group(1))
        # Keep draining its log so it never blocks on a full pipe.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, process.stderr)
            yield Emulator(process, port)
            nursery.cancel_scope.cancel()
    finally:
        await _stop(process)


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(65536):
        pass


async def _stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def write_config(
    folder: Path, emu: Emulator, *, journal: bool = True, level: str = "warning"
) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f'[[cores]]\nname = "bench"\nhost = "{emu.host}"\nport = {emu.port}\n'
        f'[state]\ndir = "{folder / "state"}"\njournal = {"true" if journal else "false"}\n'
        f'[policy]\nmax_gain_step_db = 120.0\n[logging]\nlevel = "{level}"\n'
    )
    return path


def daemon_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "qsysd", "serve", "--stdio", "--config", str(config)]


def noop_argv() -> list[str]:
    return [sys.executable, "-m", "bench._noop_server"]


def floor_argv() -> list[str]:
    return [sys.executable, "-m", "bench._floor_server"]


def child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return dict(
        os.environ, QSYSD_LOAD_PLUGINS="", PYTHONPATH=root if not path else f"{root}:{path}"
    )


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class LineClient:
    """JSON-RPC over a child's stdin/stdout, one line a message, in either protocol era."""

    def __init__(self, process: trio.Process, era: str) -> None:
        self.process = process
        self.era = era
        self.spawned = time.perf_counter()
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self.stderr_lines: list[bytes] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(orjson.dumps(message) + b"\n")

    async def _line(self) -> bytes:
        assert self.process.stdout is not None
        while (end := self._buffer.find(b"\n")) < 0:
            data = await self.process.stdout.receive_some(1 << 20)
            if not data:
                raise EOFError("the server closed its stdout")
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        msg_id = next(self._ids)
        params = dict(params or {})
        if self.era != LEGACY:
            meta = dict(params.get("_meta", {}))
            meta.update({_PV_KEY: self.era, _CAPS_KEY: {}, _INFO_KEY: _CLIENT_INFO})
            params["_meta"] = meta
        await self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            answer = orjson.loads(await self._line())
            if answer.get("id") == msg_id:
                if "error" in answer:
                    raise RpcError(answer["error"])
                return answer["result"]

    async def initialize(self) -> None:
        if self.era == LEGACY:
            await self.request(
                "initialize",
                {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": _CLIENT_INFO},
            )
            await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "tools/call", {"name": tool, "arguments": arguments}
        )
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result['content'][0]['text']}")
        return result


@asynccontextmanager
async def spawned(argv: list[str], era: str, *, keep: int = 50) -> AsyncIterator[LineClient]:
    """A child on stdio pipes with its stderr drained (the last ``keep`` reads kept);
    closes stdin and waits on exit."""
    started = time.perf_counter()
    process = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=child_env(),
    )  # fmt: skip
    client = LineClient(process, era)
    client.spawned = started
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_lines, process.stderr, client.stderr_lines, keep)
            yield client
            assert process.stdin is not None
            await process.stdin.aclose()
            with trio.move_on_after(15):
                await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        await _stop(process)


async def _keep_lines(stream: Any, lines: list[bytes], keep: int) -> None:
    while data := await stream.receive_some(65536):
        lines.append(data)
        del lines[:-keep]


class RawQrc:
    """One TCP connection speaking QRC frames, one request at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.ids = itertools.count(1)

    async def call(self, method: str, params: Any) -> Any:
        msg_id = next(self.ids)
        await self.stream.send_all(encode_frame(Request(method, params, msg_id)))
        while True:
            message = self.decoder.next_message()
            if message is None:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError("emulator closed the connection")
                self.decoder.receive_data(data)
                continue
            if isinstance(message, Response) and message.id == msg_id:
                return message.result


@asynccontextmanager
async def raw_qrc(emu: Emulator) -> AsyncIterator[RawQrc]:
    stream = await trio.open_tcp_stream(emu.host, emu.port)
    async with stream:
        yield RawQrc(stream)
