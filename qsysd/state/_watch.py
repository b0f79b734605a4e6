"""Watchers: trio tasks waiting for changes to some controls, or to everything."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType

import attrs
import trio

from qsysd.state._model import ControlRef, ControlValue

__all__ = ["Watcher", "WatcherStatistics"]


@attrs.frozen
class WatcherStatistics:
    """Counts for one watcher: values offered, delivered, and coalesced (replaced unread)."""

    refs: int | None
    pending: int
    offered: int
    delivered: int
    coalesced: int
    closed: bool


class Watcher:
    """Changes to a set of controls (or all), delivered as batches of the latest values.

    Made by :meth:`StateStore.watch`; use it as an async context manager (or call
    :meth:`close`) and iterate it::

        async with store.watch([ref]) as watcher:
            async for batch in watcher:
                ...

    The buffer holds at most one value per control: a newer value replaces an unread older one,
    so a slow watcher never blocks the store, its memory is bounded by the number of controls,
    and it always gets the latest value. Batches keep the order in which controls first changed.
    """

    __slots__ = ("__weakref__", "_closed", "_counts", "_on_close", "_pending", "_refs", "_wakeup")

    def __init__(
        self,
        refs: Iterable[ControlRef] | None,
        on_close: Callable[[Watcher], None] | None = None,
    ) -> None:
        self._refs: frozenset[ControlRef] | None = None if refs is None else frozenset(refs)
        self._on_close = on_close
        self._pending: dict[ControlRef, ControlValue] = {}
        self._wakeup = trio.Event()
        self._closed = False
        self._counts = [0, 0, 0]  # offered, delivered, coalesced

    @property
    def refs(self) -> frozenset[ControlRef] | None:
        """The watched controls; None means every control of every Core."""
        return self._refs

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, value: ControlValue) -> None:
        """Queue a changed value (called by the store; never blocks)."""
        if self._closed:
            return
        counts = self._counts
        counts[0] += 1
        pending = self._pending
        if value.ref in pending:
            counts[2] += 1
        pending[value.ref] = value
        self._wakeup.set()

    def receive_nowait(self) -> list[ControlValue]:
        """Take the pending batch; raise ``trio.WouldBlock`` if there is none."""
        if self._closed:
            raise trio.ClosedResourceError("this watcher is closed")
        if not self._pending:
            raise trio.WouldBlock
        batch = list(self._pending.values())
        self._pending = {}
        self._counts[1] += len(batch)
        return batch

    async def receive(self) -> list[ControlValue]:
        """Wait for the next batch; raise ``trio.ClosedResourceError`` once closed."""
        await trio.lowlevel.checkpoint()
        while True:
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                pass
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    def close(self) -> None:
        """Stop watching: drop pending values and end iteration (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._pending = {}
        self._wakeup.set()
        if self._on_close is not None:
            self._on_close(self)

    def statistics(self) -> WatcherStatistics:
        offered, delivered, coalesced = self._counts
        return WatcherStatistics(
            refs=None if self._refs is None else len(self._refs),
            pending=len(self._pending),
            offered=offered,
            delivered=delivered,
            coalesced=coalesced,
            closed=self._closed,
        )

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> list[ControlValue]:
        try:
            return await self.receive()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None
