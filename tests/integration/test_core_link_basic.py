"""CoreLink against the emulator over loopback: discovery, live values, requests, stop."""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from _stacks import core_config, running_link

from qsysd.config import CoreConfig
from qsysd.emulator import EmulatorServer, generate_design
from qsysd.errors import CoreUnavailable, UnknownComponent
from qsysd.state import ControlRef, StateStore

WAIT = 10.0
StartEmulator = Callable[..., Awaitable[EmulatorServer]]


async def wait_for_value(
    store: StateStore, ref: ControlRef, predicate: Callable[[Any], bool]
) -> None:
    async with store.watch([ref]) as watcher:
        if predicate(store.read(ref).value):
            return
        async for batch in watcher:
            if any(v.ref == ref and predicate(v) for v in batch):
                return


async def test_link_discovers_the_demo_design_and_serves(emulator: EmulatorServer) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            names = {c.name for c in store.components("main")}
            assert {"Lobby_BGM", "Ballroom_Mics", "BGM_Router"} <= names
            assert store.design_code("main") == emulator.design_code
            assert not store.is_stale("main")
            gain = store.read(ControlRef("main", "Lobby_BGM", "gain"))
            assert gain.info.type == "Float"
            assert gain.value is not None
            mute = store.read(ControlRef("main", "Lobby_BGM", "mute"))
            assert isinstance(mute.value and mute.value.value, bool)
            status = link.status()
            assert status.connected and status.state == "Active"
            assert status.design_code == emulator.design_code
            assert store.core_status("main") == status
            assert await link.request("StatusGet", 0)
            stats = link.statistics()
            assert stats.connected and stats.discoveries == 1
            assert stats.change_groups >= 1
            assert stats.requests[("Component.GetControls", "ok")] == len(names)
            assert stats.latency_count > 0 and stats.latency_buckets[-1][1] == stats.latency_count


async def test_link_discovers_a_2000_component_design(start_emulator: StartEmulator) -> None:
    emu = await start_emulator(generate_design(2000, seed=1))
    store = StateStore()
    with trio.fail_after(30):
        async with running_link(core_config(emu, discovery_concurrency=16), store) as link:
            await link.wait_connected()
            assert len(store.components("main")) >= 2000
            assert store.statistics().controls >= 2000
            assert link.statistics().change_groups == 3


async def test_live_values_follow_changes_from_another_client(
    emulator: EmulatorServer, client: Any
) -> None:
    store = StateStore()
    ref = ControlRef("main", "Lobby_BGM", "gain")
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            async with client(emulator) as other:
                await other.result(
                    "Component.Set",
                    {"Name": "Lobby_BGM", "Controls": [{"Name": "gain", "Value": -33}]},
                )
            await wait_for_value(store, ref, lambda v: v is not None and v.value == -33.0)
            emulator.set_value("Lobby_BGM", "mute", True)
            mute = ControlRef("main", "Lobby_BGM", "mute")
            await wait_for_value(store, mute, lambda v: v is not None and v.value is True)
            assert link.statistics().pushes > 0


async def test_writes_through_the_link_reach_the_core(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator)) as link:
            await link.wait_connected()
            reply = await link.request(
                "Component.Set",
                {
                    "Name": "Lobby_BGM",
                    "Controls": [{"Name": "gain", "Value": -7}],
                    "ResponseValues": True,
                },
            )
            assert reply[0]["Name"] == "gain"
            assert emulator.get_value("Lobby_BGM", "gain") == -7
            with pytest.raises(UnknownComponent):
                await link.request("Component.Get", {"Name": "Nope", "Controls": [{"Name": "x"}]})
            assert link.status().breaker == "closed"


async def test_request_fails_at_once_while_the_core_is_unreachable() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        config = CoreConfig(name="main", host="127.0.0.1", port=port, request_timeout=1.0)
        store = StateStore()
        with trio.fail_after(WAIT):
            async with running_link(config, store) as link:
                while link.statistics().connect_failures < 2:
                    await trio.testing.wait_all_tasks_blocked()
                start = trio.current_time()
                with pytest.raises(CoreUnavailable) as info:
                    await link.request("StatusGet", 0)
                assert trio.current_time() - start < 0.1
                message = str(info.value)
                assert message.startswith('Core "main" unreachable since ')
                assert "connection refused" in message and "retrying every" in message
                status = link.status()
                assert not status.connected and "connection refused" in (status.last_error or "")
                assert store.is_stale("main")


async def test_stopping_the_link_closes_everything(emulator: EmulatorServer) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            assert emulator.connection_count == 1
        await emulator.wait_connections(0)
        assert not link.connected
        assert store.is_stale("main")
        assert store.core_status("main") is not None
        assert not store.core_status("main").connected  # type: ignore[union-attr]


async def test_links_to_two_cores_are_independent(start_emulator: StartEmulator) -> None:
    first = await start_emulator()
    second = await start_emulator()
    store = StateStore()
    with trio.fail_after(WAIT):
        async with (
            running_link(core_config(first, name="a"), store) as a,
            running_link(core_config(second, name="b"), store) as b,
        ):
            await a.wait_connected()
            await b.wait_connected()
            second.stall()
            second.drop_connections()
            await b.wait_disconnected()
            assert a.connected
            assert await a.request("StatusGet", 0)
            with pytest.raises(CoreUnavailable, match='Core "b"'):
                await b.request("StatusGet", 0)
            second.stall(False)
            await b.wait_connected()


async def test_websocket_transport_discovers_and_follows(emulator: EmulatorServer) -> None:
    assert emulator.ws_port is not None
    store = StateStore()
    config = core_config(emulator, transport="ws", port=emulator.ws_port)
    ref = ControlRef("main", "Restaurant", "gain")
    with trio.fail_after(WAIT):
        async with running_link(config, store) as link:
            await link.wait_connected()
            assert {c.name for c in store.components("main")} >= {"Restaurant"}
            emulator.set_value("Restaurant", "gain", -21)
            await wait_for_value(store, ref, lambda v: v is not None and v.value == -21.0)
            await link.request(
                "Component.Set", {"Name": "Restaurant", "Controls": [{"Name": "gain", "Value": -4}]}
            )
            assert emulator.get_value("Restaurant", "gain") == -4


def open_sockets_to(port: int) -> list[socket.socket]:
    """Client sockets of this process still open towards ``port``, garbage or not."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.family == socket.AF_INET and obj.fileno() != -1:
            with contextlib.suppress(OSError):
                if obj.getpeername()[1] == port:
                    found.append(obj)
    return found


async def test_websocket_link_closes_its_socket_when_the_core_closes_first(
    emulator: EmulatorServer,
) -> None:
    assert emulator.ws_port is not None
    config = core_config(emulator, transport="ws", port=emulator.ws_port)
    with trio.fail_after(WAIT):
        async with running_link(config) as link:
            await link.wait_connected()
            emulator.drop_connections()
            await link.wait_disconnected()
            await link.wait_connected()
    # trio-websocket alone leaves the client socket open when the server closes first; log
    # records may still hold it, so look for it open rather than wait for a ResourceWarning.
    assert open_sockets_to(emulator.ws_port) == []


class _RecordingStore(StateStore):
    """A real store that also notes how many values each poll reply or push brought."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.first = trio.Event()

    def apply(self, values: Any) -> int:
        values = list(values)
        self.batches.append(len(values))
        self.first.set()
        return super().apply(values)


async def test_controls_added_after_autopoll_arrive_in_pushes_not_in_one_reply(
    start_emulator: StartEmulator,
) -> None:
    # Slow replies: the adds take about a second, so AutoPoll (every 0.05 s) pushes meanwhile.
    emu = await start_emulator(generate_design(60, seed=3))
    emu.set_reply_delay(0.02)
    store = _RecordingStore()
    component = max(n for n, c in emu.core.components.items() if "gain" in c.controls)
    with trio.fail_after(30):
        async with running_link(core_config(emu, request_timeout=5.0), store) as link:
            await store.first.wait()  # the first push: the groups exist, the adds go on
            emu.set_value(component, "gain", -7.5)  # changed while adding: not lost
            await link.wait_connected()
            followed = store.statistics().controls
            reading = store.read(ControlRef("main", component, "gain"))
            assert reading.value is not None and reading.value.value == -7.5
            # every control reported, in many small replies: not a third of them in one
            assert sum(store.batches) >= followed
            assert len(store.batches) > 6
            assert max(store.batches) < followed / 3
