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


async def handle_metrics(request: web.Request) -> web.Response:
    registry = request.app[appkeys.METRICS].registry
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(registry)
    return web.Response(body=body, headers={"Content-Type": content_type})
