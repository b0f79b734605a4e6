"""Counters of a CoreLink, in the shapes the metrics layer exposes."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from types import MappingProxyType

import attrs

__all__ = ["LATENCY_BUCKETS", "CoreLinkStatistics", "RequestCounters"]

#: Upper bounds (seconds) of the request latency histogram; +Inf is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@attrs.frozen
class CoreLinkStatistics:
    """A CoreLink's counters.

    ``requests`` maps (method, outcome) to a count; outcome is "ok", "qrc_error", "timeout",
    "transport_error" or "unavailable". ``latency_buckets`` is cumulative (upper bound, count)
    in Prometheus style, the last bound being ``inf``; latencies of answered and timed-out
    requests only.
    """

    core: str
    connected: bool
    breaker: str
    breaker_opened: int
    reconnects: int
    connect_failures: int
    requests: Mapping[tuple[str, str], int]
    latency_buckets: tuple[tuple[float, int], ...]
    latency_sum: float
    latency_count: int
    in_flight: int
    pushes: int
    values_pushed: int
    invalid_frames: int
    discoveries: int
    change_groups: int
    design_mismatch: bool
    #: Seconds since the last AutoPoll push (None before the first); pushes come every poll_rate.
    last_push_age: float | None = None
    #: Seconds until the open breaker lets a probe through (0 when closed or half-open).
    breaker_retry_in: float = 0.0
    #: While down: the longest wait between reconnect attempts now (0 before the first failure).
    retry_every: float = 0.0


class RequestCounters:
    """Requests by method and outcome, and a latency histogram."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def record(self, method: str, outcome: str, latency: float | None = None) -> None:
        key = (method, outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        if latency is not None:
            self._buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
            self.latency_sum += latency
            self.latency_count += 1

    def by_method_outcome(self) -> Mapping[tuple[str, str], int]:
        return MappingProxyType(dict(self._counts))

    def cumulative_buckets(self) -> tuple[tuple[float, int], ...]:
        out = []
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self._buckets, strict=True):
            total += count
            out.append((bound, total))
        return tuple(out)
