"""`qsysd serve` as a subprocess: ready, then a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from qsysd.emulator import EmulatorServer, serve_emulator

WAIT = 30.0


def write_config(tmp_path: Path, emulator: EmulatorServer, extra_core: str = "") -> Path:
    config = tmp_path / "qsysd.toml"
    config.write_text(
        f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
        f"{extra_core}"
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        '[logging]\nformat = "json"\nlevel = "debug"\n'
    )
    return config


async def start_serve(nursery: trio.Nursery, config: Path, **env: str) -> trio.Process:
    """`qsysd serve --config CONFIG` with stdout and stderr piped."""
    process: trio.Process = await nursery.start(
        functools.partial(
            trio.run_process,
            [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, QSYSD_LOAD_PLUGINS="", **env),
            check=False,
        )
    )
    assert process.stderr is not None and process.stdout is not None
    return process


class LogLines:
    """The daemon's JSON log lines on its stderr, read as far as a test needs."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stderr is not None and process.stdout is not None
        self.process = process
        self.stream = process.stderr
        self.buffer = b""  # a line's start already read, kept for the next call

    async def until(self, event: str) -> list[dict[str, object]]:
        """The records up to and including the first ``event``."""
        records: list[dict[str, object]] = []
        while True:
            *lines, self.buffer = self.buffer.split(b"\n")
            for index, line in enumerate(lines):
                record = json.loads(line)
                records.append(record)
                if record.get("event") == event:
                    self.buffer = b"\n".join([*lines[index + 1 :], self.buffer])
                    return records
            chunk = await self.stream.receive_some(65536)
            assert chunk, f"stderr closed before {event!r}: {records}"
            self.buffer += chunk

    async def stop_with(self, signum: signal.Signals) -> list[dict[str, object]]:
        """Send ``signum``; the records up to ``daemon.stopped``, after a clean exit."""
        self.process.send_signal(signum)
        records = await self.until("daemon.stopped")
        assert await self.process.wait() == 0
        assert self.process.stdout is not None
        assert await self.process.stdout.receive_some(1) == b""  # nothing ever on stdout
        return records


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_stops_gracefully_on_signal_and_saves_the_snapshot(
    tmp_path: Path, signum: signal.Signals
) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator() as emulator, trio.open_nursery() as nursery:
            logs = LogLines(await start_serve(nursery, write_config(tmp_path, emulator)))
            ready = await logs.until("daemon.ready")
            assert ready[-1]["cores"] == ["venue"]
            stopped = await logs.stop_with(signum)
    events = [r["event"] for r in stopped]
    assert events.index("daemon.stopping") < events.index("core.link_stopped")
    assert (tmp_path / "state" / "snapshot.json").is_file()
    assert (tmp_path / "state" / "journal.sqlite3").is_file()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_waiting_for_the_cores_stops_at_once(
    tmp_path: Path, signum: signal.Signals
) -> None:
    config = tmp_path / "qsysd.toml"
    # Nothing listens on port 9: start-up waits its 10 s for the Core, unless told to stop.
    config.write_text(
        '[[cores]]\nname = "gone"\nhost = "127.0.0.1"\nport = 9\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n[logging]\nformat = "json"\n'
    )
    async with trio.open_nursery() as nursery:
        logs = LogLines(await start_serve(nursery, config))
        await logs.until("core.link_started")
        with trio.fail_after(5):  # well inside the 10 s start-up wait
            records = await logs.stop_with(signum)
    assert "daemon.ready" not in [r["event"] for r in records]


async def test_serve_speaks_systemd_notify_and_watchdog(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    await listener.bind(str(notify_path))
    with listener, trio.fail_after(WAIT):
        async with serve_emulator() as emulator, trio.open_nursery() as nursery:
            config = write_config(tmp_path, emulator)
            env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "100000"}
            process = await start_serve(nursery, config, **env)
            # Keep reading stderr so the daemon never blocks on a full pipe.
            nursery.start_soon(stop_when_ready, LogLines(process))
            messages: list[bytes] = []
            while (message := await listener.recv(64)) != b"STOPPING=1":
                messages.append(message)
            assert messages[0] in (b"READY=1", b"WATCHDOG=1")
            assert b"READY=1" in messages and messages.count(b"WATCHDOG=1") >= 2
            assert set(messages) == {b"READY=1", b"WATCHDOG=1"}


async def stop_when_ready(logs: LogLines) -> None:
    """Wait for readiness and a few watchdog intervals, then stop the daemon with SIGTERM."""
    await logs.until("daemon.ready")
    await trio.sleep(0.35)  # the watchdog pings every 0.05 s: let several go out
    await logs.stop_with(signal.SIGTERM)


async def test_serve_logs_on_with_a_secret_file_and_never_logs_the_pin(tmp_path: Path) -> None:
    pin = "pin-7391-secret"
    (tmp_path / "pin").write_text(pin + "\n")
    credentials = f'username = "qsysd"\npassword_file = "{tmp_path / "pin"}"\n'
    with trio.fail_after(WAIT):
        async with (
            serve_emulator(password=pin, user="qsysd") as emulator,
            trio.open_nursery() as nursery,
        ):
            config = write_config(tmp_path, emulator, credentials)
            logs = LogLines(await start_serve(nursery, config))
            records = await logs.until("daemon.ready")
            assert any(r["event"] == "core.serving" for r in records), records
            records += await logs.stop_with(signal.SIGTERM)
    assert pin not in json.dumps(records)
