"""CoreLink with a redundant pair: commands to the Active Core only, failover within seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from qsysd.config import CoreConfig
from qsysd.core import Backoff, CoreLink
from qsysd.emulator import EmulatorPair
from qsysd.state import ControlRef, StateStore

WAIT = 10.0
StartPair = Callable[..., Awaitable[EmulatorPair]]


def pair_config(pair: EmulatorPair) -> CoreConfig:
    return CoreConfig(
        name="main",
        host=pair.primary.host,
        port=pair.primary.tcp_port,
        backup_host=pair.backup.host,
        backup_port=pair.backup.tcp_port,
        request_timeout=0.5,
        keepalive_interval=0.3,
        poll_rate=0.05,
    )


@asynccontextmanager
async def running_link(config: CoreConfig, store: StateStore) -> AsyncIterator[CoreLink]:
    link = CoreLink(
        config,
        store,
        backoff=Backoff(initial=0.05, maximum=0.2, healthy_after=1.0),
        failover_check_interval=0.1,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        try:
            yield link
        finally:
            link.stop()


def address(server: Any) -> str:
    return f"{server.host}:{server.tcp_port}"


async def wait_for_value(store: StateStore, ref: ControlRef, value: Any) -> None:
    async with store.watch([ref]) as watcher:
        current = store.read(ref).value
        if current is not None and current.value == value:
            return
        async for batch in watcher:
            if any(v.ref == ref and v.value == value for v in batch):
                return


async def wait_active(link: CoreLink, wanted: str) -> None:
    while link.active_address != wanted:
        await link.wait_disconnected()
        await link.wait_connected()


async def test_pair_sends_commands_to_the_active_core(start_pair: StartPair) -> None:
    pair = await start_pair()
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(pair_config(pair), store) as link:
            await link.wait_connected()
            assert link.active_address == address(pair.primary)
            await link.request(
                "Component.Set", {"Name": "Bar", "Controls": [{"Name": "gain", "Value": -5}]}
            )
            assert pair.primary.get_value("Bar", "gain") == -5
            assert link.status().is_redundant
            assert not link.statistics().design_mismatch


async def test_failover_moves_commands_and_live_values_to_the_new_active_core(
    start_pair: StartPair,
) -> None:
    pair = await start_pair()
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(pair_config(pair), store) as link:
            await link.wait_connected()
            pair.failover()
            await wait_active(link, address(pair.backup))
            assert await link.request("StatusGet", 0)
            pair.backup.set_value("Bar", "gain", -17)
            await wait_for_value(store, ControlRef("main", "Bar", "gain"), -17.0)
            # and back, with the now-Active primary dropping its sockets too
            pair.failover()
            pair.backup.drop_connections()
            await wait_active(link, address(pair.primary))
            assert link.status().state == "Active"


async def test_standby_reply_rechecks_status_and_retries_on_the_other_core(
    start_pair: StartPair,
) -> None:
    pair = await start_pair()
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(pair_config(pair), store) as link:
            await link.wait_connected()
            # a failover nobody announced: no EngineStatus pushes
            pair.primary.engine.state = "Standby"
            pair.backup.engine.state = "Active"
            await link.request(
                "Component.Set", {"Name": "Bar", "Controls": [{"Name": "gain", "Value": -3}]}
            )
            assert pair.backup.get_value("Bar", "gain") == -3
            assert link.statistics().requests[("Component.Set", "qrc_error")] == 1
            await wait_active(link, address(pair.backup))


async def test_pair_with_different_design_codes_is_reported(start_pair: StartPair) -> None:
    pair = await start_pair()
    store = StateStore()
    with trio.fail_after(WAIT):
        async with running_link(pair_config(pair), store) as link:
            await link.wait_connected()
            await pair.primary.wait_connections(1)
            await pair.backup.wait_connections(1)
            pair.backup.engine.update_status(design_code="otherDesign1")
            while not link.statistics().design_mismatch:
                await trio.testing.wait_all_tasks_blocked()
            assert link.active_address == address(pair.primary)
