"""The SLA sweep: log every open clock that crossed into at-risk or breached since the previous sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.jobs.runtime import Runtime
from certmon.store import db

log = structlog.get_logger("certmon.jobs")


async def sweep(runtime: Runtime, since: datetime, now: datetime) -> bool:
    """Log the crossings of (since, now]; False when the database could not be read (the window is kept)."""
    try:
        async with db.connection(runtime.pool, runtime.settings.db_timeout_seconds) as conn:
            rows = await conn.fetch(runtime.queries["sla_open_crossings"], since, now)
    except DatabaseUnavailable as exc:
        log.warning("sla sweep skipped", error=exc.detail)
        return False
    for row in rows:
        log.warning(
            "incident sla " + row["state"].replace("_", " "),
            incident=row["id"],
            agency=row["agency_code"],
            severity=row["severity"],
            state=row["state"],
        )
    log.info("sla sweep", crossed=len(rows), since=since.isoformat())
    return True


def install_sweep(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """Every CERTMON_SWEEP_SECONDS, starting now, each run covering the time since the last successful one."""
    interval = runtime.settings.sweep_seconds
    last = {"at": runtime.clock() - timedelta(seconds=interval)}

    async def job() -> None:
        now = runtime.clock()
        if await sweep(runtime, last["at"], now):
            last["at"] = now

    scheduler.add_job(
        job,
        "interval",
        seconds=interval,
        id="sla-sweep",
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now(),
    )
