"""The event hub: where a client's stream starts, what its history holds, and when it resets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import trio

from qsysd.server._events import EventFilter, EventHub
from qsysd.state import ComponentInfo, ControlInfo, ControlRef, ControlValue, StateStore

GAIN = ControlRef("main", "Mixer", "gain")
MUTE = ControlRef("main", "Mixer", "mute")


@asynccontextmanager
async def running_hub(history: int) -> AsyncIterator[tuple[StateStore, EventHub]]:
    """A store of one mixer and a hub following it, within a deadline."""
    store = StateStore()
    store.replace_design(
        "main",
        "code",
        [ComponentInfo("main", "Mixer", "mixer", "id")],
        [ControlInfo(r, "Float", "Read/Write") for r in (GAIN, MUTE)],
        [],
    )
    hub = EventHub(store, list, history=history)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            yield store, hub
            hub.close()
            nursery.cancel_scope.cancel()


async def published(hub: EventHub, last_id: int) -> None:
    """Wait until the hub has numbered the event ``last_id`` (it follows the store in a task)."""
    while hub.last_id < last_id:  # noqa: ASYNC110 -- the hub offers nothing to wait on
        await trio.sleep(0.005)


async def message(chunks: AsyncIterator[bytes]) -> tuple[str, dict[str, Any]]:
    """The next SSE message's kind and data (keep-alive comments skipped)."""
    while True:
        fields = dict(
            line.split(": ", 1) for line in (await anext(chunks)).decode().splitlines() if line
        )
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


async def test_a_stream_holds_what_was_published_between_asking_and_reading() -> None:
    async with running_hub(history=10) as (store, hub):
        store.apply([ControlValue(GAIN, -1.0, "-1dB", None)])
        await published(hub, 1)
        # The client has its headers and changes a value before the body is first read.
        async with aclosing(hub.stream(None, EventFilter())) as chunks:
            store.apply([ControlValue(GAIN, -2.0, "-2dB", None)])
            await published(hub, 2)
            kind, data = await message(chunks)
            assert (kind, data["control"], data["value"]) == ("value", "gain", -2.0)


async def test_a_stream_resumes_filtered_and_resets_when_its_history_is_gone() -> None:
    async with running_hub(history=2) as (store, hub):
        for n, ref in enumerate((GAIN, MUTE, GAIN), start=1):
            store.apply([ControlValue(ref, float(n), str(n), None)])
            await published(hub, n)
        # From id 1: id 2 and 3 are held, so nothing is lost; the filter drops the mute.
        async with aclosing(hub.stream(1, EventFilter(control="gain"))) as resumed:
            kind, data = await message(resumed)
            assert (kind, data["value"]) == ("value", 3.0)
        # From id 0: id 1 is gone, so a reset first, then what is held.
        async with aclosing(hub.stream(0, EventFilter())) as gone:
            kind, data = await message(gone)
            assert kind == "reset" and data["last_event_id"] == 3
            assert [(await message(gone))[1]["value"] for _ in range(2)] == [2.0, 3.0]
        # An id this hub never gave: a reset, then live events only.
        async with aclosing(hub.stream(99, EventFilter())) as unknown:
            assert (await message(unknown))[0] == "reset"
            store.apply([ControlValue(MUTE, 4.0, "4", None)])
            assert (await message(unknown))[1]["value"] == 4.0
