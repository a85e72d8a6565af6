"""``GET /metrics``: the registry rendered at each scrape, followed by the pre-rendered snapshot."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from certmon.telemetry.registry import Metrics
from certmon.telemetry.snapshot import PRERENDERED
from certmon.web import appkeys


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
