"""The audit sealer: every CERTMON_AUDIT_SEAL_SECONDS, entries whose writers have ended join the hash chain.

Each round that moves the head logs it (position and hash): a copy of the log outside the database anchors the
chain, so that even a rewrite of the whole chain is found by comparing (``certmon audit verify --expect-head``).
"""

from __future__ import annotations

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import utc_now
from certmon.core.errors import DatabaseUnavailable
from certmon.jobs.runtime import Runtime
from certmon.store import audit, db

log = structlog.get_logger("certmon.audit")
JOB_ID = "audit-seal"


async def seal(runtime: Runtime) -> audit.Sealed | None:
    """One sealing round; None when the database was unavailable or another replica was sealing."""
    try:
        async with db.connection(runtime.pool, runtime.settings.db_timeout_seconds) as conn:
            sealed = await audit.seal(conn, runtime.queries)
    except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
        log.warning("audit entries not sealed", error=getattr(exc, "detail", type(exc).__name__))
        return None
    if sealed is not None and sealed.count and sealed.head is not None:
        log.info("audit chain sealed", entries=sealed.count, head=f"{sealed.head.seq}:{sealed.head.hash}")
    return sealed


def install_seal(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """Every CERTMON_AUDIT_SEAL_SECONDS, starting now."""

    async def job() -> None:
        await seal(runtime)

    scheduler.add_job(
        job,
        "interval",
        seconds=runtime.settings.audit_seal_seconds,
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now(),
    )
