"""What a job is handed: the service's settings, policy, ingest mapping, queries, pool and snapshot, and its clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import Clock, utc_now
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import IngestMapping
from certmon.store.db import Queries
from certmon.telemetry.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    policy: Policy
    ingest_mapping: IngestMapping  # the app's, loaded and checked at start; jobs never read the file again
    queries: Queries
    pool: asyncpg.Pool
    snapshot: Snapshot
    # The instant a job's work is done as of; jobs read it here and nowhere else, so that a test runs them at an
    # instant of its choice. When a job fires is the scheduler's business, on the machine's own clock (scheduled_now).
    clock: Clock = field(default=utc_now)


def scheduled_now() -> datetime:
    """The scheduler's present, for a job that is to run right away: apscheduler compares it with the wall clock."""
    return datetime.now(UTC)


JobInstaller = Callable[[Runtime, AsyncIOScheduler], None]
