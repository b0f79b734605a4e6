"""The in-memory rate-limit storage: expired entries dropped without a timer thread."""

from __future__ import annotations

import threading
import time

from qsysd.access._limits import _MemoryStorage


def test_counting_starts_no_thread_and_sweeps_expired_entries_on_the_callers_thread() -> None:
    storage = _MemoryStorage()
    storage.timer.join()  # the library starts one timer in its constructor (once, at start-up)
    first_timer, threads = storage.timer, set(threading.enumerate())
    storage.incr("short", expiry=0.001)
    for n in range(200):  # the library's own storage would start a Timer on these
        storage.incr(f"key-{n}", expiry=60)
    assert set(threading.enumerate()) - threads == set()
    assert storage.timer is first_timer and not storage.timer.is_alive()
    time.sleep(0.01)
    storage.incr("within-the-interval", expiry=60)
    assert "short" in storage.expirations  # swept at most once per sweep_interval
    storage.sweep_interval = 0.0
    storage.incr("after-the-interval", expiry=60)
    assert "short" not in storage.expirations
    assert "key-0" in storage.expirations
    assert storage.get("key-0") == 1
