"""`qsysd serve` with the HTTP front end as a subprocess, driven by real HTTP and MCP clients."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from qsysd.emulator import EmulatorServer, demo_design, serve_emulator

WAIT = 30.0
QSYSD = [sys.executable, "-m", "qsysd"]


def write_config(
    tmp_path: Path,
    emulator: EmulatorServer,
    http: str = "",
    core: str = "",
    auth: str = 'mode = "none"\n',
) -> Path:
    """A config serving HTTP on loopback; ``auth`` is the ``[auth]`` table's body.

    These tests are about the HTTP doors themselves, so they choose no authentication
    explicitly; ``auth=""`` leaves the default (API tokens).
    """
    named = ", ".join(f'"{c.name}"' for c in demo_design().named_controls)
    config = tmp_path / "qsysd.toml"
    config.write_text(
        f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
        f"request_timeout = 5.0\nnamed_controls = [{named}]\n{core}"
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        '[http]\nenabled = true\nlisten = "127.0.0.1:0"\nstop_grace = 10.0\n'
        f"{http}"
        f"[auth]\n{auth}"
        '[logging]\nformat = "json"\nlevel = "info"\n'
    )
    return config


class LogTail:
    """Reads the daemon's JSON log lines from its stderr as they come, so it never blocks."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._arrived = trio.Event()

    async def follow(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        while chunk := await stream.receive_some(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    self.records.append(json.loads(line))
            self._arrived.set()
            self._arrived = trio.Event()

    async def wait_for(self, event: str, *, after: int = 0) -> dict[str, Any]:
        """The first ``event`` record (among those from index ``after`` on)."""
        seen = after
        while True:
            for record in self.records[seen:]:
                if record.get("event") == event:
                    return record
            seen = len(self.records)
            await self._arrived.wait()


@asynccontextmanager
async def http_daemon(config: Path) -> AsyncIterator[tuple[trio.Process, LogTail, str]]:
    """`qsysd serve --config CONFIG`: the process, its log, and its HTTP base URL."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*QSYSD, "serve", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
                check=False,
            )
        )
        assert process.stderr is not None
        logs = LogTail()
        nursery.start_soon(logs.follow, process.stderr)
        listening = await logs.wait_for("http.listening")
        await logs.wait_for("daemon.ready")
        try:
            yield process, logs, str(listening["urls"][0]).rstrip("/")
        finally:
            if process.returncode is None:
                process.kill()


async def test_the_three_doors_give_the_same_answers(tmp_path: Path) -> None:
    """One daemon: stdio, /mcp and REST answer the same calls with the same results."""
    calls = [
        ("qsys_set", {"changes": [{"control": "Bar.gain", "value": -14}]}),
        ("qsys_get", {"controls": ["Bar.gain", "Bar.mute", "MainGain"]}),
        ("qsys_list_components", {"type": "gain"}),
        ("qsys_find_controls", {"query": "bar volume"}),
        ("qsys_get", {"controls": ["Nope.gain"]}),
    ]
    volatile = {"age_s", "duration_ms", "since", "time"}

    def steady(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: steady(v) for k, v in data.items() if k not in volatile}
        if isinstance(data, list):
            return [steady(v) for v in data]
        return data

    log_path = tmp_path / "stderr.log"
    with trio.fail_after(WAIT), log_path.open("w") as errlog:
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator)
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "qsysd", "serve", "--stdio", "--config", str(config)],
                env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
            )
            async with Client(stdio_client(params, errlog=errlog)) as stdio:
                base = await _listening_url(log_path)
                async with Client(f"{base}/mcp") as mcp, httpx.AsyncClient() as rest:
                    # The same write on every door then finds the same value before it.
                    await stdio.call_tool(*calls[0])
                    for name, arguments in calls:
                        by_stdio = await stdio.call_tool(name, arguments)
                        by_mcp = await mcp.call_tool(name, arguments)
                        by_rest = await rest.post(f"{base}/api/v1/tools/{name}", json=arguments)
                        assert not by_stdio.is_error and not by_mcp.is_error
                        assert by_rest.status_code == 200
                        expected = steady(by_stdio.structured_content)
                        assert steady(by_mcp.structured_content) == expected
                        assert steady(by_rest.json()) == expected
                    failed = await stdio.call_tool("qsys_status", {"core": "nope"})
                    failed_mcp = await mcp.call_tool("qsys_status", {"core": "nope"})
                    failed_rest = await rest.post(
                        f"{base}/api/v1/tools/qsys_status", json={"core": "nope"}
                    )
                    assert failed.is_error and failed_mcp.is_error
                    text = failed.content[0].text  # type: ignore[union-attr]
                    assert text == failed_mcp.content[0].text  # type: ignore[union-attr]
                    assert failed_rest.json()["detail"] == text  # the same words on every door
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    doors = {r.get("door") for r in records if r.get("event") == "tool.called"}
    assert doors == {"stdio", "mcp", "rest"}
    # A call's log lines carry its HTTP request's X-Request-Id, as its access log line does.
    for door, path in (("mcp", "/mcp"), ("rest", None)):
        called = {r["request_id"] for r in records if r.get("door") == door and "tool" in r}
        answered = {
            r["request_id"]
            for r in records
            if r.get("event") == "http.request" and (path is None or r["path"] == path)
        }
        assert called and called <= answered, door


async def _wait_in_flight(base: str, count: int) -> None:
    """Until the daemon has ``count`` QRC requests awaiting the Core (from its /metrics)."""
    prefix = 'qsysd_core_requests_in_flight{core="venue"} '
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{base}/metrics")).text
            line = next(line for line in text.splitlines() if line.startswith(prefix))
            if float(line[len(prefix) :]) >= count:
                return
            await trio.sleep(0.02)


async def _listening_url(log_path: Path) -> str:
    while True:
        for line in (await trio.Path(log_path).read_text()).splitlines():
            if '"http.listening"' in line:
                return str(json.loads(line)["urls"][0]).rstrip("/")
        await trio.sleep(0.05)  # the daemon writes its log to this file


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sigterm_lets_in_flight_calls_on_both_http_doors_finish(
    tmp_path: Path, mode: str
) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            # No keepalive NoOp in the test's few seconds: requests in flight are the calls'.
            config = write_config(tmp_path, emulator, core="keepalive_interval = 59.0\n")
            async with http_daemon(config) as (process, logs, base):
                emulator.set_reply_delay(1.0)  # every answer of the Core takes a second
                results: dict[str, Any] = {}

                async def rest_write() -> None:
                    async with httpx.AsyncClient(timeout=WAIT) as client:
                        r = await client.post(
                            f"{base}/api/v1/tools/qsys_set",
                            json={"changes": [{"control": "Bar.gain", "value": -16, "ramp": 1}]},
                        )
                        results["rest"] = r

                async def mcp_read() -> None:
                    # The SDK's client reconnects its event stream once the server is gone and
                    # fails on that; whether the call was answered is read from the server.
                    with contextlib.suppress(Exception):
                        async with Client(f"{base}/mcp", mode=mode) as client:
                            await client.call_tool(
                                "qsys_get", {"controls": ["Restaurant.gain"], "fresh": True}
                            )

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(rest_write)
                    nursery.start_soon(mcp_read)
                    await _wait_in_flight(base, 2)  # both calls wait for the Core now
                    process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
                await logs.wait_for("daemon.stopped")
    assert results["rest"].status_code == 200, results["rest"].text
    assert results["rest"].json()["results"][0]["ok"] is True
    events = [r["event"] for r in logs.records]
    after = logs.records[events.index("daemon.signal") :]
    assert any(r["event"] == "tool.called" and r["door"] == "mcp" for r in after)
    assert any(r["event"] == "tool.called" and r["door"] == "rest" for r in after)
    answered = [r for r in after if r["event"] == "http.request" and r["method"] == "POST"]
    assert {r["path"] for r in answered} == {"/mcp", "/api/v1/tools/qsys_set"}
    assert all(r["status"] == 200 and r["bytes"] > 0 for r in answered)
    assert emulator.get_value("Bar", "gain") == -16
    assert (tmp_path / "state" / "snapshot.json").is_file()


def test_call_prints_results_and_tells_tool_errors_from_connection_failures(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with trio.fail_after(WAIT):
            async with (
                serve_emulator(demo_design()) as emulator,
                http_daemon(write_config(tmp_path, emulator)) as (_, _, base),
            ):

                def call(*args: str) -> subprocess.CompletedProcess[str]:
                    return subprocess.run(
                        [*QSYSD, "call", *args, "--url", base],
                        capture_output=True, text=True, timeout=WAIT, check=False,
                    )  # fmt: skip

                done = await trio.to_thread.run_sync(
                    call, "qsys_set", 'changes=[{"control": "Bar.gain", "value": -14}]'
                )
                assert done.returncode == 0, done.stderr
                assert json.loads(done.stdout)["results"][0]["string"] == "-14.0dB"
                text = await trio.to_thread.run_sync(
                    call, "qsys_get", "--json", '{"controls": ["Bar.gain"]}', "--format", "text"
                )
                assert text.returncode == 0 and 'string: "-14.0dB"' in text.stdout
                refused = await trio.to_thread.run_sync(call, "qsys_get", "controls=Bar.gain")
                assert refused.returncode == 1
                assert "expected array" in refused.stderr and "tool-input-error" in refused.stderr
                bad = await trio.to_thread.run_sync(call, "qsys_get", "controls")
                assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr

    trio.run(scenario)
    unreachable = subprocess.run(
        [*QSYSD, "call", "qsys_status", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 3 and "cannot reach qsysd" in unreachable.stderr


@pytest.mark.parametrize("listen", ["unix", "fd"])
async def test_serves_on_a_unix_socket_and_an_inherited_socket(tmp_path: Path, listen: str) -> None:
    sock_path = tmp_path / "qsysd.sock"
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            if listen == "unix":
                extra = f'listen = "unix:{sock_path}"\n'
                config = write_config(tmp_path, emulator, "").read_text()
                config = config.replace('listen = "127.0.0.1:0"\n', extra)
                (tmp_path / "qsysd.toml").write_text(config)
                async with http_daemon(tmp_path / "qsysd.toml"):
                    transport = httpx.AsyncHTTPTransport(uds=str(sock_path))
                    async with httpx.AsyncClient(transport=transport) as client:
                        r = await client.get("http://localhost/health")
                        assert r.status_code == 200 and r.json()["status"] == "ok"
                return
            import socket

            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            fd = listener.fileno()
            config = write_config(tmp_path, emulator).read_text()
            config = config.replace('listen = "127.0.0.1:0"\n', f'listen = "fd://{fd}"\n')
            (tmp_path / "qsysd.toml").write_text(config)
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(
                    functools.partial(
                        trio.run_process,
                        [*QSYSD, "serve", "--config", str(tmp_path / "qsysd.toml")],
                        stdin=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        pass_fds=(fd,),
                        check=False,
                    )
                )
                listener.close()  # the daemon holds its own copy
                logs = LogTail()
                assert process.stderr is not None
                nursery.start_soon(logs.follow, process.stderr)
                await logs.wait_for("daemon.ready")
                async with httpx.AsyncClient() as client:
                    r = await client.get(f"http://127.0.0.1:{port}/ready")
                    assert r.status_code == 200
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
