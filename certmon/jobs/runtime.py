"""What a job is handed: the service's settings, policy, ingest mapping, queries, pool, snapshot and recompute, and its
clock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.clock import Clock, utc_now
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import IngestMapping
from certmon.store.db import Queries
from certmon.store.recompute import Recompute
from certmon.telemetry.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    policy: Policy
    ingest_mapping: IngestMapping  # the app's, loaded and checked at start; jobs never read the file again
    queries: Queries
    pool: asyncpg.Pool
    snapshot: Snapshot
    database_url: str  # resolved: the exports' worker connects to it
    exporter: Executor | None  # where the monthly exports run; None: a thread
    recompute: Recompute  # clocks stored under another policy: exports wait until they are recomputed
    # The instant a job's work is done as of; jobs read it here and nowhere else, so that a test runs them at an
    # instant of its choice. When a job fires is the scheduler's business: apscheduler compares its run times with
    # the machine's clock, so a job that is to run right away is given utc_now(), whatever this clock says.
    clock: Clock = field(default=utc_now)


JobInstaller = Callable[[Runtime, AsyncIOScheduler], None]
