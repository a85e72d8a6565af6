"""The rollups' fold: every CERTMON_ROLLUP_FOLD_SECONDS, the deltas writers appended join the month and all-time
rollups, so that reading a period adds few deltas. Readers add the deltas themselves: figures never wait for it."""

from __future__ import annotations

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.jobs.runtime import Runtime
from certmon.store import db, rollups

log = structlog.get_logger("certmon.rollups")
JOB_ID = "rollup-fold"


async def fold(runtime: Runtime) -> int | None:
    """One fold; how many deltas it folded, or None when the database was unavailable."""
    try:
        async with db.connection(runtime.pool, runtime.settings.db_timeout_seconds) as conn:
            return await rollups.compact(conn, runtime.queries)
    except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
        log.warning("rollups not folded", error=getattr(exc, "detail", type(exc).__name__))
        return None


def install_fold(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """Every CERTMON_ROLLUP_FOLD_SECONDS, starting now."""

    async def job() -> None:
        await fold(runtime)

    scheduler.add_job(
        job,
        "interval",
        seconds=runtime.settings.rollup_fold_seconds,
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now(),
    )
