"""What the benchmarks share: a throw-away database on a real PostgreSQL, and free ports for servers they start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from certmon.store import db


@contextlib.asynccontextmanager
async def database_server() -> AsyncIterator[str]:
    """CERTMON_TEST_DATABASE_URL's server, or an embedded one for the length of the run."""
    configured = os.environ.get("CERTMON_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="certmon-bench-") as directory:
        embedded = db.embedded_server(Path(directory))
        url = await asyncio.to_thread(embedded.__enter__)
        try:
            yield url
        finally:
            await asyncio.to_thread(embedded.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def scratch_database(server: str | None = None) -> AsyncIterator[str]:
    """A new empty database of its own on ``server`` (by default database_server()'s), dropped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        if server is None:
            server = await stack.enter_async_context(database_server())
        name = f"certmon_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


def serve_environment(url: str, port: int, **settings: str) -> dict[str, str]:
    """The environment of a ``certmon serve`` on ``url`` and ``port`` with its jobs off and /metrics open, none of
    the caller's CERTMON_ settings, and ``settings`` (names without the prefix) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env |= {
        "CERTMON_DATABASE_URL": url,
        "CERTMON_PORT": str(port),
        "CERTMON_SCHEDULER": "off",
        "CERTMON_METRICS_PUBLIC": "true",
    }
    return env | {f"CERTMON_{name}": value for name, value in settings.items()}


# The background recompute's progress on a certmon serve's /metrics.
RECOMPUTE_REMAINING = re.compile(r"^certmon_recompute_remaining (\S+)$", re.MULTILINE)


async def until_ready(
    session: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process, limit: float = 120.0
) -> float:
    """Seconds until the certmon serve at ``base`` answers /readyz; an error if it exits or ``limit`` passes."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.returncode is not None:
            raise RuntimeError(f"certmon serve exited with {process.returncode}")
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)
    raise RuntimeError(f"certmon serve did not become ready within {limit:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def timings(runs: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    """Seconds of each of ``runs`` runs of ``work``, one after another."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return times
