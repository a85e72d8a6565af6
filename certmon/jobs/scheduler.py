"""The scheduler (apscheduler 3, in the event loop, Bangkok time) running the jobs it is handed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.jobs.runtime import JobInstaller, Runtime


@contextlib.asynccontextmanager
async def running(runtime: Runtime, installers: Sequence[JobInstaller]) -> AsyncIterator[AsyncIOScheduler]:
    """A started scheduler with every installer's jobs; shut down on leaving, without waiting for running jobs."""
    scheduler = AsyncIOScheduler(timezone=runtime.policy.tz)
    for install in installers:
        install(runtime, scheduler)
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
