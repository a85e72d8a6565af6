"""The nightly forget jobs: imported alerts' keys and unmatched alerts older than the ingest mapping's
``remember_days``, and Idempotency-Key answers older than ``CERTMON_IDEMPOTENCY_KEY_HOURS``."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.errors import DatabaseUnavailable
from certmon.core.sources import eve, wazuh
from certmon.jobs.runtime import Runtime
from certmon.store import db, grouping, idempotency_keys

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


async def forget_idempotency_keys(runtime: Runtime, now: datetime) -> int | None:
    """Forget the answers stored under Idempotency-Keys longer ago than the retention; how many, None on an outage."""
    retention = timedelta(hours=runtime.settings.idempotency_key_hours)
    try:
        async with db.connection(runtime.pool, runtime.settings.db_timeout_seconds) as conn:
            count = await idempotency_keys.forget(conn, runtime.queries, now, retention)
    except DatabaseUnavailable as exc:
        log.warning("idempotency keys not forgotten", error=exc.detail)
        return None
    log.info("idempotency keys forgotten", keys=count, retention_hours=runtime.settings.idempotency_key_hours)
    return count


def install_forget(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """At 03:30 Bangkok time: the Idempotency-Keys always, imported alerts when the mapping sets ``remember_days``."""

    async def keys_job() -> None:
        await forget_idempotency_keys(runtime, runtime.clock())

    scheduler.add_job(keys_job, "cron", hour=3, minute=30, id="idempotency-forget", coalesce=True, max_instances=1)
    if runtime.ingest_mapping.remember is None:
        return

    async def job() -> None:
        await forget(runtime, runtime.clock())

    scheduler.add_job(job, "cron", hour=3, minute=30, id="ingest-forget", coalesce=True, max_instances=1)
