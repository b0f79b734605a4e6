"""Tool-call latency over stdio against the raw QRC round trip, to the same emulator, one run.

Starts an emulated Core (demo design) in this process, runs ``python -m qsysd serve --stdio
--config FILE`` against it as an MCP host would (the SDK's stdio Client), and measures:

- ``qsys_get`` of one control (a cached read: answered from the StateStore);
- ``qsys_set`` of one gain (a write: policy, Component.Set with ResponseValues, journal);
- the raw QRC round trips ``Component.Get`` and ``Component.Set`` on a plain TCP socket.

Prints p50/p95 in milliseconds and the ratios tool/raw. Results are printed, never asserted.

    python bench/bench_stdio.py [--calls 300]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from mcp import Client, StdioServerParameters

from qsysd.emulator import serve_emulator
from qsysd.qrc import FrameDecoder, Request, Response, encode_frame


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def measure(calls: int, fn: Callable[[int], Awaitable[Any]]) -> list[float]:
    for i in range(min(20, calls)):  # warm up
        await fn(i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


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


async def wait_connected(client: Client) -> None:
    with trio.fail_after(30):
        while True:
            status = await client.call_tool("qsys_status", {})
            content = status.structured_content or {}
            if all(core["connected"] for core in content.get("cores", [])):
                return
            await trio.sleep(0.05)


def report(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p95 = percentile(samples, 0.50), percentile(samples, 0.95)
    print(f"{name:<34} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   (n={len(samples)})")
    return p50, p95


async def main(calls: int) -> None:
    async with serve_emulator() as emu:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bench.toml"
            config.write_text(
                f'[[cores]]\nname = "bench"\nhost = "{emu.host}"\nport = {emu.tcp_port}\n'
                f'[state]\ndir = "{tmp}"\n[policy]\nmax_gain_step_db = 120.0\n'
                '[logging]\nlevel = "warning"\n'
            )
            server = StdioServerParameters(
                command=sys.executable,
                args=["-m", "qsysd", "serve", "--stdio", "--config", str(config)],
                env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
            )
            async with Client(server) as client:
                await wait_connected(client)

                async def tool_read(_: int) -> None:
                    result = await client.call_tool("qsys_get", {"controls": ["Bar.gain"]})
                    assert not result.is_error, result.content

                async def tool_write(i: int) -> None:
                    change = {"control": "Bar.gain", "value": -20.0 - (i % 2)}
                    result = await client.call_tool("qsys_set", {"changes": [change]})
                    assert not result.is_error, result.content

                read = await measure(calls, tool_read)
                write = await measure(calls, tool_write)

            stream = await trio.open_tcp_stream(emu.host, emu.tcp_port)
            async with stream:
                raw = RawQrc(stream)

                async def raw_read(_: int) -> None:
                    await raw.call("Component.Get", {"Name": "Bar", "Controls": [{"Name": "gain"}]})

                async def raw_write(i: int) -> None:
                    control = {"Name": "gain", "Value": -20.0 - (i % 2)}
                    params = {"Name": "Bar", "Controls": [control], "ResponseValues": True}
                    await raw.call("Component.Set", params)

                raw_r = await measure(calls, raw_read)
                raw_w = await measure(calls, raw_write)

    print(f"qsysd over stdio vs raw QRC over TCP, same emulator ({calls} calls each)")
    r50, r95 = report("tool qsys_get (cached read)", read)
    w50, w95 = report("tool qsys_set (write)", write)
    rr50, rr95 = report("raw QRC Component.Get", raw_r)
    rw50, rw95 = report("raw QRC Component.Set", raw_w)
    print(f"{'ratio read  (tool / raw)':<34} p50 {r50 / rr50:7.2f}x    p95 {r95 / rr95:7.2f}x")
    print(f"{'ratio write (tool / raw)':<34} p50 {w50 / rw50:7.2f}x    p95 {w95 / rw95:7.2f}x")
    print(f"mean tool read {statistics.fmean(read):.3f} ms, write {statistics.fmean(write):.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    trio.run(main, parser.parse_args().calls)
