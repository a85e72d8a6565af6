"""Scrape latency of /metrics with the demo's 250 agencies and ~10,000 incidents, against an empty registry.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python tests/benchmarks/metrics.py

A scratch database is filled by the demo loader (250 agencies, incidents over the previous and the current fiscal
year); certmon runs on a local TCP port with its scheduler off; one refresh builds the snapshot, then the database
pool is closed, so every scrape that succeeds proves it did no database work. Scrapes are serial, as Prometheus
makes them, with Prometheus's Accept header (OpenMetrics) and without one (text format). The raw limit is the same
HTTP round trip to a route rendering an empty CollectorRegistry, measured in the same run. Target: p99 < 25 ms.
Without CERTMON_TEST_DATABASE_URL an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from scratch import scratch_database

from certmon.cli import logs
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.jobs import snapshot as snapshot_job
from certmon.store import db, demo, migrations
from certmon.web import appkeys
from certmon.wiring import build_app, runtime_of

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TARGET_P99_MS = 25.0


async def fill(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        stored = await demo.load(conn, db.Queries.load(), load_policy(None), datetime.now(UTC))
        return stored
    finally:
        await conn.close()


async def timed(scrapes: dict[str, Callable[[], Awaitable[int]]], count: int) -> dict[str, tuple[list[float], int]]:
    """Round-robin over the variants, so that noise from the rest of the machine hits each one alike."""
    for scrape in scrapes.values():
        for _ in range(20):  # warm connections and caches
            await scrape()
    results: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in scrapes}
    for _ in range(count):
        for name, scrape in scrapes.items():
            started = time.perf_counter()
            size = await scrape()
            results[name][0].append((time.perf_counter() - started) * 1000)
            results[name] = (results[name][0], size)
    return results


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]


async def main(count: int) -> int:
    logs.configure("json", "warning")
    async with scratch_database() as url:
        started = time.perf_counter()
        incidents = await fill(url)
        print(f"demo data: {incidents} incidents of 250 agencies loaded in {time.perf_counter() - started:.1f} s")
        # Public, so that the figures are the rendering's, comparable with the empty registry's and the static body's.
        settings = Settings(scheduler_enabled=False, log_level="warning", log_format="json", metrics_public=True)
        app = build_app(settings, database_url=url)
        empty = CollectorRegistry()

        async def empty_registry(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(empty), content_type="text/plain")

        async def static(request: web.Request) -> web.Response:
            return web.Response(body=prebuilt["body"], content_type="text/plain")

        prebuilt = {"body": b""}
        app.router.add_get("/empty", empty_registry)
        app.router.add_get("/static", static)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            started = time.perf_counter()
            now = datetime.now(UTC)
            assert await snapshot_job.refresh(runtime_of(app, lambda: now), now)
            refresh_ms = (time.perf_counter() - started) * 1000
            snap = app[appkeys.METRICS].snapshot
            prebuilt["body"] = snap.text  # the transfer alone, without rendering the per-process metrics
            await app[appkeys.POOL].close()  # from here on, a scrape touching the database would fail

            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:

                def scraper(path: str, accept: str = "") -> Callable[[], Awaitable[int]]:
                    async def scrape() -> int:
                        async with session.get(path, headers={"Accept": accept} if accept else {}) as response:
                            assert response.status == 200, response.status
                            return len(await response.read())

                    return scrape

                variants = {
                    "empty registry (raw limit)": scraper("/empty"),
                    "same bytes, pre-built": scraper("/static"),
                    "/metrics OpenMetrics": scraper("/metrics", PROMETHEUS_ACCEPT),
                    "/metrics text 0.0.4": scraper("/metrics"),
                }
                results = await timed(variants, count)
        finally:
            await runner.cleanup()
    print(f"snapshot: {snap.samples} samples, refresh (queries + rendering) {refresh_ms:.0f} ms")
    print(f"{count} serial scrapes of each variant, interleaved; database pool closed during the scrapes")
    base_p50, base_p99 = summary(results["empty registry (raw limit)"][0])
    print(f"{'':<28} {'bytes':>9} {'p50 ms':>8} {'p99 ms':>8} {'p50 x raw':>10} {'p99 x raw':>10}")
    worst = 0.0
    for name, (times, size) in results.items():
        p50, p99 = summary(times)
        print(f"{name:<28} {size:>9} {p50:>8.2f} {p99:>8.2f} {p50 / base_p50:>10.1f} {p99 / base_p99:>10.1f}")
        worst = max(worst, p99)
    verdict = "meets" if worst < TARGET_P99_MS else "MISSES"
    print(f"worst p99 {worst:.2f} ms {verdict} the {TARGET_P99_MS:.0f} ms target")
    return 0 if worst < TARGET_P99_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=500, help="scrapes per variant (default 500)")
    sys.exit(asyncio.run(main(parser.parse_args().scrapes)))
