"""Scheduled jobs (apscheduler 3, in the event loop, Bangkok time)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon import appkeys, db, exports, snapshot
from certmon.errors import DatabaseUnavailable
from certmon.sources import eve, grouping, wazuh
from certmon.sources.mapping import load_mapping

log = structlog.get_logger("certmon.jobs")
JobInstaller = Callable[[web.Application, AsyncIOScheduler], None]


def install_sweep(app: web.Application, scheduler: AsyncIOScheduler) -> None:
    """Log every open clock that crossed into at-risk or breached since the previous sweep."""
    settings = app[appkeys.SETTINGS]
    last = {"at": datetime.now(UTC) - timedelta(seconds=settings.sweep_seconds)}

    async def sweep() -> None:
        now = datetime.now(UTC)
        try:
            async with db.connection(app[appkeys.POOL], settings.db_timeout_seconds) as conn:
                rows = await conn.fetch(app[appkeys.QUERIES]["sla_open_crossings"], last["at"], now)
        except DatabaseUnavailable as exc:
            log.warning("sla sweep skipped", error=exc.detail)
            return
        for row in rows:
            log.warning(
                "incident sla " + row["state"].replace("_", " "),
                incident=row["id"],
                agency=row["agency_code"],
                severity=row["severity"],
                state=row["state"],
            )
        log.info("sla sweep", crossed=len(rows), since=last["at"].isoformat())
        last["at"] = now

    scheduler.add_job(
        sweep,
        "interval",
        seconds=settings.sweep_seconds,
        id="sla-sweep",
        coalesce=True,
        max_instances=1,
        next_run_time=datetime.now(UTC),
    )


SOURCES = (eve.SOURCE, wazuh.SOURCE)  # the sources whose alerts are imported through grouping.Pipeline


def install_forget(app: web.Application, scheduler: AsyncIOScheduler) -> None:
    """Every night, forget the keys and unmatched alerts older than the ingest mapping's ``remember_days``."""
    settings = app[appkeys.SETTINGS]
    remember = load_mapping(settings.ingest_mapping).remember
    if remember is None:
        return

    async def forget() -> None:
        try:
            async with db.connection(app[appkeys.POOL], settings.db_timeout_seconds) as conn:
                keys, unmatched = await grouping.forget_keys(
                    conn, app[appkeys.QUERIES], SOURCES, remember, datetime.now(UTC)
                )
        except DatabaseUnavailable as exc:
            log.warning("imported alerts not forgotten", error=exc.detail)
            return
        log.info("imported alerts forgotten", keys=keys, unmatched=unmatched, remember_days=remember.days)

    scheduler.add_job(forget, "cron", hour=3, minute=30, id="ingest-forget", coalesce=True, max_instances=1)


INSTALLERS: list[JobInstaller] = [
    install_sweep,
    snapshot.install_refresh,
    exports.install_exports,
    install_forget,
]


async def context(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    if not settings.scheduler_enabled:
        yield
        return
    scheduler = AsyncIOScheduler(timezone=app[appkeys.POLICY].tz)
    for install in INSTALLERS:
        install(app, scheduler)
    scheduler.start()
    app[appkeys.SCHEDULER] = scheduler
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
