"""Request bodies arrive in bounded time, and none holds up shutdown.

A body must be whole within CERTMON_BODY_TIMEOUT_SECONDS of its headers; a streamed one (the ingest endpoints,
of any size) must not pause longer than that. Past it the read fails and the answer is 408. When shutdown starts,
bodies still arriving are cut at once and answered 503 with Retry-After, so the shutdown grace is spent on requests
that can finish, not on a slow upload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from certmon.core.errors import DatabaseUnavailable, RequestTimeout
from certmon.web import appkeys

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyCut(asyncio.TimeoutError):
    """Set on a body stream that is cut; a TimeoutError, which aiohttp's discarding of an unread body expects."""


class BodyWatch:
    """The deadline of one request's body: whole by a deadline, or, once streamed, never paused past it."""

    def __init__(self, request: web.Request, seconds: float) -> None:
        self.request = request
        self.seconds = seconds
        self.streamed = False
        self.reason: str | None = None  # why the body was cut: "timeout" or "shutdown"
        self._seen = request.content.total_bytes
        self._timer = asyncio.get_running_loop().call_later(seconds, self._check)

    def _check(self) -> None:
        content = self.request.content
        if content.is_eof():
            return
        if self.streamed and content.total_bytes > self._seen:
            self._seen = content.total_bytes
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._check)
            return
        self.cut("timeout")

    def cut(self, reason: str) -> None:
        if self.reason is None and not self.request.content.is_eof():
            self.reason = reason
            self.request.content.set_exception(BodyCut(reason))

    def stop(self) -> None:
        self._timer.cancel()


WATCH = web.RequestKey("body_watch", BodyWatch)


def streamed(request: web.Request) -> None:
    """Mark the request's body as streamed: it may take any time, but may not pause past the body timeout."""
    watch = request.get(WATCH)
    if watch is not None:
        watch.streamed = True


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.can_read_body or request.content.is_eof():
        return await handler(request)
    app = request.app
    watch = BodyWatch(request, app[appkeys.SETTINGS].body_timeout_seconds)
    request[WATCH] = watch
    watches = app[appkeys.BODY_WATCHES]
    watches.add(watch)
    try:
        response = await handler(request)
    except Exception:
        if watch.reason is None:
            raise
        response = None
    finally:
        watch.stop()
        watches.discard(watch)
    if watch.reason is None and response is not None:
        return response
    # Whatever the handler made of a body it could not read, the answer says why it could not.
    if watch.reason == "shutdown":
        raise DatabaseUnavailable("the service is shutting down; send the request again")
    raise RequestTimeout(f"the body did not arrive within {watch.seconds:g} seconds")


async def cut_bodies_on_shutdown(app: web.Application) -> None:
    watches: set[BodyWatch] = app[appkeys.BODY_WATCHES]
    for watch in list(watches):
        watch.cut("shutdown")
