"""The composition root: the one place that hands the snapshot its parts and the scheduler its jobs.

Nothing below this module knows which parts or jobs exist; adding one means writing it in its layer and
listing it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from certmon.core.clock import Clock, utc_now
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.jobs import audit_seal, forget, monthly_exports, rollup_fold, scheduler, snapshot, sweep
from certmon.jobs.runtime import JobInstaller, Runtime
from certmon.telemetry import parts
from certmon.telemetry.snapshot import NamedPart, Snapshot, gauges
from certmon.web import appkeys
from certmon.web.app import create_app


def snapshot_parts() -> tuple[NamedPart, ...]:
    """Every part of the metrics snapshot, by the name its failures are counted under."""
    return (
        ("sla", gauges(parts.sla_families)),
        ("surveys", gauges(parts.survey_families)),
        ("exports", gauges(parts.export_families)),
        ("sla_history", parts.sla_history),
    )


def job_installers() -> tuple[JobInstaller, ...]:
    return (
        sweep.install_sweep,
        snapshot.install_refresh,
        monthly_exports.install_exports,
        forget.install_forget,
        audit_seal.install_seal,
        rollup_fold.install_fold,
    )


def runtime_of(app: web.Application, clock: Clock = utc_now) -> Runtime:
    """What the jobs are handed of a started app: its settings, policy, ingest mapping, queries, pool, snapshot and
    recompute."""
    return Runtime(
        settings=app[appkeys.SETTINGS],
        policy=app[appkeys.POLICY],
        ingest_mapping=app[appkeys.INGEST_MAPPING],
        queries=app[appkeys.QUERIES],
        pool=app[appkeys.POOL],
        snapshot=app[appkeys.METRICS].snapshot,
        database_url=app[appkeys.DATABASE_URL],
        exporter=app[appkeys.EXPORTER],
        recompute=app[appkeys.RECOMPUTE],
        clock=clock,
    )


def jobs_context(clock: Clock) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not app[appkeys.SETTINGS].scheduler_enabled:
            yield
            return
        async with scheduler.running(runtime_of(app, clock), job_installers()) as running:
            app[appkeys.SCHEDULER] = running
            yield

    return ctx


def build_app(
    settings: Settings,
    *,
    policy: Policy | None = None,
    database_url: str | None = None,
    clock: Clock = utc_now,
) -> web.Application:
    """The whole service: the HTTP app with its snapshot parts, and its scheduled jobs once the database is up."""
    snapshot = Snapshot(snapshot_parts())
    app = create_app(settings, policy=policy, database_url=database_url, snapshot=snapshot, clock=clock)
    app.cleanup_ctx.append(jobs_context(clock))
    return app
