"""From a stream of alerts to incidents: map each to an agency, drop those taken in before, group the rest.

Alerts of one signature and agency whose times fall within a window (30 minutes by default) of the first alert
of a group make one incident, detected at that first alert's time, with an alert count. The grouping state lives
in the database (``alert_groups``), so a group goes on across batches, files and restarts, and a second import of
the same alerts finds every one of them in ``ingested_alerts`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from certmon.core.clocks import Clocks
from certmon.core.models import MAX_CLOCK_SKEW, IncidentIn
from certmon.core.policy import Policy
from certmon.core.sources import Alert, Rejected, Skipped, key_prefix
from certmon.core.sources.records import RecordError, RecordReader
from certmon.store import bulk
from certmon.store.db import Queries, bulk_transaction
from certmon.store.networks import NetworkTable

log = structlog.get_logger("certmon.ingest")

BATCH_ALERTS = 20_000  # alerts per transaction: large enough to amortise round trips, small enough for flat memory
LISTED = 1000  # rejected records and incidents named one by one in a summary; the counts cover all of them
SAMPLES = 10  # unmatched alerts shown in a summary

Convert = Callable[[Any], Alert]


@dataclass(slots=True)
class Outcome:
    source: str
    records: int = 0
    alerts: int = 0
    duplicates: int = 0
    incidents_created: int = 0
    alerts_added: int = 0
    unmatched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected_count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unmatched_samples: list[dict[str, Any]] = field(default_factory=list)
    incident_ids: list[int] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, reason: str, error: str) -> None:
        self.rejected_count += 1
        self.reasons[reason] += 1
        if len(self.rejected) < LISTED:
            self.rejected.append({"line": line, "reason": reason, "error": error})

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records": self.records,
            "alerts": self.alerts,
            "duplicates": self.duplicates,
            "incidents_created": self.incidents_created,
            "alerts_added": self.alerts_added,
            "unmatched": self.unmatched,
            "unmatched_samples": self.unmatched_samples,
            "skipped": dict(self.skipped),
            "rejected_count": self.rejected_count,
            "rejected": self.rejected,
            "incidents": self.incidents,
        }


@dataclass(slots=True)
class Group:
    agency: str
    signature: str
    first_at: datetime
    last_at: datetime
    external_id: str
    incident_id: int | None = None
    first: Alert | None = None  # set on groups opened by this batch: their incident is still to be created
    added: int = 0


FORGET_TIMEOUT_SECONDS = 600.0  # a day of a busy sensor is millions of keys; the pool's query timeout is seconds


async def forget_keys(
    conn: asyncpg.Connection, q: Queries, sources: Sequence[str], remember: timedelta, now: datetime
) -> tuple[int, int]:
    """Drop what is kept of ``sources``' alerts older than ``remember`` (and a day's margin).

    Returns how many imported alerts' keys and unmatched alerts went. The day keeps every key an import running
    now may still accept: imports refuse alerts older than ``remember``.
    """
    cutoff = key_prefix(now - remember - timedelta(days=1))
    gone = []
    async with conn.transaction():
        for query in ("ingested_alerts_forget", "unmatched_alerts_forget"):
            status: str = await conn.execute(q[query], list(sources), cutoff, timeout=FORGET_TIMEOUT_SECONDS)
            gone.append(int(status.split()[-1]))
    return gone[0], gone[1]


def external_id(agency: str, signature: str, first_at: datetime) -> str:
    return f"{agency}:{signature[:120]}:{first_at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"


class Pipeline:
    """Push chunks of a file or request body in with ``feed``; ``finish`` writes the rest and returns the outcome."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        q: Queries,
        policy: Policy,
        *,
        source: str,
        convert: Convert,
        window: timedelta,
        actor: str,
        batch_alerts: int = BATCH_ALERTS,
        remember: timedelta | None = None,
        history_at: datetime | None = None,
    ) -> None:
        """With ``history_at`` the alerts are history: the incidents they open have their clocks that are past due
        at that instant closed as misses (``closed_by_history``), so that they count in their periods' figures but
        never show as open clocks, in the queue, the sweep or the breach alerts."""
        self.conn, self.q, self.policy = conn, q, policy
        self.history_at = history_at
        self.source, self.convert, self.window, self.actor = source, convert, window, actor
        self.batch_alerts = batch_alerts
        self.outcome = Outcome(source)
        self._reader = RecordReader()
        self._networks: NetworkTable | None = None
        self._pending: list[tuple[int, Alert]] = []
        self._writing: asyncio.Future[None] | None = None
        self._clocks = Clocks(policy)
        # Keys of alerts before this are forgotten (forget_keys), so such alerts could come in twice: refuse them.
        self._remember = remember
        self._oldest = None if remember is None else datetime.now(UTC) - remember

    async def feed(self, chunk: bytes) -> None:
        for line, record in self._reader.feed(chunk):
            self._take(line, record)
            if len(self._pending) >= self.batch_alerts:
                await self._start_flush()
        await asyncio.sleep(0)  # let the batch being written move on to its next statement

    async def finish(self) -> Outcome:
        for line, record in self._reader.close():
            self._take(line, record)
        await self._start_flush()
        await self._wait()
        if self.outcome.incident_ids:
            rows = await self.conn.fetch(self.q["incident_alert_counts"], self.outcome.incident_ids)
            self.outcome.incidents = [
                {
                    "id": r["id"],
                    "agency": r["agency_code"],
                    "external_id": r["external_id"],
                    "detected_at": r["detected_at"].isoformat(),
                    "alert_count": r["alert_count"],
                }
                for r in rows
            ]
        log.info(
            "alerts ingested",
            source=self.source,
            alerts=self.outcome.alerts,
            duplicates=self.outcome.duplicates,
            incidents_created=self.outcome.incidents_created,
            unmatched=self.outcome.unmatched,
            rejected=self.outcome.rejected_count,
        )
        return self.outcome

    async def cancel(self) -> None:
        """Stop a batch still being written (the caller gave up); its transaction rolls back."""
        if self._writing is not None and not self._writing.done():
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing

    async def _start_flush(self) -> None:
        """Write the pending alerts while the next ones are parsed; one batch at a time, in order."""
        await self._wait()
        batch, self._pending = self._pending, []
        if batch:
            self._writing = asyncio.ensure_future(self._flush(batch))

    async def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    def _take(self, line: int, record: Any) -> None:
        self.outcome.records += 1
        if isinstance(record, RecordError):
            self.outcome.reject(line, "invalid", str(record))
            return
        try:
            alert = self.convert(record)
        except Skipped as exc:
            self.outcome.skipped[str(exc)] += 1
            return
        except Rejected as exc:
            self.outcome.reject(line, exc.reason, exc.detail)
            return
        if alert.at > datetime.now(UTC) + MAX_CLOCK_SKEW:
            self.outcome.reject(line, "invalid", f"{alert.at.isoformat()} is more than 5 minutes in the future")
            return
        if self._oldest is not None and alert.at < self._oldest:
            assert self._remember is not None
            error = f"{alert.at.isoformat()} is older than the {self._remember.days} days imports are remembered"
            self.outcome.reject(line, "too_old", error)
            return
        self.outcome.alerts += 1
        self._pending.append((line, alert))

    async def _flush(self, batch: list[tuple[int, Alert]]) -> None:
        conn, q = self.conn, self.q
        async with bulk_transaction(conn):
            await conn.execute(q["ingest_lock"], self.source)
            if self._networks is None:
                self._networks = await NetworkTable.load(conn, q)
            networks = self._networks
            matched: list[tuple[Alert, str]] = []
            unmatched: list[tuple[int, Alert]] = []
            for line, alert in batch:
                agency = networks.agency(alert.addresses)
                if agency is None:
                    unmatched.append((line, alert))
                else:
                    matched.append((alert, agency))
            await self._store_unmatched(unmatched)
            fresh = await self._fresh(matched)
            groups = await self._group(fresh)
            await self._write(groups)

    async def _fresh(self, matched: list[tuple[Alert, str]]) -> list[tuple[Alert, str]]:
        if not matched:
            return []
        rows = await self.conn.fetch(self.q["ingested_alerts_new"], self.source, [a.key for a, _ in matched])
        new = {r["alert_key"] for r in rows}
        fresh = []
        for alert, agency in matched:
            if alert.key in new:
                new.discard(alert.key)  # the same alert twice in one batch counts once
                fresh.append((alert, agency))
        self.outcome.duplicates += len(matched) - len(fresh)
        return fresh

    async def _store_unmatched(self, unmatched: list[tuple[int, Alert]]) -> None:
        if not unmatched:
            return
        self.outcome.unmatched += len(unmatched)
        samples = []
        for line, alert in unmatched:
            sample = {
                "line": line,
                "at": alert.at.isoformat(),
                "addresses": list(alert.addresses),
                "signature": alert.signature,
                "title": alert.title,
            }
            samples.append(sample)
            if len(self.outcome.unmatched_samples) < SAMPLES:
                self.outcome.unmatched_samples.append(sample)
        await self.conn.execute(
            self.q["unmatched_insert"],
            self.source,
            [a.key for _, a in unmatched],
            [a.at for _, a in unmatched],
            [" ".join(a.addresses) for _, a in unmatched],
            [a.signature for _, a in unmatched],
            ["no_network"] * len(unmatched),
            [json.dumps(s, ensure_ascii=False) for s in samples],
        )

    async def _group(self, fresh: list[tuple[Alert, str]]) -> list[Group]:
        by_key: dict[tuple[str, str], list[Alert]] = defaultdict(list)
        for alert, agency in fresh:
            by_key[(agency, alert.signature)].append(alert)
        if not by_key:
            return []
        keys = list(by_key)
        stored: dict[tuple[str, str], list[Group]] = defaultdict(list)
        rows = await self.conn.fetch(
            self.q["alert_groups_near"],
            self.source,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [min(a.at for a in by_key[k]) for k in keys],
            [max(a.at for a in by_key[k]) for k in keys],
            self.window,
        )
        for r in rows:
            stored[(r["agency_code"], r["signature"])].append(
                Group(r["agency_code"], r["signature"], r["first_at"], r["last_at"], r["external_id"], r["incident_id"])
            )
        touched: list[Group] = []
        for key, alerts in by_key.items():
            alerts.sort(key=lambda a: a.at)
            groups = sorted(stored.get(key, []), key=lambda g: g.first_at)
            starts = [g.first_at for g in groups]
            for alert in alerts:
                at = bisect.bisect_right(starts, alert.at) - 1
                group = groups[at] if at >= 0 and alert.at < groups[at].first_at + self.window else None
                if group is None:
                    group = Group(
                        key[0], key[1], alert.at, alert.at, external_id(key[0], key[1], alert.at), first=alert
                    )
                    position = bisect.bisect_right(starts, alert.at)
                    starts.insert(position, alert.at)
                    groups.insert(position, group)
                if group.added == 0:
                    touched.append(group)
                group.added += 1
                group.last_at = max(group.last_at, alert.at)
        return touched

    async def _write(self, groups: list[Group]) -> None:
        if not groups:
            return
        conn, q = self.conn, self.q
        opened = [g for g in groups if g.incident_id is None]
        if opened:
            rows = []
            for number, g in enumerate(opened, start=1):
                assert g.first is not None
                data = IncidentIn(
                    agency=g.agency,
                    title=g.first.title,
                    severity=g.first.severity,
                    category=g.first.category,
                    detected_at=g.first_at,
                    source=self.source,
                    external_id=g.external_id,
                    description=g.first.description,
                )
                rows.append((number, *self._clocks.insert_args(data, self.actor, closed_at=self.history_at)))
            stored = bulk.BulkOutcome()
            await bulk.store(conn, q, rows, stored)
            ids = {
                r["external_id"]: r["id"]
                for r in await conn.fetch(q["incident_ids_by_keys"], self.source, [g.external_id for g in opened])
            }
            for g in opened:
                g.incident_id = ids[g.external_id]
            if self.history_at is not None:
                await conn.execute(q["incidents_mark_history"], list(ids.values()), self.history_at)
            self.outcome.incidents_created += stored.accepted
        await conn.execute(
            q["alert_groups_upsert"],
            self.source,
            [g.incident_id for g in groups],
            [g.agency for g in groups],
            [g.signature for g in groups],
            [g.first_at for g in groups],
            [g.last_at for g in groups],
        )
        # A new incident counts its first alert already (alert_count defaults to 1).
        added = [g for g in groups if g.added - (g.first is not None) > 0]
        if added:
            await conn.execute(
                q["incident_alerts_add"],
                [g.incident_id for g in added],
                [g.added - (g.first is not None) for g in added],
            )
        self.outcome.alerts_added += sum(g.added for g in groups)
        for g in groups:
            if len(self.outcome.incident_ids) >= LISTED:
                break
            if g.incident_id is not None and g.incident_id not in self.outcome.incident_ids:
                self.outcome.incident_ids.append(g.incident_id)
