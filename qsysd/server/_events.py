"""Live events for HTTP clients: value and Core status changes, numbered, with a bounded history.

One :class:`EventHub` per daemon follows the StateStore (one coalescing watcher) and the Cores'
status, and numbers every event. Each Server-Sent Events client reads the history from the
last id it saw, so a client that reconnects with ``Last-Event-ID`` misses nothing while the
history still holds its next event, and is told so (a ``reset`` event) when it does not.
"""

from __future__ import annotations

import collections
import fnmatch
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import structlog
import trio

from qsysd.state import ControlValue, CoreStatus, StateStore
from qsysd.tools import json_scalar

__all__ = ["Event", "EventFilter", "EventHub", "format_sse"]

log = structlog.get_logger("qsysd.server")


@attrs.frozen
class Event:
    """One numbered event: ``kind`` is ``value`` or ``status``; ``data`` its JSON object."""

    id: int
    kind: str
    core: str
    component: str | None
    control: str | None
    data: dict[str, Any]


@attrs.frozen
class EventFilter:
    """Which events a client wants: glob patterns (``*`` for all) on Core, component, control.

    Status events match on the Core only; ``kinds`` limits the event kinds.
    """

    core: str = "*"
    component: str = "*"
    control: str = "*"
    kinds: frozenset[str] = frozenset({"value", "status"})

    def matches(self, event: Event) -> bool:
        if event.kind not in self.kinds or not fnmatch.fnmatchcase(event.core, self.core):
            return False
        if event.kind != "value":
            return True
        component = event.component if event.component is not None else ""
        return fnmatch.fnmatchcase(component, self.component) and fnmatch.fnmatchcase(
            event.control or "", self.control
        )


def format_sse(event: Event | None, *, kind: str | None = None, data: Any = None) -> bytes:
    """One SSE message: a numbered event, or an unnumbered one (``kind`` and ``data``)."""
    if event is not None:
        body = json.dumps(event.data, separators=(",", ":"), allow_nan=False)
        return f"id: {event.id}\nevent: {event.kind}\ndata: {body}\n\n".encode()
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {kind}\ndata: {body}\n\n".encode()


def _status_key(s: CoreStatus) -> tuple[Any, ...]:
    return (s.connected, s.state, s.status_code, s.design_code, s.active_host, s.breaker)


class EventHub:
    """Numbers value and status changes and keeps the last ``history`` of them."""

    def __init__(
        self,
        store: StateStore,
        statuses: Callable[[], list[CoreStatus]],
        *,
        history: int = 10_000,
        status_interval: float = 0.5,
    ) -> None:
        self._store = store
        self._statuses = statuses
        self._history: collections.deque[Event] = collections.deque(maxlen=max(history, 1))
        self._keep_history = history > 0
        self._status_interval = status_interval
        self._next_id = 1
        self._changed = trio.Event()
        self._closed = False
        self.published = 0

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._next_id - 1

    def oldest_id(self) -> int:
        """The id of the oldest event the history still holds (``last_id + 1`` when empty)."""
        return self._history[0].id if self._history else self._next_id

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the store and the Cores until cancelled or :meth:`close` is called."""
        async with trio.open_nursery() as nursery, self._store.watch(None) as watcher:
            nursery.start_soon(self._follow_status)
            task_status.started()
            async for batch in watcher:
                for value in batch:
                    self._publish_value(value)
                self._wake()
            nursery.cancel_scope.cancel()

    def close(self) -> None:
        """End every client's stream (at stop)."""
        self._closed = True
        self._wake()

    async def _follow_status(self) -> None:
        last: dict[str, tuple[Any, ...]] = {}
        while True:
            for status in self._statuses():
                key = _status_key(status)
                if last.get(status.core) != key:
                    if status.core in last:  # the first look is the baseline, not a change
                        self._publish("status", status.core, None, None, _status_data(status))
                        self._wake()
                    last[status.core] = key
            await trio.sleep(self._status_interval)

    def _publish_value(self, value: ControlValue) -> None:
        ref = value.ref
        self._publish(
            "value",
            ref.core,
            ref.component,
            ref.name,
            {
                "core": ref.core,
                "component": ref.component,
                "control": ref.name,
                "value": json_scalar(value.value),
                "string": value.string,
                "position": value.position,
                "time": round(time.time(), 3),
            },
        )

    def _publish(
        self, kind: str, core: str, component: str | None, control: str | None, data: Any
    ) -> None:
        event = Event(self._next_id, kind, core, component, control, data)
        self._next_id += 1
        self.published += 1
        if self._keep_history:
            self._history.append(event)
        else:
            self._history.clear()
            self._history.append(event)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def since(self, after: int) -> tuple[list[Event], bool]:
        """Events with ids above ``after``, and whether some of them are no longer held."""
        oldest = self.oldest_id()
        lost = after + 1 < oldest
        if after >= self.last_id:
            return [], lost
        start = max(after + 1, oldest) - oldest
        return [self._history[i] for i in range(start, len(self._history))], lost

    def stream(
        self, after: int | None, wanted: EventFilter, *, heartbeat: float = 15.0
    ) -> AsyncIterator[bytes]:
        """SSE bytes for one client: history after ``after``, then live events, until close.

        ``after`` None starts with the events published after this call, not after the first
        read: a client that has its response headers may change a value at once and must see
        that change. A ``: keep-alive`` comment goes out after ``heartbeat`` seconds of
        silence, so proxies keep the stream open.
        """
        unknown = after is not None and after > self.last_id
        cursor = self.last_id if after is None or unknown else after
        return self._stream(cursor, after if unknown else None, wanted, heartbeat)

    async def _stream(
        self, cursor: int, unknown: int | None, wanted: EventFilter, heartbeat: float
    ) -> AsyncIterator[bytes]:
        if unknown is not None:
            # An id this daemon never gave (another replica's, or from before a restart).
            yield format_sse(None, kind="reset", data=self._reset_data(unknown))
        while not self._closed:
            events, lost = self.since(cursor)
            if lost:
                yield format_sse(None, kind="reset", data=self._reset_data(cursor))
            for event in events:
                if wanted.matches(event):
                    yield format_sse(event)
            if events:
                cursor = events[-1].id
                continue
            changed = self._changed
            with trio.move_on_after(heartbeat) as idle:
                await changed.wait()
            if idle.cancelled_caught:
                yield b": keep-alive\n\n"

    def _reset_data(self, after: int) -> dict[str, Any]:
        return {
            "reason": f"events after id {after} are no longer held (the history keeps the "
            f"last {self._history.maxlen}); read the current state again",
            "last_event_id": self.last_id,
        }

    def statistics(self) -> dict[str, int]:
        return {"published": self.published, "held": len(self._history), "last_id": self.last_id}


def _status_data(s: CoreStatus) -> dict[str, Any]:
    return {
        "core": s.core,
        "connected": s.connected,
        "state": s.state,
        "design_code": s.design_code,
        "status": s.status_string,
        "status_code": s.status_code,
        "active_host": s.active_host,
        "last_error": s.last_error,
        "breaker": s.breaker,
        "time": round(time.time(), 3),
    }
