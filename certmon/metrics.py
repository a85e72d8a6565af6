"""Prometheus metrics on a registry owned by the application, never the global one."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from certmon import __version__, appkeys
from certmon.snapshot import PRERENDERED, Snapshot, SnapshotCollector, SnapshotHealth

# Request latency buckets in seconds: the API answers in milliseconds; a second is already an incident.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.build_info = Gauge(
            "certmon_build_info", "certmon version running; always 1", ["version"], registry=self.registry
        )
        self.build_info.labels(version=__version__).set(1)
        self.requests = Counter(
            "certmon_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "certmon_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.ingested = Counter(
            "certmon_incidents_ingested", "incidents stored, by source", ["source"], registry=self.registry
        )
        self.rejected = Counter(
            "certmon_incidents_rejected",
            "incident records refused, by source and reason",
            ["source", "reason"],
            registry=self.registry,
        )
        # Label sets known in advance start at zero, so that rate() sees the first increment.
        for source in ("api", "bulk"):
            self.ingested.labels(source=source)
            for reason in ("invalid", "conflict"):
                self.rejected.labels(source=source, reason=reason)
        self.snapshot = Snapshot()
        self.registry.register(SnapshotCollector(self.snapshot))
        self.registry.register(SnapshotHealth(self.snapshot))


# Incidents' `source` is free text from the sender; labels stay bounded by folding unknown ones into "other".
KNOWN_SOURCES = frozenset({"api", "bulk", "demo", "alertmanager", "suricata", "wazuh", "csv"})


def source_label(source: str) -> str:
    return source if source in KNOWN_SOURCES else "other"


def render(metrics: Metrics, accept: str) -> tuple[bytes, str]:
    """The exposition the Accept header asks for: the registry rendered now, plus the pre-rendered snapshot."""
    encoder, content_type = choose_encoder(accept)
    token = PRERENDERED.set(True)
    try:
        live = encoder(metrics.registry)
    finally:
        PRERENDERED.reset(token)
    snapshot = metrics.snapshot
    if content_type.startswith("application/openmetrics-text"):
        return live.removesuffix(b"# EOF\n") + snapshot.openmetrics + b"# EOF\n", content_type
    return live + snapshot.text, content_type


async def handle_metrics(request: web.Request) -> web.Response:
    body, content_type = render(request.app[appkeys.METRICS], request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})
