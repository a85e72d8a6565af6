"""The middlewares, outermost first: one log line and metric per request, problem bodies, authentication."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from certmon.core.access import METRICS_READERS, Principal
from certmon.core.ack_links import ACK_PREFIX
from certmon.core.errors import CertmonError, DatabaseUnavailable, TooManyRequests, Unauthorized
from certmon.core.ratelimit import address_key, client_address
from certmon.store import db
from certmon.web import appkeys
from certmon.web.api import PUBLIC_PATHS
from certmon.web.api.common import json_response

log = structlog.get_logger("certmon")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str, **extra: object) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = json_response(body, status=status)
    response.content_type = "application/problem+json"
    return response


def loggable_path(request: web.Request) -> str:
    """The path as logs may keep it: an acknowledgement link's path is its credential, so it is cut off."""
    return ACK_PREFIX + "{token}" if request.path.startswith(ACK_PREFIX) else request.path


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line and one metric observation per request, whatever happened inside."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[appkeys.REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    # Bound here and cleared below, so that every line a handler logs names its request and caller, and none of
    # it leaks into whatever runs next in this context.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
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
        request.app[appkeys.METRICS].observe_request(request.method, route, status, duration)
        if route not in ("/metrics", "/healthz", "/readyz"):
            log.info(
                "request",
                method=request.method,
                route=route,
                path=loggable_path(request),
                status=status,
                duration_ms=round(duration * 1000, 2),
                request_id=request_id,
                token=None if caller is None else caller.name,
            )
        structlog.contextvars.clear_contextvars()


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where failures become HTTP answers: JSON problem bodies, never a stack trace."""
    try:
        return await handler(request)
    except DatabaseUnavailable as exc:
        return _unavailable(request, exc.detail)
    except CertmonError as exc:  # a rate limit, a recompute in progress: come back after retry_after seconds
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason)
    except db.OUTAGE_ERRORS as exc:
        return _unavailable(request, f"database unavailable: {type(exc).__name__}")
    except Exception:
        log.exception("unhandled error", path=loggable_path(request), request_id=request.get(appkeys.REQUEST_ID))
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


def _unavailable(request: web.Request, detail: str) -> web.Response:
    retry_after = request.app[appkeys.SETTINGS].retry_after_seconds
    response = problem(503, "Service unavailable", detail)
    response.headers["Retry-After"] = str(retry_after)
    return response


METRICS_PATH = "/metrics"


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The caller behind the bearer token of an API request or a scrape of /metrics, within the rate limits."""
    path = request.path
    if path == METRICS_PATH:
        if request.app[appkeys.SETTINGS].metrics_public:
            return await handler(request)
    elif not path.startswith("/api/v1/") or path in PUBLIC_PATHS:
        return await handler(request)
    caller = await _caller(request)
    request[appkeys.PRINCIPAL] = caller
    structlog.contextvars.bind_contextvars(token=caller.name)
    if path == METRICS_PATH:
        caller.require(*METRICS_READERS)
    per_token = request.app[appkeys.TOKEN_REQUESTS]
    if per_token is not None:
        wait = per_token.spend(caller.name, _seconds(request))
        if wait is not None:
            raise TooManyRequests(f"token {caller.name!r} made more than its requests a minute; slow down", wait)
    return await handler(request)


def _verify_later(app: web.Application, token: str) -> None:
    pending = app[appkeys.BACKGROUND]

    async def verify() -> None:
        timeout = app[appkeys.SETTINGS].db_timeout_seconds
        with contextlib.suppress(DatabaseUnavailable):
            await app[appkeys.TOKENS].resolve(app[appkeys.POOL], app[appkeys.QUERIES], token, timeout, stale_ok=True)

    task = asyncio.get_running_loop().create_task(verify())
    pending.add(task)  # held until done: the loop keeps only weak references to tasks
    task.add_done_callback(pending.discard)


def _seconds(request: web.Request) -> float:
    """The app clock's reading in seconds, which the rate limits count in."""
    return request.app[appkeys.CLOCK]().timestamp()


async def _caller(request: web.Request) -> Principal:
    """The token's principal. A token not verified lately costs a lookup, which wrong tokens from one address may
    cost only so often: past the limit that address is answered 429 without a lookup until it may try again."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    app = request.app
    tokens = app[appkeys.TOKENS]
    known = tokens.cached(token)
    if known is not None:
        return known
    if request.path == METRICS_PATH:
        # A scrape never waits on the database: a token verified before is taken now and verified again behind it,
        # so a revoked one is refused from the next scrape on.
        seen = tokens.known(token)
        if seen is not None:
            _verify_later(app, token)
            return seen
    failures = app[appkeys.AUTH_FAILURES]
    trusted = app[appkeys.SETTINGS].trusted_proxies
    address = address_key(client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted))
    # A token never verified costs a unit before its lookup, so that concurrent wrong tokens cannot all pass one
    # check; a good token gives it back. One verified before, or being looked up already, costs none: the limit is
    # for guessing, and a sensor opening many connections at once with its own token must not be refused.
    spends = tokens.known(token) is None and not tokens.in_flight(token)
    if spends:
        wait = failures.spend(address, _seconds(request))
        if wait is not None:
            raise TooManyRequests("too many failed authentications from this address", wait)
    timeout = app[appkeys.SETTINGS].db_timeout_seconds
    # A scrape may pass on a token verified before the database went away: /metrics answers from its snapshot.
    stale_ok = request.path == METRICS_PATH
    try:
        caller = await tokens.resolve(app[appkeys.POOL], app[appkeys.QUERIES], token, timeout, stale_ok=stale_ok)
    except DatabaseUnavailable:
        if spends:
            failures.refund(address, _seconds(request))  # nothing was learnt about the token
        raise
    if caller is None:
        if not spends:  # a token revoked since, or a wrong one that shared a lookup: a failure all the same
            failures.spend(address, _seconds(request))
        raise Unauthorized("unknown or revoked token")
    if spends:
        failures.refund(address, _seconds(request))
    return caller
