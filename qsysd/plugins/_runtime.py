"""Plugins at run time: start-up tasks and observers, in a nursery the daemon owns.

Observers never sit on the hot path: the store and the audit trail only offer each change
or write to a bounded queue per observer (``send_nowait``); one task per observer drains it.
A full queue drops the item (counted, logged at the first and every 100th drop), so a slow
observer never delays a write; an observer that raises is logged and keeps receiving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import structlog
import trio

from qsysd.plugins._context import ToolContext
from qsysd.plugins._registry import Registry
from qsysd.plugins._tool import ValueChange
from qsysd.state import ControlValue, JournalEntry

if TYPE_CHECKING:
    from qsysd.api import QsysApi

__all__ = ["ObserverStatistics", "PluginRuntime", "running_plugins"]

log = structlog.get_logger("qsysd.plugins")

#: Items an observer may fall behind by before new ones are dropped.
OBSERVER_QUEUE_SIZE = 1000
#: Most changes handed to a change observer in one call.
CHANGE_BATCH_SIZE = 500
_LOG_EVERY = 100

_Item = TypeVar("_Item")


@attrs.frozen
class ObserverStatistics:
    plugin: str
    hook: str
    pending: int
    delivered: int
    dropped: int
    failed: int


class _ObserverQueue(Generic[_Item]):
    """One observer's bounded queue, and the task that feeds the observer from it."""

    def __init__(
        self,
        plugin: str,
        hook: str,
        observer: Callable[[Any], Awaitable[None]],
        *,
        size: int,
        batch: int | None,
    ) -> None:
        self.plugin = plugin
        self.hook = hook
        self._observer = observer
        self._batch = batch
        self._send, self._receive = trio.open_memory_channel[_Item](size)
        self.delivered = self.dropped = self.failed = 0

    def offer(self, item: _Item) -> None:
        """Queue ``item``, or drop it when the observer is too far behind; never blocks."""
        try:
            self._send.send_nowait(item)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.dropped += 1
            if self.dropped % _LOG_EVERY == 1:
                log.warning("plugin.observer_dropped", plugin=self.plugin, hook=self.hook,
                            dropped=self.dropped)  # fmt: skip

    async def run(self) -> None:
        async for first in self._receive:
            items: list[_Item] = [first]
            if self._batch is not None:
                while len(items) < self._batch:
                    try:
                        items.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
            try:
                await self._observer(items if self._batch is not None else first)
            except Exception as exc:  # a broken observer must not stop the daemon
                self.failed += 1
                if self.failed % _LOG_EVERY == 1:
                    log.error("plugin.observer_failed", plugin=self.plugin, hook=self.hook,
                              error=repr(exc), failed=self.failed, exc_info=exc)  # fmt: skip
            else:
                self.delivered += len(items)

    def statistics(self) -> ObserverStatistics:
        pending = self._send.statistics().current_buffer_used
        return ObserverStatistics(
            self.plugin, self.hook, pending, self.delivered, self.dropped, self.failed
        )


class PluginRuntime:
    """The running start-up tasks and observer queues of one registry over one facade."""

    def __init__(self, registry: Registry, api: QsysApi, *, queue_size: int) -> None:
        self.registry = registry
        self.api = api
        self.changes: list[_ObserverQueue[ValueChange]] = [
            _ObserverQueue(
                plugin,
                "qsysd_observe_changes",
                fn,
                size=queue_size,
                batch=CHANGE_BATCH_SIZE,
            )
            for plugin, fn in registry.change_observers()
        ]
        self.writes: list[_ObserverQueue[JournalEntry]] = [
            _ObserverQueue(plugin, "qsysd_observe_writes", fn, size=queue_size, batch=None)
            for plugin, fn in registry.write_observers()
        ]

    def context(self, plugin: str) -> ToolContext:
        """What a plugin's start-up task works with: the facade as ``plugin:NAME``."""
        config = self.registry.context(plugin).config
        return ToolContext(self.api, f"plugin:{plugin}", config=config, plugin=plugin)

    def _on_change(self, value: ControlValue, before: ControlValue | None, at: float) -> None:
        change = ValueChange(value, before, at)
        for queue in self.changes:
            queue.offer(change)

    def _on_write(self, entry: JournalEntry) -> None:
        for queue in self.writes:
            queue.offer(entry)

    async def _run_startup(
        self, plugin: str, task: Callable[[ToolContext], Awaitable[None]]
    ) -> None:
        log.info("plugin.task_started", plugin=plugin)
        try:
            await task(self.context(plugin))
        except Exception as exc:  # a broken plugin must not stop the daemon
            log.error("plugin.task_failed", plugin=plugin, error=repr(exc), exc_info=exc)
        else:
            log.info("plugin.task_ended", plugin=plugin)

    def queues(self) -> list[_ObserverQueue[Any]]:
        return [*self.changes, *self.writes]

    def statistics(self) -> list[ObserverStatistics]:
        return [q.statistics() for q in self.queues()]


@asynccontextmanager
async def running_plugins(
    registry: Registry, api: QsysApi, *, queue_size: int = OBSERVER_QUEUE_SIZE
) -> AsyncIterator[PluginRuntime]:
    """Run the plugins' start-up tasks and observers until exit, then cancel them."""
    runtime = PluginRuntime(registry, api, queue_size=queue_size)
    removers = []
    if runtime.changes:
        removers.append(api.on_change(runtime._on_change))
    if runtime.writes:
        removers.append(api.on_write(runtime._on_write))
    try:
        async with trio.open_nursery() as nursery:
            for queue in runtime.queues():
                nursery.start_soon(queue.run)
            for plugin, task in registry.startups():
                nursery.start_soon(runtime._run_startup, plugin, task)
            try:
                yield runtime
            finally:
                # Plugins' tasks run for the daemon's life: stopping is cancelling them.
                nursery.cancel_scope.cancel()
    finally:
        for remove in removers:
            remove()
