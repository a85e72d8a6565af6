"""Prometheus metrics on a registry owned by the application, never the global one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from certmon import __version__
from certmon.core.recompute import RecomputeStatus
from certmon.telemetry.conventions import (
    BUILD_INFO,
    HTTP_REQUEST_LABELS,
    HTTP_REQUEST_SECONDS,
    HTTP_REQUEST_SECONDS_LABELS,
    HTTP_REQUESTS,
    INCIDENTS_INGESTED,
    INCIDENTS_REJECTED,
    KNOWN_SOURCES,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_LABELS,
    NOTIFICATION_OUTCOMES,
    NOTIFICATIONS,
    OTHER_SOURCE,
    RECOMPUTE_REMAINING,
    REJECT_REASONS,
    REQUEST_BUCKETS,
)
from certmon.telemetry.snapshot import Snapshot, SnapshotCollector, SnapshotHealth


class ProcessMetrics:
    """What every certmon process exposes, the service and a stream consumer alike: the process, its version, and
    the incidents it stored or refused."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.build_info = Gauge(BUILD_INFO, "certmon version running; always 1", ["version"], registry=self.registry)
        self.build_info.labels(version=__version__).set(1)
        self.ingested = Counter(INCIDENTS_INGESTED, "incidents stored, by source", ["source"], registry=self.registry)
        self.rejected = Counter(
            INCIDENTS_REJECTED,
            "incident records refused, by source and reason",
            ["source", "reason"],
            registry=self.registry,
        )

    def count_imported(self, source: str, created: int, unmatched: int, rejected: Mapping[str, int]) -> None:
        """An import's incidents, its alerts that matched no agency, and its records refused by reason."""
        if created:
            self.ingested.labels(source=source).inc(created)
        if unmatched:
            self.rejected.labels(source=source, reason="unmatched").inc(unmatched)
        for reason, count in rejected.items():
            if count:
                self.rejected.labels(source=source, reason=reason).inc(count)


class RecomputeGauge:
    """The incidents whose clocks are stored under another policy, as this process last knew at each scrape: it is
    lowered batch by batch, not on the snapshot's schedule."""

    def __init__(self, status: RecomputeStatus) -> None:
        self.status = status

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            RECOMPUTE_REMAINING,
            "incidents whose clocks are stored under another policy than the one in force, being recomputed; 0 "
            "when none",
            value=self.status.remaining,
        )


class Metrics(ProcessMetrics):
    def __init__(
        self,
        snapshot: Snapshot | None = None,
        registry: CollectorRegistry | None = None,
        *,
        recompute: RecomputeStatus | None = None,
    ) -> None:
        super().__init__(registry)
        self.requests = Counter(
            HTTP_REQUESTS, "HTTP requests answered", list(HTTP_REQUEST_LABELS), registry=self.registry
        )
        self.request_seconds = Histogram(
            HTTP_REQUEST_SECONDS,
            "time to answer an HTTP request",
            list(HTTP_REQUEST_SECONDS_LABELS),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.notifications = Counter(
            NOTIFICATIONS,
            "notifications of agencies, by channel and outcome",
            list(NOTIFICATION_LABELS),
            registry=self.registry,
        )
        # Label sets known in advance start at zero, so that rate() sees the first increment.
        for source in ("api", "bulk"):
            self.ingested.labels(source=source)
            for reason in REJECT_REASONS:
                self.rejected.labels(source=source, reason=reason)
        for channel in NOTIFICATION_CHANNELS:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(channel=channel, outcome=outcome)
        # Each request observes both; labels() parses its keywords and takes a lock on every call.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.snapshot = snapshot or Snapshot()
        self.registry.register(SnapshotCollector(self.snapshot))
        self.registry.register(SnapshotHealth(self.snapshot))
        self.registry.register(RecomputeGauge(recompute or RecomputeStatus()))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.request_seconds.labels(method=method, route=route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_notification(self, channel: str, outcome: str) -> None:
        """One notify call's outcome: sent, failed, or duplicate (sent before, or a send in progress)."""
        self.notifications.labels(channel=channel, outcome=outcome).inc()


def source_label(source: str) -> str:
    return source if source in KNOWN_SOURCES else OTHER_SOURCE
