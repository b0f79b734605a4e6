"""The daemon in-process against the emulator: start-up order, snapshots across restarts."""

from __future__ import annotations

import socket
from pathlib import Path

import trio

from qsysd.config import Config, CoreConfig, StateConfig
from qsysd.daemon import Daemon
from qsysd.emulator import serve_emulator
from qsysd.state import ControlRef

WAIT = 10.0
BAR_GAIN = ControlRef("venue", "Bar", "gain")


def config(port: int, state_dir: Path) -> Config:
    return Config(
        cores=[CoreConfig(name="venue", host="127.0.0.1", port=port, poll_rate=0.02)],
        state=StateConfig(dir=str(state_dir), snapshot_interval=60.0),
    )


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def wait_value(daemon: Daemon, ref: ControlRef, value: float) -> None:
    async with daemon.store.watch([ref]) as watcher:
        if daemon.store.read(ref).value is not None:
            current = daemon.store.read(ref).value
            if current is not None and current.value == value:
                return
        async for batch in watcher:
            if any(v.value == value for v in batch):
                return


async def test_restart_restores_the_snapshot_marked_stale_until_the_core_confirms(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator() as emulator:
            daemon = Daemon(config(emulator.tcp_port, tmp_path))
            async with daemon.running():
                await daemon.wait_cores()
                emulator.set_value("Bar", "gain", -27.0)
                await wait_value(daemon, BAR_GAIN, -27.0)
        assert (tmp_path / "snapshot.json").is_file()

        # The Core is gone: the picture comes back from the snapshot, flagged stale.
        restarted = Daemon(config(free_port(), tmp_path), connect_wait=0.2)
        async with restarted.running():
            reading = restarted.store.read(BAR_GAIN)
            assert reading.value is not None and reading.value.value == -27.0
            assert reading.value.string == "-27.0dB"
            assert reading.stale is True
            assert not restarted.links["venue"].connected


async def test_journal_records_changes_the_core_reports(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        async with serve_emulator() as emulator:
            daemon = Daemon(config(emulator.tcp_port, tmp_path))
            async with daemon.running() as api:
                await daemon.wait_cores()
                emulator.set_value("Bar", "gain", -31.0)
                await wait_value(daemon, BAR_GAIN, -31.0)
                (latest, *_) = await api.history(control="Bar.gain", kind="change")
                assert (latest.ref, latest.after_string) == (BAR_GAIN, "-31.0dB")


async def test_daemon_stops_cleanly_while_the_core_is_unreachable(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        daemon = Daemon(config(free_port(), tmp_path), connect_wait=0.1)
        async with daemon.running():
            await daemon.wait_cores()
            assert daemon.links["venue"].status().last_error is not None
