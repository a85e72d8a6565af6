"""The application factory: middlewares, routes, and every resource's paired set-up and teardown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from certmon.core.clock import Clock, utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.core.policy import Policy, load_policy
from certmon.core.ratelimit import RateLimit
from certmon.core.recompute import ACTOR as RECOMPUTE_ACTOR
from certmon.core.settings import Settings
from certmon.core.sources.mapping import load_mapping
from certmon.core.workers import WorkerPool
from certmon.store import bulk, db, migrations, rollups
from certmon.store.db import Queries
from certmon.store.recompute import Recompute
from certmon.store.tokens import TokenCache
from certmon.telemetry.registry import Metrics
from certmon.telemetry.snapshot import Snapshot
from certmon.web import appkeys
from certmon.web.ack import setup_ack_routes
from certmon.web.api import setup_routes
from certmon.web.api.common import json_response
from certmon.web.console import setup_console
from certmon.web.console.sessions import console_pages
from certmon.web.deadlines import body_deadline, cut_bodies_on_shutdown
from certmon.web.metrics import handle_metrics
from certmon.web.middlewares import authenticate, problems, request_context
from certmon.web.pages import setup_pages

log = structlog.get_logger("certmon")
STARTUP_WAIT_SECONDS = 60.0  # how long start-up waits for a database that is not up yet


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    async with db.connection(app[appkeys.POOL], app[appkeys.SETTINGS].db_timeout_seconds) as conn:
        await conn.fetchval("SELECT 1")
    return json_response({"status": "ready"})


async def _prepare_database(app: web.Application, url: str) -> None:
    """Wait for the database and migrate it; clocks stored under another policy are recomputed behind readiness
    (recompute_context)."""
    settings = app[appkeys.SETTINGS]
    deadline = time.monotonic() + STARTUP_WAIT_SECONDS
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=settings.db_timeout_seconds)
        except db.OUTAGE_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for the database", error=type(exc).__name__)
            await asyncio.sleep(1.0)
            continue
        try:
            await migrations.migrate(conn)
            if await rollups.follow_timezone(conn, app[appkeys.QUERIES], app[appkeys.POLICY]):
                log.info("rollups rebuilt in the policy's timezone", timezone=app[appkeys.POLICY].timezone)
        finally:
            await conn.close()
        return


def database_context(url: str | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[appkeys.SETTINGS]
        async with db.database_url(url or settings.database_url, settings.data_dir) as resolved:
            await _prepare_database(app, resolved)
            pool = await db.create_pool(
                resolved, min_size=settings.pool_min, max_size=settings.pool_max, timeout=settings.db_timeout_seconds
            )
            app[appkeys.POOL] = pool
            app[appkeys.DATABASE_URL] = resolved
            try:
                yield
            finally:
                await pool.close()

    return ctx


async def recompute_context(app: web.Application) -> AsyncIterator[None]:
    """After a policy change, the stored clocks are recomputed in the background while the service answers.

    Start-up counts the stale incidents (an index probe when there are none, as at every other start), so that the
    first answers already say their figures are being recomputed; it never waits for the recompute itself.
    """
    recompute = app[appkeys.RECOMPUTE]
    try:
        stale = await recompute.count()
    except DatabaseUnavailable:
        stale = 1  # not known yet: the background recompute counts once the database is back
    if stale:
        recompute.start()
    try:
        yield
    finally:
        await recompute.stop()


async def parser_context(app: web.Application) -> AsyncIterator[None]:
    """Worker processes for bulk validation, started (and warmed) once, shut down with the app."""
    workers = app[appkeys.SETTINGS].parse_workers
    if workers == 0:
        app[appkeys.PARSER] = None
        yield
        return
    executor = WorkerPool(workers)
    # One warm-up task per worker, submitted at once from the loop's (main) thread: every worker starts now,
    # from the thread whose end is the process's end (see WorkerPool), and is ready before the first request.
    loop = asyncio.get_running_loop()
    policy = app[appkeys.POLICY]
    try:
        await asyncio.gather(
            *(
                loop.run_in_executor(executor, bulk.parse_chunk, policy, frozenset(), "warm-up", b"", 1)
                for _ in range(workers)
            )
        )
        app[appkeys.PARSER] = executor
        yield
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


async def exporter_context(app: web.Application) -> AsyncIterator[None]:
    """The process monthly exports run in, away from the event loop; none with CERTMON_PARSE_WORKERS=0.

    A fresh process for each export (started when one is asked for): a big month's tables take hundreds of
    megabytes, given back to the system when the export ends.
    """
    if app[appkeys.SETTINGS].parse_workers == 0:
        app[appkeys.EXPORTER] = None
        yield
        return
    executor = WorkerPool(1, max_tasks_per_child=1)
    app[appkeys.EXPORTER] = executor
    try:
        yield
    finally:
        # A running export is ended, not waited for (a big month takes minutes): its transaction rolls back, so
        # nothing of it is stored, and the next start's catch-up exports the month again. Before Python 3.14
        # (terminate_workers) the executor offers no public way to end its worker.
        for process in list(executor._processes.values()):
            process.terminate()
        await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


async def http_client_context(app: web.Application) -> AsyncIterator[None]:
    """One client session for the app's outgoing requests; each request sets its own timeout."""
    async with aiohttp.ClientSession() as session:
        app[appkeys.HTTP_CLIENT] = session
        yield


def create_app(
    settings: Settings,
    *,
    policy: Policy | None = None,
    database_url: str | None = None,
    snapshot: Snapshot | None = None,
    clock: Clock = utc_now,
) -> web.Application:
    """The HTTP service; its database, parse workers and (from the composition root) jobs start with it.

    A policy or ingest mapping that cannot be used raises here (PolicyError, MappingError), before anything starts.
    """
    # Innermost, the console's: sessions, form tokens and errors as pages, for the console's own routes only.
    middlewares = [request_context, problems, body_deadline, authenticate, console_pages]
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024**2)
    app[appkeys.SETTINGS] = settings
    app[appkeys.CLOCK] = clock
    app[appkeys.POLICY] = policy or load_policy(settings.policy_path)
    mapping = load_mapping(settings.ingest_mapping)
    mapping.check(app[appkeys.POLICY])
    app[appkeys.INGEST_MAPPING] = mapping
    app[appkeys.QUERIES] = Queries.load()
    app[appkeys.TOKENS] = TokenCache(settings.token_cache_seconds)
    app[appkeys.AUTH_FAILURES] = RateLimit(settings.auth_failures_per_minute)
    per_token = settings.token_requests_per_minute
    app[appkeys.TOKEN_REQUESTS] = RateLimit(per_token) if per_token else None
    app[appkeys.RECOMPUTE] = Recompute(  # on the pool, once database_context has made it
        lambda: db.connection(app[appkeys.POOL], settings.db_timeout_seconds, RECOMPUTE_ACTOR),
        app[appkeys.QUERIES],
        app[appkeys.POLICY],
        settings.recompute_batch,
    )
    app[appkeys.METRICS] = Metrics(snapshot, recompute=app[appkeys.RECOMPUTE].status)
    app[appkeys.BODY_WATCHES] = set()
    app[appkeys.BACKGROUND] = set()
    app.on_shutdown.append(cut_bodies_on_shutdown)
    app[appkeys.BULK_SLOTS] = asyncio.Semaphore(max(1, settings.pool_max // 2))
    app.cleanup_ctx.append(database_context(database_url))
    app.cleanup_ctx.append(recompute_context)
    app.cleanup_ctx.append(parser_context)
    app.cleanup_ctx.append(exporter_context)
    app.cleanup_ctx.append(http_client_context)
    setup_pages(app, app[appkeys.POLICY].tz)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", handle_metrics)
    setup_routes(app)
    setup_ack_routes(app)
    setup_console(app)
    return app
