"""The application factory: middlewares, routes, and every resource's paired set-up and teardown."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor

import asyncpg
import structlog
from aiohttp import web

from certmon import appkeys, bulk, db, incidents, scheduler
from certmon.api import PUBLIC_PATHS, setup_routes
from certmon.api.common import json_response
from certmon.auth import TokenCache
from certmon.errors import CertmonError, DatabaseUnavailable, Unauthorized
from certmon.metrics import Metrics, handle_metrics
from certmon.policy import Policy, load_policy
from certmon.settings import Settings

log = structlog.get_logger("certmon")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STARTUP_WAIT_SECONDS = 60.0  # how long start-up waits for a database that is not up yet


def problem(status: int, title: str, detail: str, **extra: object) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = json_response(body, status=status)
    response.content_type = "application/problem+json"
    return response


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line and one metric observation per request, whatever happened inside."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[appkeys.REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        duration = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        caller = request.get(appkeys.PRINCIPAL)
        metrics = request.app[appkeys.METRICS]
        metrics.requests.labels(method=request.method, route=route, status=str(status)).inc()
        metrics.request_seconds.labels(method=request.method, route=route).observe(duration)
        if route not in ("/metrics", "/healthz", "/readyz"):
            log.info(
                "request",
                method=request.method,
                route=route,
                path=request.path,
                status=status,
                duration_ms=round(duration * 1000, 2),
                request_id=request_id,
                token=None if caller is None else caller.name,
            )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where failures become HTTP answers: JSON problem bodies, never a stack trace."""
    try:
        return await handler(request)
    except DatabaseUnavailable as exc:
        return _unavailable(request, exc.detail)
    except CertmonError as exc:
        return problem(exc.status, exc.title, exc.detail, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason)
    except db.OUTAGE_ERRORS as exc:
        return _unavailable(request, f"database unavailable: {type(exc).__name__}")
    except Exception:
        log.exception("unhandled error", path=request.path, request_id=request.get(appkeys.REQUEST_ID))
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


def _unavailable(request: web.Request, detail: str) -> web.Response:
    retry_after = request.app[appkeys.SETTINGS].retry_after_seconds
    response = problem(503, "Service unavailable", detail)
    response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/v1/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    app = request.app
    timeout = app[appkeys.SETTINGS].db_timeout_seconds
    caller = await app[appkeys.TOKENS].resolve(app[appkeys.POOL], app[appkeys.QUERIES], token.strip(), timeout)
    if caller is None:
        raise Unauthorized("unknown or revoked token")
    request[appkeys.PRINCIPAL] = caller
    structlog.contextvars.bind_contextvars(token=caller.name)
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    async with db.connection(app[appkeys.POOL], app[appkeys.SETTINGS].db_timeout_seconds) as conn:
        await conn.fetchval("SELECT 1")
    return json_response({"status": "ready"})


async def _prepare_database(app: web.Application, url: str) -> None:
    """Wait for the database, migrate it, and bring stored clocks in line with the policy in force."""
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
            await db.migrate(conn)
            recomputed = await incidents.recompute_stale(conn, app[appkeys.QUERIES], app[appkeys.POLICY])
            if recomputed:
                log.info("clocks recomputed under the policy in force", incidents=recomputed)
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
            try:
                yield
            finally:
                await pool.close()

    return ctx


async def parser_context(app: web.Application) -> AsyncIterator[None]:
    """Worker processes for bulk validation, started (and warmed) once, shut down with the app."""
    workers = app[appkeys.SETTINGS].parse_workers
    if workers == 0:
        app[appkeys.PARSER] = None
        yield
        return
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    await asyncio.get_running_loop().run_in_executor(
        executor, bulk.parse_chunk, app[appkeys.POLICY], frozenset(), "warm-up", b"", 1
    )
    app[appkeys.PARSER] = executor
    try:
        yield
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def create_app(settings: Settings, *, policy: Policy | None = None, database_url: str | None = None) -> web.Application:
    app = web.Application(middlewares=[request_context, problems, authenticate], client_max_size=64 * 1024**2)
    app[appkeys.SETTINGS] = settings
    app[appkeys.POLICY] = policy or load_policy(settings.policy_path)
    app[appkeys.QUERIES] = db.Queries.load()
    app[appkeys.TOKENS] = TokenCache(settings.token_cache_seconds)
    app[appkeys.METRICS] = Metrics()
    app[appkeys.BULK_SLOTS] = asyncio.Semaphore(max(1, settings.pool_max // 2))
    app.cleanup_ctx.append(database_context(database_url))
    app.cleanup_ctx.append(parser_context)
    app.cleanup_ctx.append(scheduler.context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", handle_metrics)
    setup_routes(app)
    return app
