"""The nightly forget job: keys and unmatched alerts older than the ingest mapping's ``remember_days`` go."""

from __future__ import annotations

from datetime import datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.errors import DatabaseUnavailable
from certmon.core.sources import eve, wazuh
from certmon.jobs.runtime import Runtime
from certmon.store import db, grouping

log = structlog.get_logger("certmon.jobs")
SOURCES = (eve.SOURCE, wazuh.SOURCE)  # the sources whose alerts are imported through grouping.Pipeline


async def forget(runtime: Runtime, now: datetime) -> tuple[int, int] | None:
    """Forget what is older than ``remember_days`` before now: (keys, unmatched alerts), None if not configured."""
    remember = runtime.ingest_mapping.remember
    if remember is None:
        return None
    try:
        async with db.connection(runtime.pool, runtime.settings.db_timeout_seconds) as conn:
            keys, unmatched = await grouping.forget_keys(conn, runtime.queries, SOURCES, remember, now)
    except DatabaseUnavailable as exc:
        log.warning("imported alerts not forgotten", error=exc.detail)
        return None
    log.info("imported alerts forgotten", keys=keys, unmatched=unmatched, remember_days=remember.days)
    return keys, unmatched


def install_forget(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """At 03:30 Bangkok time, when the ingest mapping sets ``remember_days``."""
    if runtime.ingest_mapping.remember is None:
        return

    async def job() -> None:
        await forget(runtime, runtime.clock())

    scheduler.add_job(job, "cron", hour=3, minute=30, id="ingest-forget", coalesce=True, max_instances=1)
