"""``Idempotency-Key`` (IETF httpapi draft): a retry of a POST whose answer was lost gets the first answer again.

A key belongs to the caller's token and the route. The first successful answer given under it is kept for
``CERTMON_IDEMPOTENCY_KEY_HOURS`` and replayed, status and body, to a request with the same key and the same path and
body; the same key with another request is refused (422), and one sent while the first is still being worked on is
told to come back (409 with Retry-After). Refusals are not kept: a request that failed may be retried under its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
from aiohttp import web

from certmon.core.errors import Invalid
from certmon.store import idempotency_keys
from certmon.store.idempotency_keys import Answer, Scope
from certmon.web import appkeys
from certmon.web.api.common import Param, json_response, now, principal

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"  # set on a replayed answer, as Stripe and others name it
MAX_KEY = 255
PARAM = Param(
    HEADER,
    'a key of the client\'s choosing (an sf-string such as "8e03978e-40d5-43e8-bc93-6894a57f9324", 1-255 '
    "printable ASCII characters): a retry with the same key and body gets the first answer again, with "
    f"{REPLAYED}: true",
    where="header",
)
RESPONSES = {
    409: "a request with the same Idempotency-Key is still being processed; retry after Retry-After seconds",
    422: "a field is invalid, or the Idempotency-Key is already used for a different request",
}
Work = Callable[[], Awaitable[web.Response]]


def key_of(request: web.Request) -> str | None:
    """The header's key: an sf-string (quoted, as the draft writes it) or, leniently, the bare characters."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(value) <= MAX_KEY or not all(" " <= c <= "~" for c in value):
        raise Invalid(HEADER, f"must be a string of 1 to {MAX_KEY} printable ASCII characters")
    return value


async def fingerprint(request: web.Request) -> bytes:
    """The request a key stands for: method, path and body (JSON compared by value, not by its spacing)."""
    raw = await request.read()
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except ValueError:
        body = raw
    return hashlib.sha256(f"{request.method} {request.path}\x00".encode() + body).digest()


async def once(request: web.Request, conn: asyncpg.Connection, work: Work, *, atomic: bool = True) -> web.Response:
    """Answer with ``work()``, or with the answer stored under the request's key.

    With ``atomic`` the work runs in the transaction that stores its answer. Without it (a notification, whose send
    spans transactions of its own) the answer is stored right after the work, and a crash between the two leaves the
    key unused: a retry then meets the work's own idempotency (a sent notification is answered, not sent again).
    """
    key = key_of(request)
    if key is None:
        return await work()
    route = request.match_info.route.resource
    scope = Scope(principal(request).name, f"{request.method} {route.canonical if route else request.path}", key)
    digest = await fingerprint(request)
    q = request.app[appkeys.QUERIES]
    async with idempotency_keys.held(conn, q, scope) as taken:
        if not taken:
            return _in_flight(request)
        if not atomic:
            return await _answer(request, conn, scope, digest, work)
        async with conn.transaction():
            return await _answer(request, conn, scope, digest, work)


async def _answer(
    request: web.Request, conn: asyncpg.Connection, scope: Scope, digest: bytes, work: Work
) -> web.Response:
    app = request.app
    q = app[appkeys.QUERIES]
    retention = timedelta(hours=app[appkeys.SETTINGS].idempotency_key_hours)
    earlier = await idempotency_keys.stored(conn, q, scope, now(request), retention)
    if earlier is not None:
        if earlier.request_hash != digest:
            raise Invalid(HEADER, "is already used for a different request; send a new key for a new request")
        replay = web.Response(status=earlier.status, text=earlier.body, content_type=earlier.content_type)
        replay.headers[REPLAYED] = "true"
        return replay
    response = await work()
    if response.status < 400 and isinstance(response.body, bytes):
        answer = Answer(digest, response.status, response.content_type, response.body.decode())
        async with conn.transaction():  # inside the work's own when atomic
            await idempotency_keys.store(conn, q, scope, answer, now(request))
    return response


def _in_flight(request: web.Request) -> web.Response:
    detail = "a request with this Idempotency-Key is still being processed; retry after Retry-After seconds"
    body = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": detail, "field": HEADER}
    retry_after = str(request.app[appkeys.SETTINGS].retry_after_seconds)
    response = json_response(body, status=409, headers={"Retry-After": retry_after})
    response.content_type = "application/problem+json"
    return response
