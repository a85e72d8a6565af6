"""The snapshot refresh job: every CERTMON_METRICS_REFRESH_SECONDS, and once right away at start-up."""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.jobs.runtime import Runtime
from certmon.store import db
from certmon.telemetry.conventions import DATABASE_FAILURE

log = structlog.get_logger("certmon.metrics")


async def refresh(runtime: Runtime, now: datetime) -> bool:
    """Rebuild the snapshot as of now; False (keeping the previous figures) if any part or the database failed."""
    settings, snapshot = runtime.settings, runtime.snapshot
    snapshot.interval_seconds = settings.metrics_refresh_seconds
    started = time.perf_counter()
    try:
        async with db.connection(runtime.pool, settings.db_timeout_seconds) as conn:
            failed = await snapshot.build(conn, runtime.queries, runtime.policy, now)
    except (DatabaseUnavailable, asyncpg.PostgresError) as exc:  # unreachable, or refusing the transaction
        snapshot.failures[DATABASE_FAILURE] += 1
        log.warning("metrics snapshot kept: database unavailable", error=type(exc).__name__)
        return False
    await snapshot.publish()
    snapshot.duration_seconds = time.perf_counter() - started
    if failed:
        return False
    # Freshness is measured on the machine's clock, as the age gauge is: a refresh as of another instant is still new.
    snapshot.last_success = time.time()
    log.info("metrics snapshot refreshed", samples=snapshot.samples, seconds=round(snapshot.duration_seconds, 3))
    return True


def install_refresh(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """Refresh the snapshot every CERTMON_METRICS_REFRESH_SECONDS, and once right away at start-up."""

    async def job() -> None:
        await refresh(runtime, runtime.clock())

    scheduler.add_job(
        job,
        "interval",
        seconds=runtime.settings.metrics_refresh_seconds,
        id="metrics-snapshot",
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now(),
    )
