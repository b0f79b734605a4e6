"""`qsysd serve` as a subprocess: graceful stop on every door, a forced stop, SIGHUP, fd://."""

from __future__ import annotations

import contextlib
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
from test_access_serve import token_cli
from test_http_serve import QSYSD, WAIT, LogTail, _wait_in_flight, http_daemon, write_config

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
    config: Path,
    *,
    stdio: bool = False,
    wrapper: list[str] = [],  # noqa: B006 (never changed)
    env: dict[str, str] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[trio.Process, LogTail]]:
    """`qsysd serve` (``--stdio``), after ``wrapper``, as a subprocess; its stderr followed."""
    args = [*wrapper, *QSYSD, "serve", *(["--stdio"] if stdio else []), "--config", str(config)]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                args,
                stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(os.environ, QSYSD_LOAD_PLUGINS="", **(env or {})),
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


async def test_a_second_sigterm_exits_at_once_without_waiting_for_the_grace(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator(demo_design()) as emulator:
            # The grace outlasts the test's deadline: only the forced exit can end it in time.
            daemon = "[daemon]\nstop_grace = 120.0\n"
            config = write_config(
                tmp_path, emulator, http=daemon, core="keepalive_interval = 59.0\n"
            )
            async with http_daemon(config) as (process, logs, base):
                emulator.set_reply_delay(300.0)  # the read below is never answered

                async def slow_read() -> None:
                    async with httpx.AsyncClient(timeout=WAIT) as client:
                        with contextlib.suppress(httpx.TransportError):
                            await client.post(f"{base}/api/v1/tools/qsys_get", json=SLOW_READ)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(slow_read)
                    await _wait_in_flight(base, 1)
                    process.send_signal(signal.SIGTERM)
                    await logs.wait_for("daemon.stopping")
                    process.send_signal(signal.SIGTERM)
                    assert await process.wait() == 128 + signal.SIGTERM
                await logs.wait_for("daemon.stop_forced")
    forced = next(r for r in logs.records if r["event"] == "daemon.stop_forced")
    assert forced["level"] == "error" and forced["exit_code"] == 128 + signal.SIGTERM
    assert "daemon.stopped" not in [r["event"] for r in logs.records]


async def test_sighup_reloads_tokens_policy_and_log_level_and_keeps_them_on_a_bad_file(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT * 2):
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator, auth='mode = "token"\n')
            text = config.read_text().replace("[state]\n", "[state]\nsnapshot_interval = 0.1\n")
            config.write_text(text)
            tokens = {}
            for name in ("kept", "revoked"):
                made = token_cli(config, "create", "--name", name, "--role", "operator")
                assert made.returncode == 0, made.stderr
                tokens[name] = {"Authorization": f"Bearer {made.stdout.strip()}"}
            async with (
                http_daemon(config) as (process, logs, base),
                httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            ):

                async def write(control: str, value: float, token: str = "kept") -> httpx.Response:
                    changes = {"changes": [{"control": control, "value": value}]}
                    return await client.post(
                        "/api/v1/tools/qsys_set", json=changes, headers=tokens[token]
                    )

                assert (await write("Bar.gain", -12, "revoked")).status_code == 200
                assert "state.snapshot_saved" not in [r["event"] for r in logs.records]

                assert token_cli(config, "revoke", "revoked").returncode == 0
                config.write_text(
                    text.replace('level = "info"', 'level = "debug"').replace(
                        "request_timeout = 5.0", "request_timeout = 4.0"
                    )
                    + '[policy]\nprotected = ["Bar.*"]\n'
                )
                seen = len(logs.records)
                process.send_signal(signal.SIGHUP)
                reloaded = await logs.wait_for("daemon.reloaded", after=seen)
                assert reloaded["tokens"] == 1 and reloaded["policy_changed"] is True
                assert reloaded["log_level"] == "debug" and reloaded["restart_needed"] == ["cores"]
                restart = await logs.wait_for("daemon.reload_needs_restart", after=seen)
                assert restart["sections"] == ["cores"]

                r = await client.get("/api/v1/tools", headers=tokens["revoked"])
                assert r.status_code == 401
                refused = await write("Bar.gain", -20)
                assert refused.status_code == 409 and "protected" in refused.text, refused.text
                assert emulator.get_value("Bar", "gain") == -12
                assert (await write("Restaurant.gain", -15)).status_code == 200
                saved = await logs.wait_for("state.snapshot_saved", after=seen)  # debug level
                assert saved["level"] == "debug"

                config.write_text(text + '[policy]\nread_only = "yes"\n')
                seen = len(logs.records)
                process.send_signal(signal.SIGHUP)
                failed = await logs.wait_for("daemon.reload_failed", after=seen)
                assert failed["level"] == "error"
                assert any("policy.read_only" in p for p in failed["problems"]), failed
                await logs.wait_for("daemon.reloaded", after=seen)  # the tokens, re-read anyway
                assert (await write("Bar.gain", -20)).status_code == 409  # still protected
                assert (await write("Restaurant.gain", -16)).status_code == 200
                assert process.returncode is None
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0


def activation(fd: int) -> list[str]:
    """A wrapper that passes ``fd`` as fd 3 with ``LISTEN_*`` set as systemd does after fork."""
    script = (
        "import os, sys\n"
        f"os.dup2({fd}, 3)\n"
        f"os.close({fd})\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='http')\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    return [sys.executable, "-c", script]


async def test_serve_takes_its_http_socket_from_systemd_socket_activation(
    tmp_path: Path,
) -> None:
    with socket.socket() as listener, trio.fail_after(WAIT):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        async with serve_emulator(demo_design()) as emulator:
            config = write_config(tmp_path, emulator)
            async with serve(
                config,
                wrapper=activation(listener.fileno()),
                env={"QSYSD_HTTP__LISTEN": "fd://3"},
                pass_fds=(listener.fileno(),),
            ) as (process, logs):
                await logs.wait_for("daemon.ready")
                async with httpx.AsyncClient(timeout=WAIT) as client:
                    health = await client.get(f"http://127.0.0.1:{port}/health")
                    assert health.status_code == 200
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
    assert "daemon.sockets_unused" not in [r["event"] for r in logs.records]


async def test_serve_refuses_an_fd_that_systemd_did_not_pass(tmp_path: Path) -> None:
    with socket.socket() as listener, trio.fail_after(WAIT):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = tmp_path / "qsysd.toml"
        config.write_text(
            '[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = 9\n'
            f'[state]\ndir = "{tmp_path / "state"}"\n'
            '[http]\nenabled = true\nlisten = "fd://4"\n'
        )
        wrapper = activation(listener.fileno())
        done = await trio.run_process(
            [*wrapper, sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
            capture_stderr=True, pass_fds=(listener.fileno(),), check=False,
        )  # fmt: skip
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "fd://4 was not passed by systemd, which passed fd://3" in stderr
    assert "Traceback" not in stderr


async def test_sigterm_answers_a_stdio_call_held_for_a_core_that_never_came(
    tmp_path: Path,
) -> None:
    config = tmp_path / "qsysd.toml"
    # Nothing listens on port 9, and start-up would wait a minute for it.
    config.write_text(
        '[[cores]]\nname = "gone"\nhost = "127.0.0.1"\nport = 9\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        '[logging]\nformat = "json"\n[daemon]\nready_timeout = 60.0\n'
    )
    with trio.fail_after(WAIT):
        async with serve(config, stdio=True) as (process, logs):
            wire = StdioWire(process)
            await wire.initialize()
            await wire.call_tool(2, "qsys_get", {"controls": ["Bar.gain"]})  # held for the sync
            await logs.wait_for("core.link_started")
            process.send_signal(signal.SIGTERM)
            answer = await wire.answer(2)
            assert await process.wait() == 0
    # Answered from what the store has (nothing: the Core never came), not left hanging.
    value = answer["result"]["structuredContent"]["values"][0]
    assert value["value"] is None and "Core 'gone'" in value["error"], answer
    assert "daemon.ready" not in [r["event"] for r in logs.records]
