"""Prometheus metrics: read from the statistics() of every long-lived object at scrape time.

Nothing on a hot path touches prometheus-client: the call path, the Core links, the store and
the journal keep plain counters, and this collector turns them into metric families when
``/metrics`` is scraped. Names are ``qsysd_<subsystem>_<what>_<unit>``; labels are bounded
(door, tool, outcome, Core, QRC method), never a control name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from qsysd import __version__
from qsysd.access import CallPath
from qsysd.core import CoreLink
from qsysd.plugins import Registry
from qsysd.state import Journal, SnapshotTask, StateStore

__all__ = ["CONTENT_TYPE", "HttpStatistics", "MetricsSources", "render_metrics"]

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

BREAKER_STATES = ("closed", "open", "half-open")


@attrs.frozen
class MetricsSources:
    """What the metrics are read from; each is optional so a partial daemon still exports."""

    calls: CallPath
    links: Mapping[str, CoreLink]
    store: StateStore
    registry: Registry
    journal: Journal | None = None
    snapshots: SnapshotTask | None = None
    http: Callable[[], HttpStatistics] | None = None


@attrs.frozen
class HttpStatistics:
    """The HTTP front end's own counts: requests refused before any route, by status."""

    refused: Mapping[int, int]
    event_streams: int
    events_published: int


def _histogram(
    name: str, doc: str, labels: list[str], rows: list[tuple[list[str], Any]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, stats in rows:
        buckets = [(_bound(b), float(c)) for b, c in stats.latency_buckets]
        family.add_metric(values, buckets, stats.latency_sum)
    return family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class _Collector(Collector):
    def __init__(self, sources: MetricsSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        info = GaugeMetricFamily("qsysd_build_info", "qsysd's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        calls = s.calls.statistics()
        requests = CounterMetricFamily(
            "qsysd_requests",
            "Tool calls by door, tool and outcome",
            labels=["door", "tool", "outcome"],
        )
        for door in calls:
            for (tool, outcome), count in sorted(door.calls.items()):
                requests.add_metric([door.door, tool, outcome], count)
        yield requests
        limited = CounterMetricFamily(
            "qsysd_rate_limited",
            "Calls refused by a rate limit, by budget and by what was limited",
            labels=["budget", "key"],
        )
        for (budget, key), count in sorted(s.calls.limits.statistics().items()):
            limited.add_metric([budget, key], count)
        yield limited
        yield _histogram(
            "qsysd_request_duration_seconds",
            "Tool call latency by door",
            ["door"],
            [([d.door], d) for d in calls],
        )

        connected = GaugeMetricFamily(
            "qsysd_core_connected", "1 while the Core's link is serving", labels=["core"]
        )
        synced = GaugeMetricFamily(
            "qsysd_core_synced",
            "1 while the Core is connected and its values are current (what /ready checks)",
            labels=["core"],
        )
        breaker = GaugeMetricFamily(
            "qsysd_core_breaker_state",
            "1 for the breaker's current state",
            labels=["core", "state"],
        )
        openings = CounterMetricFamily(
            "qsysd_core_breaker_openings", "Times the breaker opened", labels=["core"]
        )
        reconnects = CounterMetricFamily(
            "qsysd_core_reconnects", "Connections made after the first", labels=["core"]
        )
        failures = CounterMetricFamily(
            "qsysd_core_connect_failures", "Failed connection attempts", labels=["core"]
        )
        core_requests = CounterMetricFamily(
            "qsysd_core_requests",
            "QRC requests by method and outcome",
            labels=["core", "method", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "qsysd_core_requests_in_flight", "QRC requests awaiting an answer", labels=["core"]
        )
        pushes = CounterMetricFamily(
            "qsysd_core_pushes", "AutoPoll pushes received", labels=["core"]
        )
        values = CounterMetricFamily(
            "qsysd_core_values_pushed", "Control values received in pushes", labels=["core"]
        )
        push_age = GaugeMetricFamily(
            "qsysd_core_last_push_age_seconds",
            "Seconds since the last AutoPoll push (AutoPoll lag plus the poll rate)",
            labels=["core"],
        )
        invalid = CounterMetricFamily(
            "qsysd_core_invalid_frames", "Invalid frames and replies from the Core", labels=["core"]
        )
        link_stats = [link.statistics() for link in s.links.values()]
        ready = True
        for st in link_stats:
            c = [st.core]
            connected.add_metric(c, 1 if st.connected else 0)
            is_synced = st.connected and not s.store.is_stale(st.core)
            synced.add_metric(c, int(is_synced))
            ready = ready and is_synced
            for state in BREAKER_STATES:
                breaker.add_metric([st.core, state], 1 if st.breaker == state else 0)
            openings.add_metric(c, st.breaker_opened)
            reconnects.add_metric(c, st.reconnects)
            failures.add_metric(c, st.connect_failures)
            for (method, outcome), count in sorted(st.requests.items()):
                core_requests.add_metric([st.core, method, outcome], count)
            in_flight.add_metric(c, st.in_flight)
            pushes.add_metric(c, st.pushes)
            values.add_metric(c, st.values_pushed)
            if st.last_push_age is not None:
                push_age.add_metric(c, st.last_push_age)
            invalid.add_metric(c, st.invalid_frames)
        yield from (connected, synced, breaker, openings, reconnects, failures, core_requests)
        # /ready's answer less its "stopping" part: a stopping daemon is gone a moment later.
        yield GaugeMetricFamily(
            "qsysd_ready",
            "1 when every configured Core is synced, as /ready requires",
            value=int(ready),
        )
        yield _histogram(
            "qsysd_core_request_seconds",
            "QRC request latency",
            ["core"],
            [([st.core], st) for st in link_stats],
        )
        yield from (in_flight, pushes, values, push_age, invalid)

        held = s.store.statistics()
        yield GaugeMetricFamily("qsysd_state_controls", "Controls held", value=held.controls)
        yield GaugeMetricFamily("qsysd_state_components", "Components held", value=held.components)
        yield GaugeMetricFamily(
            "qsysd_state_stale_cores", "Cores whose values may be out of date",
            value=held.stale_cores,
        )  # fmt: skip
        yield CounterMetricFamily(
            "qsysd_state_changes", "Value changes applied", value=held.changes_applied
        )
        yield GaugeMetricFamily("qsysd_state_watchers", "Open watchers", value=held.watchers)

        if s.snapshots is not None:
            snap = s.snapshots.statistics()
            yield CounterMetricFamily("qsysd_snapshot_saves", "Snapshots saved", value=snap.saves)
            yield CounterMetricFamily(
                "qsysd_snapshot_failures", "Snapshot saves that failed", value=snap.failures
            )
            if snap.last_saved_at is not None:
                yield GaugeMetricFamily(
                    "qsysd_snapshot_age_seconds",
                    "Seconds since the last saved snapshot",
                    value=max(0.0, time.time() - snap.last_saved_at),
                )
        if s.journal is not None:
            j = s.journal.statistics()
            yield GaugeMetricFamily("qsysd_journal_rows", "Rows in the journal", value=j.rows)
            yield GaugeMetricFamily(
                "qsysd_journal_pending", "Rows waiting to be flushed", value=j.pending
            )
            yield CounterMetricFamily(
                "qsysd_journal_flush_failures", "Journal flushes that failed", value=j.failures
            )
            yield CounterMetricFamily(
                "qsysd_journal_dropped", "Journal rows dropped (queue full)", value=j.dropped
            )
            yield GaugeMetricFamily(
                "qsysd_journal_persistent", "1 when the journal is on disk", value=int(j.persistent)
            )
        reg = s.registry.statistics()
        yield GaugeMetricFamily("qsysd_plugins_loaded", "Plugins loaded", value=reg["plugins"])
        yield GaugeMetricFamily("qsysd_tools", "Tools in the catalogue", value=reg["tools"])
        yield GaugeMetricFamily(
            "qsysd_plugin_load_errors", "Plugins skipped", value=reg["load_errors"]
        )
        if s.http is not None:
            http = s.http()
            refused = CounterMetricFamily(
                "qsysd_http_refused",
                "HTTP requests refused before reaching a route, by status",
                labels=["status"],
            )
            for status, count in sorted(http.refused.items()):
                refused.add_metric([str(status)], count)
            yield refused
            yield GaugeMetricFamily(
                "qsysd_http_event_streams", "Open /api/v1/events streams", value=http.event_streams
            )
            yield CounterMetricFamily(
                "qsysd_events_published", "Events numbered for /api/v1/events",
                value=http.events_published,
            )  # fmt: skip


def build_registry(sources: MetricsSources) -> CollectorRegistry:
    """A private registry with qsysd's collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(sources))
    ProcessCollector(namespace="qsysd", registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
