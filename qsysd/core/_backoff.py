"""Exponential backoff with full jitter, for reconnecting to a Core."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

__all__ = ["Backoff"]


@attrs.define
class Backoff:
    """Delays that grow from ``initial`` to ``maximum``, each drawn uniformly from [0, ceiling].

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the
    reconnects of many daemons after a Core reboots. Call :meth:`note_session` when a
    connection ends: a session that stayed healthy ``healthy_after`` seconds resets the delay.
    """

    # CoreConfig's reconnect_initial / reconnect_max are the defaults a link uses
    initial: float = 0.1
    maximum: float = 2.0
    multiplier: float = 2.0
    healthy_after: float = 10.0
    random: Callable[[], float] = attrs.field(default=random.random, repr=False)
    attempt: int = 0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")

    @property
    def ceiling(self) -> float:
        """The largest delay the next call to :meth:`next_delay` can return."""
        # min() before the power would overflow after ~1000 attempts
        exponent = min(self.attempt, 64)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call raises the ceiling."""
        delay = self.random() * self.ceiling
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

    def note_session(self, duration: float) -> None:
        """A connection ended after ``duration`` seconds; reset if it was healthy that long."""
        if duration >= self.healthy_after:
            self.reset()
