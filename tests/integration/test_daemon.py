"""The daemon in-process against the emulator: start-up order, snapshots, reloads."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from qsysd.config import Config, CoreConfig, PolicyConfig, StateConfig
from qsysd.daemon import Daemon
from qsysd.emulator import serve_emulator
from qsysd.errors import ConfigError
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


async def wait_logged(log_text: Callable[[], str], event: str, count: int) -> list[dict[str, Any]]:
    """The ``event`` records once there are ``count`` of them (the log is read as it grows)."""
    while True:
        found = [json.loads(line) for line in log_text().splitlines() if f'"{event}"' in line]
        found = [r for r in found if r.get("event") == event]
        if len(found) >= count:
            return found
        await trio.sleep(0.01)


async def test_sighup_applies_a_new_policy_and_survives_reloads_that_fail(
    tmp_path: Path, log_text: Callable[[], str]
) -> None:
    # A SIGHUP that comes after the daemon's receiver closed must not end the test run.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        await reload_three_times(tmp_path, log_text)
    finally:
        signal.signal(signal.SIGHUP, previous)


async def reload_three_times(tmp_path: Path, log_text: Callable[[], str]) -> None:
    """SIGHUP with a config source that fails (a bug), is invalid, then has a new policy."""

    def broken() -> Config:
        raise RuntimeError("a bug in a config source")

    def invalid() -> Config:
        raise ConfigError(["policy.read_only: expected true or false, got str 'yes'"])

    with trio.fail_after(WAIT):
        async with serve_emulator() as emulator:
            base = config(emulator.tcp_port, tmp_path)
            sources = [
                broken,
                invalid,
                lambda: attrs.evolve(base, policy=PolicyConfig(read_only=True)),
            ]
            daemon = Daemon(base, config_source=lambda: sources.pop(0)())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(daemon.run, stdio=False))
                await daemon.wait_ready()
                os.kill(os.getpid(), signal.SIGHUP)
                (bug,) = await wait_logged(log_text, "daemon.reload_failed", 1)
                assert bug["problems"] == ["RuntimeError: a bug in a config source"]
                os.kill(os.getpid(), signal.SIGHUP)
                failed = (await wait_logged(log_text, "daemon.reload_failed", 2))[1]
                assert failed["problems"] == [
                    "policy.read_only: expected true or false, got str 'yes'"
                ]
                assert daemon.policy is not None and daemon.policy.read_only is False
                # The invalid file's reload still re-read the tokens (reloaded #1).
                os.kill(os.getpid(), signal.SIGHUP)
                reloaded = (await wait_logged(log_text, "daemon.reloaded", 2))[1]
                assert reloaded["policy_changed"] is True and reloaded["restart_needed"] == []
                assert daemon.policy.read_only is True and daemon.config.policy.read_only
                daemon.stop()
