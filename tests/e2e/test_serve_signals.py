"""`qsysd serve` as a subprocess: ready, systemd notifications, a graceful stop on signals."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from qsysd.emulator import EmulatorServer, serve_emulator, serve_redundant_pair

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


class NotifySocket:
    """A real AF_UNIX datagram socket as systemd's ``$NOTIFY_SOCKET``: each datagram a dict."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.datagrams: list[dict[str, str]] = []

    def drain(self) -> None:
        """Take every datagram already queued."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            pairs = (line.partition("=") for line in data.decode().split("\n") if line)
            self.datagrams.append({key: value for key, _, value in pairs})

    async def wait_for(self, key: str, value: str = "", *, after: int = 0) -> int:
        """The index of the first datagram from ``after`` on whose ``key`` starts with ``value``."""
        while True:
            for index in range(after, len(self.datagrams)):
                if self.datagrams[index].get(key, "\0").startswith(value):
                    return index
            await trio.lowlevel.wait_readable(self.sock)
            self.drain()

    def statuses(self) -> list[str]:
        return [d["STATUS"] for d in self.datagrams if "STATUS" in d]


async def test_serve_speaks_systemd_notify_status_and_watchdog(tmp_path: Path) -> None:
    """READY once synced, STATUS on connect, failover and loss, WATCHDOG pings, STOPPING."""
    notify = NotifySocket(tmp_path / "notify")
    with notify.sock, trio.fail_after(WAIT):
        async with serve_redundant_pair() as pair, trio.open_nursery() as nursery:
            primary, backup = (f"127.0.0.1:{s.tcp_port}" for s in pair.servers)
            backup_core = f'backup_host = "127.0.0.1"\nbackup_port = {pair.backup.tcp_port}\n'
            config = write_config(tmp_path, pair.primary, backup_core)
            env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "100000"}
            process = await start_serve(nursery, config, **env)
            logs = LogLines(process)
            nursery.start_soon(logs.until, "daemon.stopped")  # keeps the stderr pipe flowing
            ready = await notify.wait_for("READY", "1")
            assert notify.datagrams[ready]["STATUS"] == "ready; 1/1 Cores serving"
            assert notify.statuses()[0] == "starting: waiting for Core(s) venue"
            connected = await notify.wait_for("STATUS", f"Core venue connected ({primary})")
            assert notify.datagrams[connected]["STATUS"].endswith("; 1/1 Cores serving")
            # The pings go on: three more after READY.
            seen = ready
            for _ in range(3):
                seen = await notify.wait_for("WATCHDOG", "1", after=seen + 1)

            pair.failover()
            moved = await notify.wait_for("STATUS", f"Core venue failed over to {backup}")
            assert notify.datagrams[moved]["STATUS"].endswith("; 1/1 Cores serving")
            pair.backup.drop_connections()
            lost = await notify.wait_for("STATUS", "Core venue lost (", after=moved)
            assert notify.datagrams[lost]["STATUS"].endswith("; 0/1 Cores serving")
            await notify.wait_for("STATUS", f"Core venue reconnected ({backup})", after=lost)

            process.send_signal(signal.SIGTERM)
            stopping = await notify.wait_for("STOPPING", "1")
            assert notify.datagrams[stopping]["STATUS"].startswith("stopping: finishing")
            assert await process.wait() == 0
        notify.drain()
    keys = [key for datagram in notify.datagrams for key in datagram]
    assert set(keys) == {"READY", "STATUS", "WATCHDOG", "STOPPING"}
    assert keys.count("READY") == 1 and keys.count("STOPPING") == 1
    assert notify.statuses()[-1] == "stopping: closing the Core connections, saving the snapshot"


async def test_ready_comes_after_the_start_up_deadline_with_status_naming_the_missing_core(
    tmp_path: Path,
) -> None:
    notify = NotifySocket(tmp_path / "notify")
    with notify.sock, trio.fail_after(WAIT):
        async with serve_emulator() as emulator, trio.open_nursery() as nursery:
            # Nothing listens on port 9: Core "gone" never connects.
            gone = '[[cores]]\nname = "gone"\nhost = "127.0.0.1"\nport = 9\n'
            config = write_config(tmp_path, emulator, gone)
            config.write_text(config.read_text() + "[daemon]\nready_timeout = 0.5\n")
            process = await start_serve(nursery, config, NOTIFY_SOCKET=str(notify.path))
            logs = LogLines(process)
            records = await logs.until("daemon.ready")
            ready = await notify.wait_for("READY", "1")
            status = notify.datagrams[ready]["STATUS"]
            assert status.startswith("ready without Core(s) gone (") and "venue" not in status
            assert status.endswith("; 1/2 Cores serving")
            assert records[-1]["missing"] == ["gone"]
            waited = next(r for r in records if r["event"] == "daemon.cores_not_ready")
            assert waited["cores"] == ["gone"] and waited["waited_s"] == 0.5
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
