"""CoreLink survives every fault the emulator injects, without hangs or lost acknowledged writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from _stacks import core_config as _core_config, running_link

from qsysd.config import CoreConfig, Secret
from qsysd.emulator import EmulatorServer
from qsysd.errors import CoreError, CoreUnavailable, RequestTimeout
from qsysd.state import ControlRef, StateStore


def core_config(emu: EmulatorServer, **overrides: Any) -> CoreConfig:
    """Tighter deadlines than the shared default: faults here must show within a second."""
    return _core_config(emu, **{"request_timeout": 0.5, "keepalive_interval": 0.3, **overrides})


WAIT = 10.0
StartEmulator = Callable[..., Awaitable[EmulatorServer]]


async def wait_for_value(store: StateStore, ref: ControlRef, value: Any) -> None:
    async with store.watch([ref]) as watcher:
        current = store.read(ref).value
        if current is not None and current.value == value:
            return
        async for batch in watcher:
            if any(v.ref == ref and v.value == value for v in batch):
                return


async def test_dropped_connection_is_reconnected_and_resubscribed(
    emulator: EmulatorServer,
) -> None:
    store = StateStore()
    ref = ControlRef("main", "Bar", "gain")
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            emulator.drop_connections()
            await link.wait_disconnected()
            status = link.status()
            assert not status.connected and status.last_error
            assert store.is_stale("main")
            with pytest.raises(CoreUnavailable, match='Core "main" '):
                await link.request("StatusGet", 0)
            await link.wait_connected()
            assert not store.is_stale("main")
            stats = link.statistics()
            assert stats.reconnects == 1 and stats.discoveries == 1  # same design: no rediscovery
            emulator.set_value("Bar", "gain", -42)
            await wait_for_value(store, ref, -42.0)


async def test_a_stall_with_a_request_in_flight_is_probed_at_once_after_its_timeout(
    emulator: EmulatorServer,
) -> None:
    # a keepalive far beyond the wait: only the probe after the timeout can find the stall
    config = core_config(emulator, keepalive_interval=30.0)
    with trio.fail_after(WAIT):
        async with running_link(config) as link:
            await link.wait_connected()
            emulator.stall()
            with pytest.raises(RequestTimeout):
                await link.request("StatusGet", 0)
            await link.wait_disconnected()
            assert not link.status().connected
            assert "NoOp sent after a request timed out got no answer" in (
                link.status().last_error or ""
            )
            start = trio.current_time()
            with pytest.raises(CoreUnavailable, match="stalled"):
                await link.request("StatusGet", 0)
            assert trio.current_time() - start < config.request_timeout / 5  # no wait at all
            emulator.stall(False)
            emulator.drop_connections()  # a stalled Core's half-open sockets go with it
            await link.wait_connected()
            assert await link.request("StatusGet", 0)


async def test_an_idle_stalled_core_is_declared_dead_by_the_keepalive(
    emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator)) as link:
            await link.wait_connected()
            emulator.stall()
            await link.wait_disconnected()  # no request sent: the keepalive found it
            status = link.status()
            assert not status.connected
            assert "NoOp sent as keepalive got no answer" in (status.last_error or "")
            emulator.stall(False)
            emulator.drop_connections()


async def test_slow_core_within_the_deadline_is_served(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator, request_timeout=1.0)) as link:
            await link.wait_connected()
            emulator.set_reply_delay(0.1)
            assert await link.request("StatusGet", 0)
            emulator.set_reply_delay(0)
            assert link.connected


async def test_too_slow_core_opens_the_breaker_and_requests_fail_at_once(
    emulator: EmulatorServer,
) -> None:
    # replies take 0.5 s: the probe (deadline 2 s) proves the Core alive, each 0.2 s request
    # times out, and the breaker, not a reconnect, stops sending
    config = core_config(emulator, request_timeout=2.0, keepalive_interval=5.0)
    with trio.fail_after(WAIT):
        async with running_link(config) as link:
            await link.wait_connected()
            emulator.set_reply_delay(0.5)
            timeouts = 0
            while True:
                try:
                    await link.request("StatusGet", 0, timeout=0.2)
                except RequestTimeout:
                    timeouts += 1
                    continue
                except CoreUnavailable as exc:
                    assert "circuit breaker open" in str(exc)
                    break
            assert timeouts == 5  # the breaker's default threshold
            assert link.connected and link.status().breaker == "open"
            sent = link.statistics().requests
            start = trio.current_time()
            with pytest.raises(CoreUnavailable, match="circuit breaker open"):
                await link.request("StatusGet", 0, timeout=0.2)
            assert trio.current_time() - start < 0.05  # refused without waiting for the Core
            after = link.statistics().requests
            assert after[("StatusGet", "timeout")] == sent[("StatusGet", "timeout")]
            emulator.set_reply_delay(0)


async def test_a_little_garbage_is_tolerated(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator)) as link:
            await link.wait_connected()
            emulator.send_garbage()
            assert await link.request("StatusGet", 0)
            assert link.statistics().invalid_frames == 1
            assert link.statistics().reconnects == 0


async def test_a_flood_of_garbage_drops_and_reconnects(emulator: EmulatorServer) -> None:
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), max_invalid_frames=3) as link:
            await link.wait_connected()
            for _ in range(10):
                emulator.send_garbage()
            await link.wait_disconnected()
            await link.wait_connected()
            assert link.statistics().invalid_frames >= 4
            assert await link.request("StatusGet", 0)


async def test_half_frames_and_split_frames_are_survived(emulator: EmulatorServer) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            emulator.split_frames()
            assert await link.request("StatusGet", 0)
            emulator.split_frames(False)
            emulator.send_half_frame()
            # the half frame swallows the next frame: one request may time out, then it is over
            for _ in range(3):
                try:
                    assert await link.request("StatusGet", 0)
                    break
                except (RequestTimeout, CoreUnavailable):
                    await link.wait_connected()
            else:
                pytest.fail("the link did not recover from a half frame")
            emulator.set_value("Bar", "gain", -11)
            await wait_for_value(store, ControlRef("main", "Bar", "gain"), -11.0)


async def test_redeploy_with_a_new_design_code_rediscovers(emulator: EmulatorServer) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            old = store.design_code("main")
            code = emulator.restart()
            assert code != old
            await link.wait_disconnected()
            await link.wait_connected()
            assert store.design_code("main") == code
            assert link.status().design_code == code
            assert link.statistics().discoveries == 2


async def test_new_design_code_in_engine_status_push_rediscovers(emulator: EmulatorServer) -> None:
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            emulator.engine.update_status(design_code="pushedCode01")
            await link.wait_disconnected()
            await link.wait_connected()
            assert store.design_code("main") == "pushedCode01"
            assert link.statistics().discoveries == 2
            assert "design changed (DesignCode " in (link.status().last_error or "")
            assert "-> pushedCode01" in (link.status().last_error or "")


async def test_wrong_password_is_reported_without_the_password(
    start_emulator: StartEmulator,
) -> None:
    emu = await start_emulator(password="1234", user="admin")
    config = core_config(emu, username="admin", password=Secret("9999-wrong"))
    with trio.fail_after(WAIT):
        async with running_link(config) as link:
            while link.statistics().connect_failures < 2:
                await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(CoreUnavailable) as info:
                await link.request("StatusGet", 0)
            assert "wrong username or password" in str(info.value)
            assert "wrong username or password" in (link.status().last_error or "")
            assert "9999-wrong" not in str(info.value)
            assert "9999-wrong" not in (link.status().last_error or "")
        good = core_config(emu, username="admin", password=Secret("1234"))
        async with running_link(good) as link:
            await link.wait_connected()


async def test_refused_logon_recovers_when_the_core_accepts_again(
    start_emulator: StartEmulator,
) -> None:
    emu = await start_emulator(password="1234", user="admin")
    config = core_config(emu, username="admin", password=Secret("1234"))
    emu.refuse_logon()
    with trio.fail_after(WAIT):
        async with running_link(config) as link:
            while link.statistics().connect_failures < 1:
                await trio.testing.wait_all_tasks_blocked()
            assert not link.connected
            emu.refuse_logon(False)
            await link.wait_connected()


async def test_exhausted_change_groups_degrade_to_fewer_groups(
    emulator: EmulatorServer,
) -> None:
    emulator.engine.max_groups_per_connection = 1
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator), store) as link:
            await link.wait_connected()
            assert link.statistics().change_groups == 1
            emulator.set_value("Terrace", "gain", -9)
            await wait_for_value(store, ControlRef("main", "Terrace", "gain"), -9.0)


async def test_no_change_group_at_all_still_serves_requests(emulator: EmulatorServer) -> None:
    emulator.engine.max_groups_per_connection = 0
    with trio.fail_after(WAIT):
        async with running_link(core_config(emulator)) as link:
            await link.wait_connected()
            assert link.statistics().change_groups == 0
            assert await link.request("StatusGet", 0)


async def test_no_acknowledged_write_is_lost_across_drops(emulator: EmulatorServer) -> None:
    acknowledged = 0
    with trio.fail_after(20):
        async with running_link(core_config(emulator)) as link:
            for step in range(30):
                if step % 5 == 4:
                    emulator.drop_connections()
                value = -float(step)
                try:
                    await link.request(
                        "Component.Set",
                        {"Name": "Ballroom", "Controls": [{"Name": "gain", "Value": value}]},
                    )
                except CoreError:
                    await link.wait_connected()
                    continue
                acknowledged += 1
                # acknowledged means applied on the Core, whatever happens next
                assert emulator.get_value("Ballroom", "gain") == value
    assert acknowledged >= 20
