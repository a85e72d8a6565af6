"""Monthly exports run away from the event loop: the service answers while one is known to be in progress."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

import asyncpg
import psutil
import pytest

from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.store import db, exports
from certmon.wiring import build_app
from tests.conftest import Api
from tests.test_exports import AFTER_AUGUST, add_agencies, add_incident, bkk


async def seed_august(database_url: str, count: int = 40) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await add_agencies(conn)
        q, policy = db.Queries.load(), Policy()
        for n in range(count):
            await add_incident(conn, q, policy, bkk(2021, 8, 1 + n % 28, n % 24, 0), 20 + n % 60)
    finally:
        await conn.close()


async def export_waiting_on_lock(watcher: asyncpg.Connection) -> None:
    """Until an export's own connection (not a pooled one) waits for the export lock that the test holds."""
    for _ in range(1200):
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'"
            " AND datname = current_database()",
            exports.APPLICATION_NAME,
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no export connection ever waited for the export lock")


def worker_processes() -> set[int]:
    return {
        p.pid for p in psutil.Process(os.getpid()).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
    }


@pytest.mark.timeout(600)  # a worker process is started, and renders report.pdf, on a machine that may be busy
async def test_service_answers_while_an_export_is_in_progress_in_its_own_process(
    make_api: Any, database_url: str
) -> None:
    """While a month's export is held mid-way, /healthz and the export listing answer; the export then completes."""
    await seed_august(database_url)
    api: Api = await make_api(parse_workers=1, clock=lambda: AFTER_AUGUST)
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", exports.LOCK_ID)
        before = worker_processes()
        export = asyncio.ensure_future(api.call("POST", "/api/v1/exports", json={"month": "2021-08"}))
        await export_waiting_on_lock(holder)
        assert worker_processes() - before, "the export runs in a worker process of its own"
        status, body = await api.call("GET", "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        status, body = await api.call("GET", "/api/v1/exports", "auditor")
        assert (status, body["items"]) == (200, [])
        assert not export.done()
        await holder.execute("SELECT pg_advisory_unlock($1)", exports.LOCK_ID)
        status, body = await export
        assert (status, body["month"], body["revision"], body["created"]) == (201, "2021-08", 1, True)
    finally:
        await holder.close()


@pytest.mark.timeout(600)
async def test_start_up_catch_up_runs_in_the_background_and_the_service_is_ready_meanwhile(
    aiohttp_client: Any, database_url: str, settings: Settings
) -> None:
    """With the catch-up of August held mid-way, the started service answers /readyz; the export lands after."""
    await seed_august(database_url)
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", exports.LOCK_ID)
        app = build_app(
            replace(settings, scheduler_enabled=True), database_url=database_url, clock=lambda: AFTER_AUGUST
        )
        client = await aiohttp_client(app)
        await export_waiting_on_lock(holder)
        for path, answer in (("/readyz", {"status": "ready"}), ("/healthz", {"status": "ok"})):
            async with client.get(path) as response:
                assert (response.status, await response.json()) == (200, answer)
        assert await holder.fetchval("SELECT count(*) FROM exports") == 0
        await holder.execute("SELECT pg_advisory_unlock($1)", exports.LOCK_ID)
        for _ in range(600):
            if await holder.fetchval("SELECT count(*) FROM exports"):
                break
            await asyncio.sleep(0.1)
        assert [tuple(r) for r in await holder.fetch("SELECT month, revision FROM exports")] == [("2021-08", 1)]
    finally:
        await holder.close()
