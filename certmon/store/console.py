"""What the analyst console reads: the queue of open clocks, an incident with all it shows, and agency names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from certmon.store import incidents
from certmon.store.db import Queries

QUEUE_LIMIT = 200  # clocks on one queue page; a shift that has more open needs the filters, not a longer table


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the queue is narrowed to; None (or no states) means any."""

    agency: str | None = None
    sector: str | None = None
    severity: str | None = None
    states: tuple[str, ...] = ()
    objective: str | None = None
    text: str | None = None

    def args(self) -> tuple[Any, ...]:
        return self.agency, self.sector, self.severity, self.objective, self.text


@dataclass(frozen=True, slots=True)
class Queue:
    rows: list[asyncpg.Record]
    more: bool  # more clocks matched than are shown
    counts: dict[str, int]  # open clocks by state, whatever the state filter


async def queue(
    conn: asyncpg.Connection, q: Queries, now: datetime, where: QueueFilter, limit: int = QUEUE_LIMIT
) -> Queue:
    states = list(where.states) or None
    rows = await conn.fetch(q["console_queue"], now, *where.args(), states, limit + 1)
    counts = {r["state"]: r["clocks"] for r in await conn.fetch(q["console_queue_counts"], now, *where.args())}
    return Queue(rows[:limit], len(rows) > limit, counts)


async def agencies(conn: asyncpg.Connection, q: Queries) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(q["console_agencies"])
    return rows


async def agency(conn: asyncpg.Connection, q: Queries, code: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(q["console_agency"], code)
    return row


@dataclass(frozen=True, slots=True)
class IncidentView:
    row: asyncpg.Record
    events: Sequence[asyncpg.Record]
    clocks: dict[str, asyncpg.Record]
    agency: asyncpg.Record
    open_pause: asyncpg.Record | None
    notifications: Sequence[asyncpg.Record]


async def incident(conn: asyncpg.Connection, q: Queries, incident_id: int, agency_scope: str | None) -> IncidentView:
    """An incident with its timeline, clocks, agency, open pause and notifications; NotFound outside the scope."""
    row = await incidents.get(conn, q, incident_id, agency_scope)
    events = await conn.fetch(q["console_incident_events"], incident_id)
    clocks = {c["objective"]: c for c in await conn.fetch(q["console_incident_clocks"], incident_id)}
    owner = await conn.fetchrow(q["console_agency"], row["agency_code"])
    assert owner is not None  # the incident's foreign key keeps its agency
    pause = await conn.fetchrow(q["console_open_pause"], incident_id)
    sent = await conn.fetch(q["console_notifications"], incident_id)
    return IncidentView(row, events, clocks, owner, pause, sent)
