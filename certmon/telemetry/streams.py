"""The metrics of ``certmon consume``: its own registry, served on its own port, beside the ingest counters.

A consumer holds no snapshot of database figures: those are the service's, and a second copy here would only
double what Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from certmon import __version__
from certmon.telemetry.conventions import (
    BUILD_INFO,
    INCIDENTS_INGESTED,
    INCIDENTS_REJECTED,
    OTHER_KIND,
    REQUEST_BUCKETS,
    STREAM_ACK_PENDING,
    STREAM_BATCH_SECONDS,
    STREAM_KINDS,
    STREAM_LABELS,
    STREAM_MESSAGES,
    STREAM_MESSAGES_LABELS,
    STREAM_OUTCOMES,
    STREAM_PENDING,
)


class StreamMetrics:
    def __init__(self, stream: str, consumer: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        build = Gauge(BUILD_INFO, "certmon version running; always 1", ["version"], registry=self.registry)
        build.labels(version=__version__).set(1)
        self.ingested = Counter(INCIDENTS_INGESTED, "incidents stored, by source", ["source"], registry=self.registry)
        self.rejected = Counter(
            INCIDENTS_REJECTED,
            "incident records refused, by source and reason",
            ["source", "reason"],
            registry=self.registry,
        )
        self.messages = Counter(
            STREAM_MESSAGES,
            "stream messages handled, by kind and outcome",
            list(STREAM_MESSAGES_LABELS),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            STREAM_BATCH_SECONDS,
            "time to store one fetched batch and acknowledge it",
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        labels = dict(zip(STREAM_LABELS, (stream, consumer), strict=True))
        self.pending = Gauge(
            STREAM_PENDING,
            "messages in the stream not yet delivered to the consumer: its lag",
            list(STREAM_LABELS),
            registry=self.registry,
        ).labels(**labels)
        self.ack_pending = Gauge(
            STREAM_ACK_PENDING,
            "messages delivered to some replica of the consumer and not yet acknowledged",
            list(STREAM_LABELS),
            registry=self.registry,
        ).labels(**labels)
        for kind in STREAM_KINDS:
            for outcome in STREAM_OUTCOMES:
                self.messages.labels(kind=kind, outcome=outcome)

    def count(self, kind: str, outcome: str, amount: int = 1) -> None:
        """Messages of a kind; a subject no source has counts as ``other``, so that the label stays bounded."""
        if amount:
            self.messages.labels(kind=kind if kind in STREAM_KINDS else OTHER_KIND, outcome=outcome).inc(amount)

    def count_imported(self, source: str, created: int, unmatched: int, rejected: Mapping[str, int]) -> None:
        """As the service counts an import: its incidents, alerts matching no agency, records refused by reason."""
        if created:
            self.ingested.labels(source=source).inc(created)
        if unmatched:
            self.rejected.labels(source=source, reason="unmatched").inc(unmatched)
        for reason, count in rejected.items():
            if count:
                self.rejected.labels(source=source, reason=reason).inc(count)

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
