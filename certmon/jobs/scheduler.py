"""The scheduler (apscheduler 3, in the event loop, Bangkok time) running the jobs it is handed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.audit import Actor
from certmon.jobs.runtime import JobInstaller, Runtime
from certmon.store.db import RUNNING_AS


class AuditedExecutor(AsyncIOExecutor):  # type: ignore[misc]  # apscheduler is untyped
    """Runs each job as ``system:<job id>``: the job's task inherits the actor, so its writes are recorded as its own.

    This is the one place every job starts, including those added while running (a retry of the monthly export).
    """

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        token = RUNNING_AS.set(Actor(f"system:{job.id}", "system"))
        try:
            super()._do_submit_job(job, run_times)
        finally:
            RUNNING_AS.reset(token)


@contextlib.asynccontextmanager
async def running(runtime: Runtime, installers: Sequence[JobInstaller]) -> AsyncIterator[AsyncIOScheduler]:
    """A started scheduler with every installer's jobs; shut down on leaving, without waiting for running jobs."""
    scheduler = AsyncIOScheduler(timezone=runtime.policy.tz, executors={"default": AuditedExecutor()})
    for install in installers:
        install(runtime, scheduler)
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
