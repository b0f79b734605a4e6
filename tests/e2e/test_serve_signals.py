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

from qsysd.emulator import serve_emulator

WAIT = 30.0


async def read_until_event(stream: trio.abc.ReceiveStream, event: str) -> list[dict[str, object]]:
    """JSON log lines from ``stream`` up to and including the first ``event``."""
    buffer = b""
    records: list[dict[str, object]] = []
    while True:
        chunk = await stream.receive_some(65536)
        assert chunk, f"stderr closed before {event!r}: {records}"
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            record = json.loads(line)
            records.append(record)
            if record.get("event") == event:
                return records


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_stops_gracefully_on_signal_and_saves_the_snapshot(
    tmp_path: Path, signum: signal.Signals
) -> None:
    config = tmp_path / "qsysd.toml"
    with trio.fail_after(WAIT):
        async with serve_emulator() as emulator:
            config.write_text(
                f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
                f'[state]\ndir = "{tmp_path / "state"}"\n[logging]\nformat = "json"\n'
            )
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(
                    functools.partial(
                        trio.run_process,
                        [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
                        check=False,
                    )
                )
                assert process.stderr is not None and process.stdout is not None
                ready = await read_until_event(process.stderr, "daemon.ready")
                assert ready[-1]["cores"] == ["venue"]
                process.send_signal(signum)
                stopped = await read_until_event(process.stderr, "daemon.stopped")
                assert await process.wait() == 0
                assert await process.stdout.receive_some(1) == b""  # nothing on stdout
    events = [r["event"] for r in stopped]
    assert events.index("daemon.stopping") < events.index("core.link_stopped")
    assert (tmp_path / "state" / "snapshot.json").is_file()
    assert (tmp_path / "state" / "journal.sqlite3").is_file()


async def test_serve_speaks_systemd_notify_and_watchdog(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    await listener.bind(str(notify_path))
    config = tmp_path / "qsysd.toml"
    with listener, trio.fail_after(WAIT):
        async with serve_emulator() as emulator:
            config.write_text(
                f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
                f'[state]\ndir = "{tmp_path / "state"}"\n'
            )
            env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="100000")
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(
                    functools.partial(
                        trio.run_process,
                        [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
                        stdin=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=env,
                        check=False,
                    )
                )
                messages: list[bytes] = []
                while b"READY=1" not in messages or messages.count(b"WATCHDOG=1") < 2:
                    messages.append(await listener.recv(64))
                assert set(messages) == {b"READY=1", b"WATCHDOG=1"}
                process.send_signal(signal.SIGTERM)
                while (message := await listener.recv(64)) != b"STOPPING=1":
                    assert message == b"WATCHDOG=1"
                assert await process.wait() == 0


async def test_serve_logs_on_with_a_secret_file_and_never_logs_the_pin(tmp_path: Path) -> None:
    pin = "pin-7391-secret"
    (tmp_path / "pin").write_text(pin + "\n")
    config = tmp_path / "qsysd.toml"
    with trio.fail_after(WAIT):
        async with serve_emulator(password=pin, user="qsysd") as emulator:
            config.write_text(
                f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
                f'username = "qsysd"\npassword_file = "{tmp_path / "pin"}"\n'
                f'[state]\ndir = "{tmp_path / "state"}"\n'
                '[logging]\nformat = "json"\nlevel = "debug"\n'
            )
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(
                    functools.partial(
                        trio.run_process,
                        [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
                        check=False,
                    )
                )
                assert process.stderr is not None and process.stdout is not None
                records = await read_until_event(process.stderr, "daemon.ready")
                assert any(r["event"] == "core.serving" for r in records), records
                process.send_signal(signal.SIGTERM)
                records += await read_until_event(process.stderr, "daemon.stopped")
                assert await process.wait() == 0
    assert pin not in json.dumps(records)
