"""``certmon consume`` as a process: the database, the broker, the consumer, and a small HTTP side for Prometheus.

SIGTERM and SIGINT stop it gracefully: no more fetching, the batch in hand stored and acknowledged, then exit. A
process killed outright loses nothing: what it had not acknowledged is delivered again, after the broker's
acknowledgement deadline, to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from concurrent.futures import Executor

import asyncpg
import structlog
from aiohttp import web

from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import IngestMapping
from certmon.core.workers import WorkerPool
from certmon.store import bulk, db, migrations
from certmon.stream.consumer import Consumer
from certmon.stream.jetstream import JetStream
from certmon.stream.storing import Storer
from certmon.telemetry.streams import StreamMetrics

log = structlog.get_logger("certmon.stream")

STARTUP_WAIT_SECONDS = 60.0  # the database may start after the consumer, as in compose
POOL_SIZE = 3  # one batch at a time, its key lookups on a second connection, and the health probe


def actor_of(settings: Settings) -> str:
    """Who the stored rows say wrote them."""
    return f"stream:{settings.nats_consumer}"


async def main(settings: Settings, policy: Policy, mapping: IngestMapping) -> None:
    """The process: SIGTERM or SIGINT stops it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run(settings, policy, mapping, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run(settings: Settings, policy: Policy, mapping: IngestMapping, stop: asyncio.Event) -> None:
    """Consume until ``stop`` is set, then settle the batch in hand and return."""
    metrics = StreamMetrics(settings.nats_stream, settings.nats_consumer)
    async with db.database_url(settings.database_url, settings.data_dir) as url:
        if not await _prepare(url, settings, stop):
            return
        pool = await db.create_pool(url, min_size=1, max_size=POOL_SIZE, timeout=settings.db_timeout_seconds)
        try:
            broker = await JetStream.connect(settings)
            executor = await _parser(settings, policy)
            try:
                storer = Storer(db.Queries.load(), policy, mapping, actor_of(settings), executor)
                consumer = Consumer(
                    broker, pool, storer, metrics, batch=settings.consume_batch, db_timeout=settings.db_timeout_seconds
                )
                runner = await _serve_http(settings, metrics, consumer)
                try:
                    await consumer.run(stop)
                finally:
                    await runner.cleanup()
            finally:
                if executor is not None:
                    executor.shutdown(wait=True, cancel_futures=True)
                await broker.close()
        finally:
            await pool.close()


async def _parser(settings: Settings, policy: Policy) -> Executor | None:
    """Worker processes that validate incidents and compute their clocks, as for bulk bodies (CERTMON_PARSE_WORKERS):
    the consumer then fetches and writes while they work."""
    if settings.parse_workers == 0:
        return None
    executor = WorkerPool(settings.parse_workers)
    # Every worker starts now, from the main thread, so that each dies with this process (see WorkerPool).
    loop = asyncio.get_running_loop()
    warm_up = (
        loop.run_in_executor(executor, bulk.parse_chunk, policy, frozenset(), "warm-up", b"", 1)
        for _ in range(settings.parse_workers)
    )
    await asyncio.gather(*warm_up)
    return executor


async def _prepare(url: str, settings: Settings, stop: asyncio.Event) -> bool:
    """Wait for the database and migrate it: the consumer may be the first of certmon's processes to start.

    False when asked to stop meanwhile.
    """
    deadline = time.monotonic() + STARTUP_WAIT_SECONDS
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(url, timeout=settings.db_timeout_seconds)
        except db.OUTAGE_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for the database", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        return True
    return False


async def _serve_http(settings: Settings, metrics: StreamMetrics, consumer: Consumer) -> web.AppRunner:
    async def handle_metrics(request: web.Request) -> web.Response:
        body, content_type = metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        status = {"database": consumer.database_up, "broker": consumer.broker_up}
        return web.json_response(
            {"status": "ok" if consumer.healthy else "unavailable", **status}, status=200 if consumer.healthy else 503
        )

    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.consume_port).start()
    log.info("metrics and health served", host=settings.host, port=settings.consume_port)
    return runner
