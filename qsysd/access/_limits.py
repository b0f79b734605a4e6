"""Rate limits with the ``limits`` library: per principal and per client address.

Reads and writes have separate budgets (a chatty dashboard never blocks the operator's
writes), and failed authentications have one per client address against token guessing.
The storage is in memory (each instance keeps its own budgets) or Redis, where several
instances share them; the Redis client is synchronous, so its calls run in a worker thread.
If Redis cannot be reached a call is let through (logged): an outage of the limiter must not
take the control of a venue down with it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import structlog
import trio
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from qsysd.errors import ConfigError, RateLimited

if TYPE_CHECKING:
    from qsysd.config import AuthConfig

__all__ = ["Budget", "RateLimits", "parse_rate"]

Budget = Literal["read", "write", "failed-authentication"]

log = structlog.get_logger("qsysd.access")
#: Redis URL schemes the limits library's Redis storage takes.
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


class _MemoryStorage(MemoryStorage):
    """limits' memory storage, its expired entries dropped on the calling thread.

    The library's own storage starts a ``threading.Timer`` on any call that finds none
    alive, about every 10 ms under load, and ``Thread.start()`` blocks the caller until the
    new thread runs: on the trio thread of a busy two-core machine that cost ~2 ms per start,
    measured (bench/bench_http.py), many times the limit check itself. Dropping expired
    entries is only memory upkeep (every check counts by time), so here it happens on the
    caller's thread at most once a second.
    """

    #: Seconds between two sweeps of expired entries.
    sweep_interval = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._dropped_at = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private hook
        now = time.monotonic()
        if now - self._dropped_at >= self.sweep_interval:
            self._dropped_at = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def parse_rate(text: str) -> RateLimitItem | None:
    """``"120/minute"`` as a limit; ``"off"`` as None; ValueError when neither."""
    if text == "off":
        return None
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate like '120/minute', '10/second', '1000/hour' or 'off'"
        ) from None


class RateLimits:
    """The budgets of one instance; ``refused`` counts refusals by budget and key kind."""

    def __init__(
        self,
        *,
        read: str = "off",
        write: str = "off",
        address_read: str = "off",
        address_write: str = "off",
        failed_authentication: str = "off",
        storage: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # (budget, "principal" | "address") -> limit; several principals may share an
        # address (a proxy, a NAT), so an address has budgets of its own.
        self._items: dict[tuple[Budget, str], RateLimitItem | None] = {
            ("read", "principal"): parse_rate(read),
            ("write", "principal"): parse_rate(write),
            ("read", "address"): parse_rate(address_read),
            ("write", "address"): parse_rate(address_write),
            ("failed-authentication", "address"): parse_rate(failed_authentication),
        }
        backend: Storage = _MemoryStorage()
        if storage is not None:
            try:
                backend = RedisStorage(
                    storage,
                    key_prefix="qsysd-limits",
                    socket_timeout=2.0,
                    socket_connect_timeout=2.0,
                )
            except ConfigurationError as exc:  # redis-py is not installed
                raise ConfigError(
                    [f"auth.rate_limit_storage: {exc}; install qsysd[redis]"]
                ) from None
        self._threaded = storage is not None
        self._limiter = MovingWindowRateLimiter(backend)
        self._clock = clock
        self.refused: Counter[tuple[Budget, str]] = Counter()
        self.storage_errors = 0

    @classmethod
    def from_config(cls, auth: AuthConfig) -> RateLimits:
        return cls(
            read=auth.rate_limit_reads,
            write=auth.rate_limit_writes,
            address_read=auth.rate_limit_address_reads,
            address_write=auth.rate_limit_address_writes,
            failed_authentication=auth.rate_limit_failed_auth,
            storage=auth.rate_limit_storage.reveal() if auth.rate_limit_storage else None,
        )

    async def _run(self, fn: Callable[[], None]) -> None:
        if not self._threaded:
            fn()
            return
        try:
            await trio.to_thread.run_sync(fn)
        except RateLimited:
            raise
        except Exception as exc:  # Redis down or slow: let the call through, say so
            self.storage_errors += 1
            if self.storage_errors == 1 or self.storage_errors % 100 == 0:
                log.error("limits.storage_failed", error=type(exc).__name__,
                          failures=self.storage_errors)  # fmt: skip

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        reset = self._limiter.get_window_stats(item, key).reset_time
        return int(reset - self._clock()) + 1

    async def spend(self, budget: Budget, *, principal: str | None, address: str | None) -> None:
        """Spend one call of ``budget`` for the principal and for the address, or RateLimited.

        Nothing is spent when either budget is exhausted.
        """
        await self._run(lambda: self._spend(budget, principal, address))

    async def check(self, budget: Budget, *, address: str | None) -> None:
        """RateLimited if ``address`` has no ``budget`` left (spends nothing)."""
        await self._run(lambda: self._check(budget, address))

    def _spend(self, budget: Budget, principal: str | None, address: str | None) -> None:
        keys = [
            (kind, item, f"{budget}:{kind}:{value}")
            for kind, value in (("principal", principal), ("address", address))
            if value and (item := self._items.get((budget, kind))) is not None
        ]
        for kind, item, key in keys:
            if not self._limiter.test(item, key):
                self.refused[(budget, kind)] += 1
                raise RateLimited(budget, f"{item} per {kind}", self._retry_after(item, key))
        for _, item, key in keys:
            self._limiter.hit(item, key)

    def _check(self, budget: Budget, address: str | None) -> None:
        item = self._items.get((budget, "address"))
        if item is None or address is None:
            return
        key = f"{budget}:address:{address}"
        if not self._limiter.test(item, key):
            self.refused[(budget, "address")] += 1
            raise RateLimited(budget, f"{item} per address", self._retry_after(item, key))

    def statistics(self) -> dict[tuple[Budget, str], int]:
        """Refused calls by (budget, ``principal`` or ``address``)."""
        return dict(self.refused)
