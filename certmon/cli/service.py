"""Running a long-lived command: listen before anything else, stop on SIGINT or SIGTERM, exit quietly.

``serve`` and ``demo`` run through ``run_app``; any other long-running command awaits ``stop_on_signals()``'s
request and returns its ``exit_code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Awaitable, Iterator

import structlog
from aiohttp import web

from certmon.cli import INTERRUPTED
from certmon.web import serving

log = structlog.get_logger("certmon")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CannotListen(Exception):
    """The listening address is taken, refused or unknown; raised before the service touches anything."""


class StopRequest:
    """Which signal asked the command to stop, if one did."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = asyncio.Event()

    def request(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            log.info("stopping", signal=signal.Signals(signum).name)
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C (SIGINT), as shells expect of an interrupted command; 0 for SIGTERM's orderly stop."""
        return INTERRUPTED if self.signum == signal.SIGINT else 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the running loop, SIGINT and SIGTERM no longer raise: they set the request that is yielded."""
    loop = asyncio.get_running_loop()
    stop = StopRequest()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.request, signum)
    try:
        yield stop
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound listening sockets for ``host:port``, bound as aiohttp would bind them, or CannotListen.

    Binding comes first, before the database, migrations, tokens or jobs: a second instance on a busy port
    stops here, having changed nothing. Holding the sockets from here on also leaves no moment in which another
    program could take the port.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {shown}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(f"cannot listen on {shown}: the address is already in use") from None
        raise CannotListen(f"cannot listen on {shown}: {exc.strerror or exc}") from None
    return sockets


def run_app(
    app: web.Application, sockets: list[socket.socket], *, header_timeout: float, shutdown_timeout: float
) -> int:
    """Start the app, serve on ``sockets`` until SIGINT or SIGTERM, drain and clean up; the exit code."""
    return asyncio.run(_serve(app, sockets, header_timeout, shutdown_timeout))


async def _serve(
    app: web.Application, sockets: list[socket.socket], header_timeout: float, shutdown_timeout: float
) -> int:
    runner = serving.Runner(
        app,
        header_timeout=header_timeout,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=serving.KEEPALIVE_SECONDS,
        access_log=None,
    )
    with stop_on_signals() as stop:
        try:
            if await _unless_stopped(stop, runner.setup()):
                for sock in sockets:
                    await web.SockSite(runner, sock).start()
                log.info("listening", on=", ".join(sorted(site.name for site in runner.sites)))
                await stop.wait()
        finally:
            # Also after a start-up cut short: what had started (database, workers) is cleaned up in order.
            await runner.cleanup()
            for sock in sockets:
                sock.close()
    return stop.exit_code


async def _unless_stopped(stop: StopRequest, work: Awaitable[None]) -> bool:
    """Await ``work``; a stop requested meanwhile cancels it and gives False."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
