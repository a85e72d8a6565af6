"""The metrics of ``certmon consume``: its own registry, served on its own port, beside the ingest counters.

A consumer holds no snapshot of database figures: those are the service's, and a second copy here would only
double what Prometheus scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from certmon.telemetry.conventions import (
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
from certmon.telemetry.registry import ProcessMetrics


class StreamMetrics(ProcessMetrics):
    def __init__(self, stream: str, consumer: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
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

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
