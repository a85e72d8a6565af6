"""The monthly export job: last month's export on the 1st, restatements of the last year, and a start-up catch-up."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from certmon.core import signing
from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable, Recomputing
from certmon.core.export_content import ExportResult
from certmon.core.recompute import RETRY_AFTER_SECONDS
from certmon.jobs.runtime import Runtime
from certmon.store import exports

log = structlog.get_logger("certmon.exports")
JOB_ID = "monthly-export"


async def run(runtime: Runtime, now: datetime) -> tuple[list[ExportResult], datetime | None] | None:
    """Export and restate what is due at now, writing new revisions to CERTMON_EXPORT_DIR.

    The work runs in the exports' worker, so the service answers meanwhile (the start-up catch-up of a year of
    big months included). Returns the results and when to run again: when a month not ready yet becomes ready, or,
    while clocks are being recomputed under a new policy, once they may be done (nothing is signed meanwhile).
    None when the database was unavailable.
    """
    settings = runtime.settings
    recompute = runtime.recompute
    if recompute.status.remaining:
        return _wait_for_recompute(recompute.status.remaining)
    # Created here if missing, once, so that the worker only ever reads it.
    await asyncio.to_thread(signing.load_or_create_key, settings.effective_signing_key_path)
    worker = exports.worker_of(settings, runtime.policy, runtime.database_url)
    try:
        results, retry_at, written = await exports.off_loop(
            runtime.exporter, exports.due_in_worker, worker, now, "scheduler"
        )
    except DatabaseUnavailable as exc:
        log.warning("monthly export skipped", error=exc.detail)
        return None
    except Recomputing as exc:
        recompute.start()  # stale clocks this process had not counted: written by a replica on the previous policy
        return _wait_for_recompute(exc.remaining)
    log.info(
        "monthly export run",
        created=[f"{r.month}/r{r.revision}" for r in results if r.created],
        checked=len(results),
        written=written,
        retry_at=None if retry_at is None else retry_at.isoformat(),
    )
    return results, retry_at


def _wait_for_recompute(remaining: int) -> tuple[list[ExportResult], datetime]:
    # A retry on the scheduler's clock, which is the machine's (see Runtime.clock).
    retry_at = utc_now() + timedelta(seconds=RETRY_AFTER_SECONDS)
    log.info("monthly export waits for the clock recompute", remaining=remaining, retry_at=retry_at.isoformat())
    return [], retry_at


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
