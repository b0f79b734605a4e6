"""Watchers: batches of the latest values, coalescing, never blocking the store, clean close."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue, StateStore

REFS = [ControlRef("main", "Mixer", f"gain.{i}") for i in range(4)]
OTHER = ControlRef("main", "Mixer", "mute")


def make_store() -> StateStore:
    store = StateStore()
    store.replace_design(
        "main",
        "code",
        [ComponentInfo("main", "Mixer", "mixer", "id")],
        [ControlInfo(r, "Float", "Read/Write") for r in [*REFS, OTHER]],
        [],
    )
    return store


def value(ref: ControlRef, v: float) -> ControlValue:
    return ControlValue(ref, v, f"{v}dB", None)


async def test_watcher_receives_changes_to_its_controls_only() -> None:
    store = make_store()
    with trio.fail_after(5):
        async with store.watch([REFS[0]]) as watcher:
            store.apply([value(OTHER, 1.0), value(REFS[0], 2.0)])
            assert await watcher.receive() == [value(REFS[0], 2.0)]


async def test_watcher_of_everything_receives_every_change() -> None:
    store = make_store()
    with trio.fail_after(5):
        async with store.watch() as watcher:
            store.apply([value(OTHER, 1.0), value(REFS[1], 2.0)])
            assert await watcher.receive() == [value(OTHER, 1.0), value(REFS[1], 2.0)]


async def test_slow_watcher_gets_only_the_latest_value_per_control() -> None:
    store = make_store()
    with trio.fail_after(5):
        async with store.watch(REFS[:2]) as watcher:
            for v in range(1000):
                store.apply([value(REFS[0], float(v)), value(REFS[1], -float(v))])
            batch = await watcher.receive()
            assert batch == [value(REFS[0], 999.0), value(REFS[1], -999.0)]
            stats = watcher.statistics()
            assert stats.coalesced == 1998
            assert stats.pending == 0


async def test_unchanged_values_wake_no_watcher() -> None:
    store = make_store()
    store.apply([value(REFS[0], 1.0)])
    async with store.watch() as watcher:
        store.apply([value(REFS[0], 1.0)])
        with pytest.raises(trio.WouldBlock):
            watcher.receive_nowait()


async def test_async_iteration_ends_when_the_watcher_is_closed_by_another_task() -> None:
    store = make_store()
    batches: list[list[ControlValue]] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            watcher = store.watch([REFS[0]])

            async def consume() -> None:
                async for batch in watcher:
                    batches.append(batch)
                    watcher.close()

            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            store.apply([value(REFS[0], 1.0)])
    assert batches == [[value(REFS[0], 1.0)]]
    assert store.statistics().watchers == 0


async def test_closing_wakes_a_waiting_receiver() -> None:
    store = make_store()
    watcher = store.watch([REFS[0]])
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await watcher.receive()

            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            watcher.close()


async def test_closed_watcher_is_unregistered_and_ignores_changes() -> None:
    store = make_store()
    async with store.watch([REFS[0]]) as watcher:
        pass
    store.apply([value(REFS[0], 1.0)])
    assert watcher.closed
    assert watcher.statistics().offered == 0
    assert store.statistics().watchers == 0
    watcher.close()  # idempotent


async def test_two_watchers_of_one_control_both_receive() -> None:
    store = make_store()
    with trio.fail_after(5):
        async with store.watch([REFS[0]]) as a, store.watch([REFS[0]]) as b:
            store.apply([value(REFS[0], 4.0)])
            assert await a.receive() == await b.receive() == [value(REFS[0], 4.0)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, len(REFS) - 1), st.integers(-5, 5)),
            st.just(None),  # the watcher drains its buffer here
        ),
        max_size=60,
    )
)
def test_coalescing_watcher_never_loses_the_last_value(steps: list[tuple[int, int] | None]) -> None:
    store = make_store()
    watcher = store.watch(REFS)
    last_applied: dict[ControlRef, ControlValue] = {}
    last_seen: dict[ControlRef, ControlValue] = {}

    def drain() -> None:
        try:
            batch = watcher.receive_nowait()
        except trio.WouldBlock:
            return
        assert len({v.ref for v in batch}) == len(batch)  # at most one value per control
        last_seen.update((v.ref, v) for v in batch)

    for step in steps:
        if step is None:
            drain()
            continue
        index, v = step
        store.apply([value(REFS[index], float(v))])
        last_applied[REFS[index]] = store.read(REFS[index]).value  # type: ignore[assignment]
    drain()
    assert last_seen == last_applied
    assert watcher.statistics().pending == 0
    watcher.close()
