"""Serving the application: aiohttp's server, with a deadline on request headers, until SIGINT or SIGTERM.

aiohttp bounds only an idle connection (its keep-alive timeout, which a client resets by finishing a request) and
nothing between the first byte of a request and the end of its headers. Here each connection's handler gets a
deadline for a request's line and headers: from the connection's start, and for each later request on it from
that request's first byte. A client still sending headers at the deadline is answered 408 and disconnected.
Built on aiohttp 3.13's RequestHandler and Server (``_request_in_progress``, ``_request_count``, ``_kwargs``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

KEEPALIVE_SECONDS = 75.0  # what aiohttp's run_app gives an idle keep-alive connection
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HeaderDeadlineHandler(RequestHandler):
    """aiohttp's connection handler, closing a connection whose request headers are not in within ``seconds``."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = False  # whether a request's head has begun arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        between_requests = not self._request_in_progress and not self._messages
        if data and between_requests and self._header_deadline is None:
            self._arm()  # the first byte of a further request on a kept-alive connection
        if data:
            self._head_bytes = True
        count = self._request_count
        super().data_received(data)
        if self._request_count > count:  # a request's head is whole; its body has a deadline of its own
            self._disarm()

    def _arm(self) -> None:
        self._head_bytes = False
        self._header_deadline = self._loop.call_later(self._header_timeout, self._header_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_late(self) -> None:
        self._header_deadline = None
        if self._request_in_progress or self._messages or self.transport is None:
            return
        if self._head_bytes:
            self.transport.write(REQUEST_TIMEOUT)
        self.force_close()


class HeaderDeadlineServer(web.Server):
    def __init__(self, server: web.Server, header_timeout: float) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return HeaderDeadlineHandler(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


class Runner(web.AppRunner):
    """aiohttp's application runner, serving through connection handlers with a header deadline."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        return HeaderDeadlineServer(await super()._make_server(), self._header_timeout)


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    header_timeout: float,
    shutdown_grace: float,
    print: Callable[[str], None] = lambda text: None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve in-process until SIGINT or SIGTERM (or ``stop``), then shut down within about ``shutdown_grace`` seconds.

    ``certmon serve`` binds its sockets first and serves through the same Runner (cli/service.py).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = Runner(
        app,
        header_timeout=header_timeout,
        shutdown_timeout=shutdown_grace,
        keepalive_timeout=KEEPALIVE_SECONDS,
        access_log=None,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
