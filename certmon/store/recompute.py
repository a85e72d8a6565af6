"""The recompute of clocks stored under another policy: in batches, each its own transaction, behind the answers.

Replicas that start together under a new policy recompute side by side: each batch locks its rows and skips those
another holds (FOR UPDATE SKIP LOCKED), so no incident waits on another replica and none is written from a read
that another transaction changed meanwhile. A pass that skipped rows is followed by another, until none is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable

import asyncpg
import structlog

from certmon.core.clocks import Clocks
from certmon.core.errors import DatabaseUnavailable
from certmon.core.policy import Policy
from certmon.core.recompute import (
    FAILURE_PAUSE_SECONDS,
    PASS_PAUSE_SECONDS,
    Progress,
    RecomputeStatus,
    recount_every,
)
from certmon.store import incidents
from certmon.store.db import Queries

log = structlog.get_logger("certmon.recompute")

Connect = Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]


class Recompute:
    """Brings every stored clock in line with ``policy``, ``batch`` incidents at a time, on connections ``connect``
    hands out (one per batch, so that requests are not kept waiting for the pool)."""

    def __init__(
        self,
        connect: Connect,
        q: Queries,
        policy: Policy,
        batch: int,
        *,
        pass_pause: float = PASS_PAUSE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.q = q
        self.policy = policy
        self.batch = batch
        self.pass_pause = pass_pause
        self.monotonic = monotonic
        self.status = RecomputeStatus()
        self.count_seconds = 0.0  # what the last count took
        self._task: asyncio.Task[None] | None = None

    @property
    def fingerprint(self) -> str:
        return Clocks.of(self.policy).fingerprint

    async def count(self) -> int:
        """Count the stale incidents into the status: an index probe when there are none."""
        started = self.monotonic()
        async with self.connect() as conn:
            self.status.remaining = await incidents.stale_count(conn, self.q, self.fingerprint)
        self.count_seconds = self.monotonic() - started
        return self.status.remaining

    async def run(self) -> int:
        """Recompute until no incident is stale; returns how many this process recomputed."""
        started = self.monotonic()
        if not await self.count():
            return 0
        log.info("clock recompute started", incidents=self.status.remaining, batch=self.batch)
        progress = Progress(started)
        recount = Progress(started, recount_every(self.count_seconds))
        done, cursor = 0, incidents.FIRST_STALE
        while True:
            async with self.connect() as conn:
                count, after = await incidents.recompute_batch(conn, self.q, self.policy, cursor, self.batch)
            done += count
            self.status.batch_done(count)
            if after is None:
                if not await self.count():
                    break
                # Rows another writer held during this pass (another replica's batch), or written under the old
                # policy since it began (a replica not restarted yet): another pass, once that writer is done.
                await asyncio.sleep(self.pass_pause)
                after = incidents.FIRST_STALE
            cursor = after
            if progress.due(self.monotonic()):
                if recount.due(self.monotonic()):
                    await self.count()  # what the other replicas did counts too
                    recount.every = recount_every(self.count_seconds)
                log.info("clock recompute progress", done=done, remaining=self.status.remaining)
        seconds = round(self.monotonic() - started, 1)
        log.info("clock recompute finished", incidents=done, seconds=seconds)
        return done

    def start(self) -> None:
        """Recompute in the background, unless this process does already; a failure is logged and tried again."""
        if self._task is None or self._task.done():
            # In a context of its own: started from a request or a job, it is neither, and logs as neither.
            self._task = asyncio.create_task(self._background(), name="clock-recompute", context=contextvars.Context())

    async def wait(self) -> None:
        """Until the background recompute, if any, is over."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """End the background recompute: the batch in progress rolls back, the next start goes on from there."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _background(self) -> None:
        while True:
            try:
                await self.run()
                return
            except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
                # Unreachable, or a batch refused (a statement timeout): the clocks stay stale, and answers keep
                # saying so, until a later try succeeds.
                log.warning("clock recompute interrupted; trying again", error=type(exc).__name__, detail=str(exc))
            except Exception:
                log.exception("clock recompute failed; trying again")
            await asyncio.sleep(FAILURE_PAUSE_SECONDS)
