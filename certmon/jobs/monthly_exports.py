"""The monthly export job: last month's export on the 1st, restatements of the last year, and a start-up catch-up."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from certmon.core import signing
from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.core.export_content import ExportResult, write_directory
from certmon.core.settings import Settings
from certmon.jobs.runtime import Runtime
from certmon.store import db
from certmon.store.exports import run_due, stored_files

log = structlog.get_logger("certmon.exports")
JOB_ID = "monthly-export"


async def run(runtime: Runtime, now: datetime) -> tuple[list[ExportResult], datetime | None] | None:
    """Export and restate what is due at now, writing new revisions to CERTMON_EXPORT_DIR.

    Returns the results and when a month not ready yet becomes ready; None when the database was unavailable.
    """
    settings = runtime.settings
    key = await asyncio.to_thread(signing.load_or_create_key, settings.effective_signing_key_path)
    try:
        async with db.connection(runtime.pool, settings.db_timeout_seconds) as conn:
            results, retry_at = await run_due(
                conn, runtime.queries, runtime.policy, key, now, "scheduler", lang=settings.report_lang
            )
            written = await _write_new(conn, runtime.queries, settings, results)
    except DatabaseUnavailable as exc:
        log.warning("monthly export skipped", error=exc.detail)
        return None
    log.info(
        "monthly export run",
        created=[f"{r.month}/r{r.revision}" for r in results if r.created],
        checked=len(results),
        written=written,
        retry_at=None if retry_at is None else retry_at.isoformat(),
    )
    return results, retry_at


def install_exports(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """Last month's export on the 1st at CERTMON_EXPORT_HOUR Bangkok time, and a catch-up run at start-up."""

    async def job() -> None:
        done = await run(runtime, runtime.clock())
        if done is not None and done[1] is not None:
            scheduler.add_job(job, "date", run_date=done[1], id=f"{JOB_ID}-retry", replace_existing=True)

    scheduler.add_job(
        job,
        CronTrigger(day=1, hour=runtime.settings.export_hour, minute=0, timezone=runtime.policy.tz),
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(job, "date", id=f"{JOB_ID}-catch-up", run_date=utc_now(), misfire_grace_time=None)


async def _write_new(
    conn: asyncpg.Connection, q: db.Queries, settings: Settings, results: list[ExportResult]
) -> list[str]:
    if settings.export_dir is None:
        return []
    written = []
    for result in results:
        if result.created:
            files = await stored_files(conn, q, result.month, result.revision)
            path = write_directory(settings.export_dir, result.month, result.revision, files)
            written.append(str(path))
    return written
