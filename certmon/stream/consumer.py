"""The consuming loop, for any broker: fetch a batch, store it in one transaction, then acknowledge it.

A message is acknowledged only after the transaction that stored it committed. A message that can never be
stored is dead-lettered with its reason. When the database is unreachable the whole batch is handed back with a
delay and the loop waits before fetching again: such a message is retried as long as it takes, never dead-lettered.
Asked to stop, the loop fetches no more, settles the batch in hand and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import asyncpg
import structlog

from certmon.core.errors import CertmonError, DatabaseUnavailable
from certmon.store import db
from certmon.stream.broker import Broker, Message
from certmon.stream.storing import Stored, Storer
from certmon.telemetry.streams import StreamMetrics

log = structlog.get_logger("certmon.stream")

FETCH_SECONDS = 1.0  # an idle fetch waits this long, so a stop is noticed within it
RETRY_SECONDS = 5.0  # after an outage: messages come back after this, and the loop fetches again after it
LAG_SECONDS = 5.0  # how often the consumer's lag is read from the broker
# The database is gone: nothing can be stored, whatever the message.
TRANSIENT: tuple[type[BaseException], ...] = (DatabaseUnavailable, *db.OUTAGE_ERRORS)
# Another writer got in the way (a deadlock, a key written concurrently): the same batch again gets through.
# The database refuses the message itself: it can never be stored as it is.
REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    CertmonError,
    ValueError,
)
RACES: tuple[type[BaseException], ...] = (asyncpg.TransactionRollbackError, asyncpg.UniqueViolationError)


class Consumer:
    def __init__(
        self,
        broker: Broker,
        pool: asyncpg.Pool,
        storer: Storer,
        metrics: StreamMetrics,
        *,
        batch: int,
        db_timeout: float = 5.0,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.broker, self.pool, self.storer, self.metrics = broker, pool, storer, metrics
        self.batch, self.db_timeout, self.retry_seconds = batch, db_timeout, retry_seconds
        self.database_up = True
        self.broker_up = True

    @property
    def healthy(self) -> bool:
        return self.database_up and self.broker_up

    async def run(self, stop: asyncio.Event) -> None:
        lag = asyncio.ensure_future(self._watch_lag(stop))
        # The next batch is fetched while the one in hand is stored: the broker's client and the database then
        # work at the same time rather than in turn.
        ahead: asyncio.Future[Sequence[Message]] | None = None
        try:
            while ahead is not None or not stop.is_set():
                messages = await (ahead or self._fetch(stop))
                ahead = None
                if not messages:
                    continue
                if not stop.is_set():
                    ahead = asyncio.ensure_future(self._fetch(stop))
                started = time.perf_counter()
                try:
                    await self.handle(messages, stop)
                except Exception as exc:  # settling failed: what was not acknowledged comes back after ack_wait
                    self.broker_up = False
                    log.warning("acknowledging failed", error=f"{type(exc).__name__}: {exc}")
                self.metrics.batch_seconds.observe(time.perf_counter() - started)
        finally:
            for task in (lag, ahead):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        log.info("consumer stopped")

    async def _fetch(self, stop: asyncio.Event) -> Sequence[Message]:
        try:
            messages = await self.broker.fetch(self.batch, FETCH_SECONDS)
        except Exception as exc:  # the broker is reconnecting: try again shortly
            self.broker_up = False
            log.warning("fetch failed", error=f"{type(exc).__name__}: {exc}")
            await _wait(stop, 1.0)
            return []
        self.broker_up = True
        return messages

    async def handle(self, messages: Sequence[Message], stop: asyncio.Event) -> None:
        """Store, then settle, one fetched batch: acknowledged, dead-lettered, or handed back."""
        try:
            stored = await self._store(messages)
        except TRANSIENT as exc:
            await self._hand_back(messages, exc, stop)
            return
        except Exception:
            log.exception("a batch failed; storing its messages one by one")
            await self._one_by_one(messages, stop)
            return
        self.database_up = True
        await self._settle(messages, stored)

    async def _store(self, messages: Sequence[Message]) -> Stored:
        async with (
            db.connection(self.pool, self.db_timeout) as conn,
            db.connection(self.pool, self.db_timeout) as lookup,
        ):
            try:
                return await self.storer.store(conn, lookup, messages)
            except RACES as exc:
                log.info("batch met a concurrent writer; storing it again", error=type(exc).__name__)
                return await self.storer.store(conn, lookup, messages)

    async def _one_by_one(self, messages: Sequence[Message], stop: asyncio.Event) -> None:
        """Each message alone, so that the one the database refuses is dead-lettered and the others stored."""
        for position, message in enumerate(messages):
            try:
                stored = await self._store([message])
            except TRANSIENT as exc:
                await self._hand_back(messages[position:], exc, stop)
                return
            except REFUSALS as exc:
                log.warning("message refused by the database", key=message.key, error=str(exc))
                stored = Stored(dead={0: f"the database refused it: {type(exc).__name__}: {exc}"})
            except Exception:
                # Not the message's fault that we can tell (a missing table, a privilege): it waits, and the rest
                # of the batch goes on.
                log.exception("message not stored; it comes back later", key=message.key)
                await self.broker.nak([message], self.retry_seconds)
                self.metrics.count(message.kind, "retried")
                continue
            await self._settle([message], stored)

    async def _settle(self, messages: Sequence[Message], stored: Stored) -> None:
        for index, reason in sorted(stored.dead.items()):
            message = messages[index]
            await self.broker.dead_letter(message, reason)
            self.metrics.count(message.kind, "dead_lettered")
            log.warning("message dead-lettered", kind=message.kind, key=message.key, reason=reason[:500])
        done = [m for index, m in enumerate(messages) if index not in stored.dead]
        await self.broker.ack(done)
        for message in done:
            self.metrics.count(message.kind, "stored")
        for source in {*stored.created, *stored.unmatched, *stored.rejected}:
            self.metrics.count_imported(
                source, stored.created[source], stored.unmatched[source], stored.rejected.get(source, {})
            )

    async def _hand_back(self, messages: Sequence[Message], exc: BaseException, stop: asyncio.Event) -> None:
        self.database_up = False
        log.warning(
            "database unavailable; messages handed back",
            messages=len(messages),
            retry_seconds=self.retry_seconds,
            error=f"{type(exc).__name__}: {exc}",
        )
        await self.broker.nak(messages, self.retry_seconds)
        for message in messages:
            self.metrics.count(message.kind, "retried")
        await _wait(stop, self.retry_seconds)

    async def _watch_lag(self, stop: asyncio.Event) -> None:
        """The lag, read from the broker; and whether the database is back, when it was down and nothing came."""
        while not stop.is_set():
            if not self.database_up:
                with contextlib.suppress(*TRANSIENT):
                    async with db.connection(self.pool, self.db_timeout) as conn:
                        await conn.fetchval("SELECT 1")
                    self.database_up = True
            try:
                pending, ack_pending = await self.broker.lag()
            except Exception as exc:
                log.debug("lag unknown", error=f"{type(exc).__name__}: {exc}")
            else:
                self.metrics.pending.set(pending)
                self.metrics.ack_pending.set(ack_pending)
            await _wait(stop, LAG_SECONDS)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
