"""The Redis snapshot backend against a real redis-server on a loopback port."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import coredis  # the test extra; only the redis-server binary is an outside service
import pytest
import structlog
import trio
from _services import require_service

from qsysd.config import Config, Secret, StateConfig
from qsysd.daemon import Daemon
from qsysd.errors import StateUnavailable
from qsysd.state import (
    ComponentInfo,
    ControlInfo,
    ControlRef,
    ControlValue,
    RedisStateBackend,
    Snapshot,
    SnapshotTask,
    StateBackend,
    StateStore,
    run_snapshots,
)

GAIN = ControlRef("main", "Lobby", "gain")


def make_store() -> StateStore:
    store = StateStore()
    store.replace_design(
        "main",
        "code",
        [ComponentInfo("main", "Lobby", "gain", "id")],
        [ControlInfo(GAIN, "Float", "Read/Write", -100.0, 20.0)],
        [ControlValue(GAIN, -6.0, "-6.0dB", 0.7)],
    )
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def redis_server() -> str:
    # A sync fixture: a skip raised inside pytest-trio's async fixtures loses its message.
    return require_service("redis-server", how="apt-get install redis-server")


@asynccontextmanager
async def running_redis(
    redis_server: str, port: int, folder: Path | None = None
) -> AsyncIterator[str]:
    """A redis-server on ``port``: in memory only, or keeping ``folder``/dump.rdb (SAVE)."""
    args = [redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--protected-mode", "yes"]
    if folder is not None:
        args += ["--dir", str(folder), "--dbfilename", "dump.rdb"]
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with trio.open_nursery() as nursery:
            ready = trio.Event()

            async def read_log() -> None:
                assert proc.stdout is not None
                buffer = b""
                async for chunk in proc.stdout:  # keep draining so redis never blocks on stdout
                    buffer = (buffer + chunk)[-4096:]
                    if b"Ready to accept connections" in buffer:
                        ready.set()

            nursery.start_soon(read_log)
            with trio.fail_after(10):
                await ready.wait()
            yield f"redis://127.0.0.1:{port}/0"
            nursery.cancel_scope.cancel()
    finally:
        proc.terminate()
        with trio.move_on_after(10, shield=True):
            await proc.wait()


@pytest.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    async with running_redis(redis_server, free_port()) as url:
        yield url


async def test_redis_backend_saves_and_loads_a_snapshot(redis_url: str) -> None:
    backend = RedisStateBackend(redis_url, key="test:snapshot")
    picture = make_store().picture()
    with trio.fail_after(10):
        assert await backend.load() is None
        await backend.save(picture)
        assert await backend.load() == picture


async def test_redis_backend_sets_a_corrupt_snapshot_aside(redis_url: str) -> None:
    backend = RedisStateBackend(redis_url, key="test:snapshot")
    with trio.fail_after(10):
        async with coredis.Redis.from_url(redis_url) as client:
            await client.set("test:snapshot", b'{"format": 1, "taken_')
            with structlog.testing.capture_logs() as logs:
                assert await backend.load() is None
            assert await client.get("test:snapshot") is None
            aside = await client.keys("test:snapshot.corrupt-*")
    assert len(aside) == 1
    [event] = [e for e in logs if e["event"] == "state.snapshot_corrupt"]
    assert "not JSON" in event["reason"]


async def test_snapshot_task_saves_to_redis_when_cancelled(redis_url: str) -> None:
    store = make_store()
    backend = RedisStateBackend(redis_url)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_snapshots, store, backend, 3600.0)
            store.apply([ControlValue(GAIN, -1.0, "-1.0dB", 0.9)])
            nursery.cancel_scope.cancel()
        restored = StateStore()
        snapshot = await backend.load()
    assert snapshot is not None
    restored.restore(snapshot)
    assert restored.read(GAIN).stale
    assert restored.read(GAIN).value == store.read(GAIN).value


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # coredis 6.9: see below
async def test_unreachable_redis_raises_state_unavailable_without_the_password() -> None:
    port = free_port()
    backend = RedisStateBackend(f"redis://user:s3cret@127.0.0.1:{port}/0", timeout=5)
    with trio.fail_after(10):
        with pytest.raises(StateUnavailable, match=f"127.0.0.1:{port}") as caught:
            await backend.load()
        with pytest.raises(StateUnavailable):
            await backend.save(make_store().picture())
    assert "s3cret" not in str(caught.value)
    gc.collect()


@attrs.define
class Observed:
    """The daemon's own backend, setting ``saved`` after each save that succeeded."""

    backend: StateBackend
    saved: trio.Event

    async def save(self, snapshot: Snapshot) -> None:
        await self.backend.save(snapshot)
        self.saved.set()

    async def load(self) -> Snapshot | None:
        return await self.backend.load()


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # coredis 6.9: see below
async def test_daemon_starts_with_redis_down_and_keeps_the_old_snapshot_once_it_is_back(
    redis_server: str, tmp_path: Path
) -> None:
    # A snapshot of Core "main" kept on disk by a first redis-server, for the second to load.
    data = tmp_path / "redis"
    data.mkdir()
    async with running_redis(redis_server, free_port(), data) as url:
        with trio.fail_after(10):
            await RedisStateBackend(url).save(make_store().picture())
            async with coredis.Redis.from_url(url) as client:
                await client.save()
    port = free_port()
    config = Config(
        state=StateConfig(
            dir=str(tmp_path),
            backend="redis",
            redis_url=Secret(f"redis://127.0.0.1:{port}/0"),
            snapshot_interval=0.05,
            journal=False,
        )
    )
    daemon = Daemon(config)
    with structlog.testing.capture_logs() as logs, trio.fail_after(30):
        async with daemon.running():
            assert daemon.snapshots is not None
            [down] = [e for e in logs if e["event"] == "state.snapshot_unavailable"]
            assert f"127.0.0.1:{port}" in down["error"] and "state.redis_url" in down["hint"]
            assert daemon.store.cores() == []  # started empty
            live = ControlRef("live", "Hall", "mute")
            daemon.store.replace_design(
                "live",
                "live-code",
                [ComponentInfo("live", "Hall", "mute", "id")],
                [ControlInfo(live, "Boolean", "Read/Write")],
                [ControlValue(live, True, "muted", 1.0)],
            )
            saved_once = trio.Event()
            daemon.snapshots.backend = Observed(daemon.snapshots.backend, saved_once)
            async with running_redis(redis_server, port, data) as url:
                await saved_once.wait()  # the task's own interval decides when
                saved = await RedisStateBackend(url).load()
    assert saved is not None
    assert sorted(core.name for core in saved.cores) == ["live", "main"]
    assert daemon.store.read(GAIN).stale and daemon.store.read(GAIN).value == (
        make_store().read(GAIN).value
    )
    assert not daemon.store.read(live).stale
    assert any(e["event"] == "state.snapshot_available" for e in logs)
    gc.collect()


# coredis 6.9 leaves anyio memory streams unclosed when a connection fails; they warn when
# collected, so collect them here, where the warning is expected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_unreachable_redis_is_a_counted_failure_not_a_crash() -> None:
    backend = RedisStateBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=5)
    task = SnapshotTask(make_store(), backend, interval=60)
    with trio.fail_after(10):
        assert await task.save_now(force=True) is False
    stats = task.statistics()
    assert stats.failures == 1
    assert stats.last_error is not None and "ExceptionGroup" not in stats.last_error
    gc.collect()


def test_redis_backend_repr_hides_the_password() -> None:
    backend = RedisStateBackend("redis://user:s3cret@127.0.0.1:6379/2")
    assert "s3cret" not in repr(backend)
    assert "127.0.0.1:6379/2" in repr(backend)


def test_base_import_does_not_need_coredis() -> None:
    code = "import sys, qsysd.state; assert 'coredis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
