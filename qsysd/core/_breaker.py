"""A circuit breaker on trio's clock, so MockClock drives it in tests."""

from __future__ import annotations

import enum
from collections.abc import Callable

import trio

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """closed -> open after ``failure_threshold`` consecutive failures -> half-open after
    ``cool_down`` seconds (one probe at a time) -> closed on a success, open again on a failure.

    Only failures that say the Core is unreachable count (transport errors, timeouts); a QRC
    error reply is an answer, so it counts as a success.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down: float = 10.0,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cool_down:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cool_down - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In half-open, True for one probe until it is recorded."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        was_probing = self._probing
        self._probing = False
        if was_probing or (self._opened_at is None and self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
            self.times_opened += 1
        elif self._opened_at is not None and self.state is BreakerState.HALF_OPEN:
            self._opened_at = self._clock()  # a failure that was let through while half-open

    def record_abandoned(self) -> None:
        """A call that :meth:`allow` let through ended without an outcome (cancelled)."""
        self._probing = False
