"""A trio loop in a thread, for synchronous tests (hypothesis, schemathesis) that drive async parts.

hypothesis runs each example as a plain call, and pytest-trio would give every example its
own ``trio.run``: a daemon per example. Here one loop in a thread holds the emulator, the
daemon and its clients for a whole module, and each example runs a coroutine on it::

    with TrioThread(lambda: running_things()) as (portal, things):
        portal.run(things.call, "qsys_get", {...}, timeout=30)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")
R = TypeVar("R")

#: How long the thread may take to open or to close what it holds.
START_TIMEOUT = 60.0


class TrioThread(Generic[T]):
    """Enters ``open()`` (an async context manager) in a trio loop of its own thread."""

    def __init__(self, open: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._open = open
        self._ready: queue.Queue[tuple[trio.lowlevel.TrioToken, Any] | BaseException] = (
            queue.Queue()
        )
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="trio-thread", daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._hold)
        except BaseException as exc:  # handed to the test thread, which raises it
            self._error = exc
            self._ready.put(exc)

    async def _hold(self) -> None:
        self._stop = trio.Event()
        # Entered and left in this one task: the nurseries inside must nest in its scopes.
        async with self._open() as value:
            self._ready.put((trio.lowlevel.current_trio_token(), value))
            await self._stop.wait()

    def __enter__(self) -> tuple[TrioThread[T], T]:
        self._thread.start()
        got = self._ready.get(timeout=START_TIMEOUT + 5)
        if isinstance(got, BaseException):
            raise got
        self._token, value = got
        return self, value

    def run(self, fn: Callable[..., Awaitable[R]], *args: Any, timeout: float) -> R:
        """``await fn(*args)`` on the loop, failing with TooSlowError after ``timeout`` s."""

        async def bounded() -> R:
            with trio.fail_after(timeout):
                return await fn(*args)

        assert self._token is not None, "the thread is not running"
        return trio.from_thread.run(bounded, trio_token=self._token)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None and self._stop is not None:
            stop = self._stop
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
        self._thread.join(START_TIMEOUT + 5)
        assert not self._thread.is_alive(), "the trio thread did not stop"
        if self._error is not None:
            raise self._error
