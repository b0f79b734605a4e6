"""Rate limits with the ``limits`` library: per principal and per client address.

Reads and writes have separate budgets (a chatty dashboard never blocks the operator's
writes), and failed authentications have one per client address against token guessing.
The storage is in memory: each qsysd instance keeps its own budgets.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from qsysd.errors import RateLimited

if TYPE_CHECKING:
    from qsysd.config import AuthConfig

__all__ = ["Budget", "RateLimits", "parse_rate"]

Budget = Literal["read", "write", "failed-authentication"]


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
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._clock = clock
        self.refused: Counter[tuple[Budget, str]] = Counter()

    @classmethod
    def from_config(cls, auth: AuthConfig) -> RateLimits:
        return cls(
            read=auth.rate_limit_reads,
            write=auth.rate_limit_writes,
            address_read=auth.rate_limit_address_reads,
            address_write=auth.rate_limit_address_writes,
            failed_authentication=auth.rate_limit_failed_auth,
        )

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        reset = self._limiter.get_window_stats(item, key).reset_time
        return int(reset - self._clock()) + 1

    def spend(self, budget: Budget, *, principal: str | None, address: str | None) -> None:
        """Spend one call of ``budget`` for the principal and for the address, or RateLimited.

        Nothing is spent when either budget is exhausted.
        """
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

    def check(self, budget: Budget, *, address: str | None) -> None:
        """RateLimited if ``address`` has no ``budget`` left (spends nothing)."""
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
