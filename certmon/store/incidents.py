"""Incidents and their timelines in PostgreSQL: creation, events, corrections, and recomputed clocks."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from certmon.core.clocks import ALL_MILESTONES, Clocks, body_hash, clock_values
from certmon.core.errors import Conflict, Invalid, NotFound
from certmon.core.models import MILESTONES, EventIn, IncidentIn
from certmon.core.policy import Policy
from certmon.core.sla import Clock, elapsed_seconds, state_at
from certmon.store.db import Queries
from certmon.store.idempotent import insert_or_compare


async def create(
    conn: asyncpg.Connection, q: Queries, policy: Policy, data: IncidentIn, actor: str
) -> tuple[asyncpg.Record, bool]:
    """Store an incident; returns it and whether it is new. The same key with another body is a conflict."""
    digest = body_hash(data)
    args = Clocks(policy).insert_args(data, actor, digest)
    key = {"source": data.source, "external_id": data.external_id}
    try:
        return await insert_or_compare(conn, q["incident_insert"], args, q["incident_by_key"], key, digest, "incident")
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("agency", f"unknown agency {data.agency!r}") from None


async def get(conn: asyncpg.Connection, q: Queries, incident_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(q["incident_by_id"], incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


async def add_event(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    incident_id: int,
    event: EventIn,
    actor: str,
    now: datetime | None = None,
) -> asyncpg.Record:
    """Append an event to the timeline and bring the milestones and clock up to date, atomically.

    An event without ``at`` happened now: the caller's instant, or the wall clock's when it gives none.
    """
    at = event.at or now or datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow(q["incident_for_update"], incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        milestones: dict[str, datetime | None] = {name: row[f"{name}_at"] for name in ALL_MILESTONES}
        excluded, reason = row["excluded"], row["exclusion_reason"]
        milestone: str | None = None
        previous: datetime | None = None
        if event.type in MILESTONES:
            milestone = event.type
            if milestones[milestone] is not None:
                raise Conflict(f"{milestone} is already recorded; send a correction with a reason to change it")
            milestones[milestone] = at
        elif event.type == "correction":
            milestone = event.milestone
            assert milestone is not None
            previous, milestones[milestone] = milestones[milestone], at
        elif event.type == "reopened":
            if milestones["resolved"] is None:
                raise Conflict("the incident is not resolved")
            milestone = "resolved"
            previous, milestones["resolved"] = milestones["resolved"], None
        elif event.type == "excluded":
            excluded, reason = True, event.reason
        elif event.type == "included":
            excluded, reason = False, None
        _check_order(milestones)
        clocks = Clocks(policy)
        clock = clocks.clock(row["severity"], milestones)
        await conn.execute(
            q["incident_event_insert"],
            incident_id,
            event.type,
            milestone,
            at,
            previous,
            event.note,
            event.reason,
            actor,
        )
        updated: asyncpg.Record | None = await conn.fetchrow(
            q["incident_update_state"],
            incident_id,
            *(milestones[name] for name in ALL_MILESTONES),
            excluded,
            reason,
            *clock_values(clock),
            clocks.fingerprint,
        )
        assert updated is not None  # the row is locked above
        return updated


def _check_order(milestones: Mapping[str, datetime | None]) -> None:
    detected = milestones["detected"]
    assert detected is not None
    for name in MILESTONES:
        at = milestones[name]
        if at is not None and at < detected:
            raise Invalid("at", f"{name} would be earlier than detected ({detected.isoformat()})")


async def recompute_stale(conn: asyncpg.Connection, q: Queries, policy: Policy, batch: int = 1000) -> int:
    """Recompute the clock columns of incidents stored under another policy; returns how many."""
    clocks = Clocks(policy)
    fingerprint = clocks.fingerprint
    done = 0
    while rows := await conn.fetch(q["incidents_stale_policy"], fingerprint, batch):
        updates = []
        for row in rows:
            milestones = {name: row[f"{name}_at"] for name in ALL_MILESTONES}
            clock = clocks.clock(row["severity"], milestones)
            updates.append(
                (
                    row["id"],
                    *(milestones[n] for n in ALL_MILESTONES),
                    row["excluded"],
                    row["exclusion_reason"],
                    *clock_values(clock),
                    fingerprint,
                )
            )
        await conn.executemany(q["incident_update_state"], updates)
        done += len(rows)
    return done


def to_json(
    row: asyncpg.Record, policy: Policy, now: datetime, timeline: list[asyncpg.Record] | None = None
) -> dict[str, Any]:
    clock = Clock(row["clock_start"], row["at_risk_at"], row["due_at"], row["stopped_at"], row["delay_seconds"])
    calendar = policy.calendar_for(row["severity"]) if row["severity"] in policy.severities else None
    out: dict[str, Any] = {
        "id": row["id"],
        "agency": row["agency_code"],
        "title": row["title"],
        "severity": row["severity"],
        "category": row["category"],
        "tlp": row["tlp"],
        "description": row["description"],
        "source": row["source"],
        "external_id": row["external_id"],
        **{f"{name}_at": _iso(row[f"{name}_at"]) for name in ALL_MILESTONES},
        "excluded": row["excluded"],
        "exclusion_reason": row["exclusion_reason"],
        "created_by": row["created_by"],
        "created_at": _iso(row["created_at"]),
        "sla": {
            "clock_start": _iso(clock.start),
            "due_at": _iso(clock.due_at),
            "stopped_at": _iso(clock.stopped_at),
            "elapsed_seconds": None if calendar is None else elapsed_seconds(clock, now, calendar),
            "state": state_at(clock, now, row["excluded"]),
        },
    }
    if timeline is not None:
        out["timeline"] = [*creation_entries(row, timeline), *(event_json(e) for e in timeline)]
    return out


def event_json(event: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": event["id"],
        "type": event["type"],
        "milestone": event["milestone"],
        "at": _iso(event["at"]),
        "previous_at": _iso(event["previous_at"]),
        "note": event["note"],
        "reason": event["reason"],
        "actor": event["actor"],
        "recorded_at": _iso(event["recorded_at"]),
    }


def creation_entries(row: asyncpg.Record, events: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The milestones as the incident was first recorded with them, ahead of the events that came later.

    A milestone's value at creation is what the first later event that touched it replaced (a correction or
    reopening keeps it in previous_at; a milestone event found it empty), or its current value if none did.
    """
    first_touch: dict[str, asyncpg.Record] = {}
    for event in events:
        if event["milestone"] is not None:
            first_touch.setdefault(event["milestone"], event)
    entries = []
    for name in ALL_MILESTONES:
        touched = first_touch.get(name)
        original = row[f"{name}_at"] if touched is None else touched["previous_at"]
        if original is not None:
            entries.append(
                {
                    "id": None,
                    "type": name,
                    "milestone": name,
                    "at": _iso(original),
                    "previous_at": None,
                    "note": "recorded at creation",
                    "reason": None,
                    "actor": row["created_by"],
                    "recorded_at": _iso(row["created_at"]),
                }
            )
    return entries


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "id":
            raise ValueError
        return int(value)
    except ValueError:
        raise Invalid("cursor", "is not a cursor this service issued") from None
