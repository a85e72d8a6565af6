"""Incidents and their timelines in PostgreSQL: creation, events, corrections, and recomputed clocks."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import asyncpg

from certmon.core.clocks import (
    ALL_MILESTONES,
    CLOCK_COLUMNS,
    Clocks,
    body_hash,
    clock_rows,
    clock_values,
    closed_by_history,
    columns,
)
from certmon.core.errors import Conflict, Forbidden, Invalid, NotFound
from certmon.core.models import AGENCY_EVENTS, MILESTONES, EventIn, IncidentIn
from certmon.core.policy import Policy
from certmon.core.sla import Clock, Pause, elapsed_seconds, paused_seconds_at, state_at
from certmon.store.db import Queries
from certmon.store.idempotent import insert_or_compare

# A stored incident_clocks row, or the same values as a dict when they were just written.
ClockRow = asyncpg.Record | Mapping[str, Any]


async def create(
    conn: asyncpg.Connection, q: Queries, policy: Policy, data: IncidentIn, actor: str
) -> tuple[asyncpg.Record, bool, dict[str, ClockRow]]:
    """Store an incident and its objectives' clocks; returns it, whether it is new, and its clocks by objective.

    The same key with another body is a conflict.
    """
    digest = body_hash(data)
    *args, objective_rows = Clocks.of(policy).insert_args(data, actor, digest)
    key = {"source": data.source, "external_id": data.external_id}
    values = (*args, *columns(objective_rows, len(CLOCK_COLUMNS)))
    try:
        row, created = await insert_or_compare(
            conn, q["incident_insert"], values, q["incident_by_key"], key, digest, "incident"
        )
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("agency", f"unknown agency {data.agency!r}") from None
    if created:  # the clocks are the ones just written: no need to read them back
        clocks: dict[str, ClockRow] = {r[0]: dict(zip(CLOCK_COLUMNS, r, strict=True)) for r in objective_rows}
    else:
        clocks = dict((await clocks_for(conn, q, [row["id"]]))[row["id"]])
    return row, created, clocks


async def get(conn: asyncpg.Connection, q: Queries, incident_id: int, agency: str | None = None) -> asyncpg.Record:
    """An incident; with ``agency``, only that agency's (another's is not found: its existence is not told)."""
    row = await conn.fetchrow(q["incident_by_id"], incident_id)
    if row is None or (agency is not None and row["agency_code"] != agency):
        raise NotFound(f"no incident {incident_id}")
    return row


async def clocks_for(conn: asyncpg.Connection, q: Queries, ids: Sequence[int]) -> dict[int, dict[str, asyncpg.Record]]:
    """The stored objective clocks of incidents, by incident id and objective."""
    out: dict[int, dict[str, asyncpg.Record]] = {incident_id: {} for incident_id in ids}
    for row in await conn.fetch(q["incident_clocks_for"], list(ids)):
        out[row["incident_id"]][row["objective"]] = row
    return out


async def pauses_for(conn: asyncpg.Connection, q: Queries, ids: Sequence[int]) -> dict[int, list[asyncpg.Record]]:
    out: dict[int, list[asyncpg.Record]] = {incident_id: [] for incident_id in ids}
    for row in await conn.fetch(q["incident_pauses_for"], list(ids)):
        out[row["incident_id"]].append(row)
    return out


def _pauses(rows: Sequence[asyncpg.Record]) -> list[Pause]:
    return [Pause(row["paused_at"], row["resumed_at"]) for row in rows]


async def add_event(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    incident_id: int,
    event: EventIn,
    actor: str,
    now: datetime | None = None,
    *,
    agency: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> asyncpg.Record:
    """Append an event to the timeline and bring the milestones and every objective's clock up to date, atomically.

    An event without ``at`` happened now: the caller's instant, or the wall clock's when it gives none. With
    ``agency`` (an agency's own token) only that agency's incidents are found, and only its side may be recorded.
    """
    at = event.at or now or datetime.now(UTC)
    if agency is not None and event.type not in AGENCY_EVENTS:
        raise Forbidden(f"an agency may record only {', '.join(sorted(AGENCY_EVENTS))}")
    async with conn.transaction():
        row = await conn.fetchrow(q["incident_for_update"], incident_id)
        if row is None or (agency is not None and row["agency_code"] != agency):
            raise NotFound(f"no incident {incident_id}")
        milestones: dict[str, datetime | None] = {name: row[f"{name}_at"] for name in ALL_MILESTONES}
        excluded, reason = row["excluded"], row["exclusion_reason"]
        pauses = list((await pauses_for(conn, q, [incident_id]))[incident_id])
        milestone: str | None = None
        previous: datetime | None = None
        pause_id: int | None = None
        if event.type in MILESTONES:
            milestone = event.type
            if milestones[milestone] is not None:
                raise Conflict(f"{milestone} is already recorded; send a correction with a reason to change it")
            milestones[milestone] = at
        elif event.type == "correction" and event.milestone in ("paused", "resumed"):
            milestone = event.milestone
            pause_id, previous = await _correct_pause(conn, q, pauses, event, at, milestones)
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
        elif event.type == "paused":
            pause_id = await _pause(conn, q, incident_id, pauses, at, event.reason, milestones)
        elif event.type == "resumed":
            pause_id = await _resume(conn, q, pauses, at)
        _check_order(milestones)
        pauses = list((await pauses_for(conn, q, [incident_id]))[incident_id]) if pause_id is not None else pauses
        clocks = Clocks.of(policy)
        every = _closed(row, clocks.all(row["severity"], milestones, _pauses(pauses)))
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
            pause_id,
            None if detail is None else json.dumps(detail),
        )
        updated: asyncpg.Record | None = await conn.fetchrow(
            q["incident_update_state"],
            incident_id,
            *(milestones[name] for name in ALL_MILESTONES),
            excluded,
            reason,
            *clock_values(every[clocks.kpi]),
            clocks.fingerprint,
        )
        assert updated is not None  # the row is locked above
        await _replace_clocks(conn, q, {incident_id: every})
        return updated


async def _replace_clocks(conn: asyncpg.Connection, q: Queries, clocks: Mapping[int, Mapping[str, Clock]]) -> None:
    rows = [(incident_id, *r) for incident_id, every in clocks.items() for r in clock_rows(every)]
    await conn.execute(q["incident_clocks_delete"], list(clocks))
    if rows:
        await conn.execute(q["incident_clocks_insert"], *columns(rows, len(CLOCK_COLUMNS) + 1))


async def _pause(
    conn: asyncpg.Connection,
    q: Queries,
    incident_id: int,
    pauses: Sequence[asyncpg.Record],
    at: datetime,
    reason: str | None,
    milestones: Mapping[str, datetime | None],
) -> int:
    if any(p["resumed_at"] is None for p in pauses):
        raise Conflict("the incident is paused already; resume it first")
    if milestones["resolved"] is not None:
        raise Conflict("the incident is resolved; reopen it first")
    _check_pause(pauses, None, at, None, milestones)
    pause_id: int = await conn.fetchval(q["incident_pause_insert"], incident_id, at, reason)
    return pause_id


async def _resume(conn: asyncpg.Connection, q: Queries, pauses: Sequence[asyncpg.Record], at: datetime) -> int:
    open_pause = next((p for p in pauses if p["resumed_at"] is None), None)
    if open_pause is None:
        raise Conflict("the incident is not paused")
    if at < open_pause["paused_at"]:
        raise Invalid("at", f"would be earlier than the pause began ({open_pause['paused_at'].isoformat()})")
    await conn.execute(q["incident_pause_update"], open_pause["id"], open_pause["paused_at"], at)
    pause_id: int = open_pause["id"]
    return pause_id


async def _correct_pause(
    conn: asyncpg.Connection,
    q: Queries,
    pauses: Sequence[asyncpg.Record],
    event: EventIn,
    at: datetime,
    milestones: Mapping[str, datetime | None],
) -> tuple[int, datetime | None]:
    """Move a pause's start or end (the latest pause unless one is named); returns its id and the replaced time."""
    if not pauses:
        raise Conflict("the incident was never paused")
    chosen = pauses[-1] if event.pause is None else next((p for p in pauses if p["id"] == event.pause), None)
    if chosen is None:
        raise Invalid("pause", f"no pause {event.pause} on this incident")
    begin, end = chosen["paused_at"], chosen["resumed_at"]
    if event.milestone == "paused":
        previous, begin = begin, at
    else:
        if end is None:
            raise Conflict("the pause has not ended; send resumed to end it")
        previous, end = end, at
    if end is not None and end < begin:
        raise Invalid("at", "a pause would end before it began")
    _check_pause(pauses, chosen["id"], begin, end, milestones)
    await conn.execute(q["incident_pause_update"], chosen["id"], begin, end)
    pause_id: int = chosen["id"]
    return pause_id, previous


def _check_pause(
    pauses: Sequence[asyncpg.Record],
    pause_id: int | None,
    begin: datetime,
    end: datetime | None,
    milestones: Mapping[str, datetime | None],
) -> None:
    detected = milestones["detected"]
    assert detected is not None
    if begin < detected:
        raise Invalid("at", f"a pause would begin earlier than detected ({detected.isoformat()})")
    for other in pauses:
        if other["id"] == pause_id:
            continue
        other_end = other["resumed_at"]
        if (other_end is None or begin < other_end) and (end is None or other["paused_at"] < end):
            raise Invalid("at", f"the pause would overlap pause {other['id']}")


def _closed(row: asyncpg.Record, every: dict[str, Clock]) -> dict[str, Clock]:
    """The clocks of an incident imported as history stay closed as it closed them, whatever is recomputed."""
    at = row["history_closed_at"]
    return every if at is None else {name: closed_by_history(clock, at) for name, clock in every.items()}


def _check_order(milestones: Mapping[str, datetime | None]) -> None:
    detected = milestones["detected"]
    assert detected is not None
    for name in MILESTONES:
        at = milestones[name]
        if at is not None and at < detected:
            raise Invalid("at", f"{name} would be earlier than detected ({detected.isoformat()})")


# Where a pass over the stale incidents has reached: whether it is past the fingerprint in force (the fingerprints
# that sort below it come first), and the last (policy_hash, id) a batch took.
StaleCursor = tuple[bool, str, int]
FIRST_STALE: StaleCursor = (False, "", 0)


async def stale_count(conn: asyncpg.Connection, q: Queries, fingerprint: str) -> int:
    """Incidents whose clocks are stored under another policy than ``fingerprint``'s: an index probe when none is."""
    if not await conn.fetchval(q["incidents_stale_probe"], fingerprint):
        return 0
    count: int = await conn.fetchval(q["incidents_stale_count"], fingerprint)
    return count


async def recompute_batch(
    conn: asyncpg.Connection, q: Queries, policy: Policy, after: StaleCursor, size: int
) -> tuple[int, StaleCursor | None]:
    """Recompute every objective's clock of the next ``size`` stale incidents after ``after``, in one transaction.

    Returns how many, and where the next batch starts; None when this pass found none left. Rows locked by another
    transaction (another replica's batch, an event being recorded) are skipped: a later pass finds those still stale.
    """
    clocks = Clocks.of(policy)
    fingerprint = clocks.fingerprint
    above, last_hash, last_id = after
    async with conn.transaction():
        rows = []
        if not above:
            rows = await conn.fetch(q["incidents_stale_below"], fingerprint, last_hash, last_id, size)
            if not rows:
                # Past the fingerprint in force without reading one incident stored under it.
                above, last_hash, last_id = True, fingerprint, MAX_ID
        if above:
            rows = await conn.fetch(q["incidents_stale_above"], fingerprint, last_hash, last_id, size)
        if not rows:
            return 0, None
        pauses = await pauses_for(conn, q, [row["id"] for row in rows])
        kpi = []
        every: dict[int, dict[str, Clock]] = {}
        for row in rows:
            milestones = {name: row[f"{name}_at"] for name in ALL_MILESTONES}
            every[row["id"]] = _closed(row, clocks.all(row["severity"], milestones, _pauses(pauses[row["id"]])))
            kpi.append((row["id"], *clock_values(every[row["id"]][clocks.kpi])))
        await conn.execute(q["incidents_recompute_update"], *columns(kpi, 6), fingerprint)
        await _replace_clocks(conn, q, every)
    last = rows[-1]
    return len(rows), (above, last["policy_hash"], last["id"])


async def recompute_stale(conn: asyncpg.Connection, q: Queries, policy: Policy, batch: int = 1000) -> int:
    """Recompute, batch after batch on this connection, the incidents stored under another policy that no other
    transaction holds; returns how many."""
    done, cursor = 0, FIRST_STALE
    while True:
        count, after = await recompute_batch(conn, q, policy, cursor, batch)
        done += count
        if after is None:
            return done
        cursor = after


def to_json(
    row: asyncpg.Record,
    policy: Policy,
    now: datetime,
    timeline: list[asyncpg.Record] | None = None,
    clocks: Mapping[str, ClockRow] | None = None,
) -> dict[str, Any]:
    """An incident as the API shows it: the KPI's clock as ``sla``, and with ``clocks`` every objective's."""
    tz = policy.tz
    # The same few instants recur across the milestones and the clocks: each is converted once.
    shown: dict[datetime | None, str | None] = {None: None}

    def iso(value: datetime | None) -> str | None:
        if value not in shown:
            shown[value] = _iso(tz, value)
        return shown[value]

    calendars = Clocks.of(policy)
    clock = Clock(row["clock_start"], row["at_risk_at"], row["due_at"], row["stopped_at"], row["delay_seconds"])
    calendar = calendars.calendar(row["severity"])
    stored = {} if clocks is None else clocks
    kpi = stored.get(policy.kpi_name)
    if kpi is not None:
        clock = stored_clock(kpi)
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
        **{f"{name}_at": iso(row[f"{name}_at"]) for name in ALL_MILESTONES},
        "excluded": row["excluded"],
        "exclusion_reason": row["exclusion_reason"],
        "created_by": row["created_by"],
        "created_at": iso(row["created_at"]),
        "sla": {
            "clock_start": iso(clock.start),
            "due_at": iso(clock.due_at),
            "stopped_at": iso(clock.stopped_at),
            "elapsed_seconds": None if calendar is None else elapsed_seconds(clock, now, calendar),
            "state": state_at(clock, now, row["excluded"]),
        },
        "objectives": {},
    }
    for objective in policy.objectives:
        found = stored.get(objective)
        each = _NO_CLOCK if found is None else stored_clock(found)
        each_calendar = calendars.calendar(row["severity"], objective)
        out["objectives"][objective] = {
            "state": state_at(each, now, row["excluded"]),
            "clock_start": iso(each.start),
            "due_at": iso(each.due_at),
            "stopped_at": iso(each.stopped_at),
            "delay_seconds": each.delay_seconds,
            "paused_seconds": each.paused_seconds
            if each_calendar is None
            else paused_seconds_at(each, now, each_calendar),
            "elapsed_seconds": None if each_calendar is None else elapsed_seconds(each, now, each_calendar),
        }
    if timeline is not None:
        out["timeline"] = [*creation_entries(row, timeline, tz), *(event_json(e, tz) for e in timeline)]
    return out


_NO_CLOCK = Clock(None, None, None, None, None)


def stored_clock(row: ClockRow) -> Clock:
    return Clock(
        row["clock_start"], row["at_risk_at"], row["due_at"], row["stopped_at"], row["delay_seconds"],
        row["paused_seconds"], row["paused_since"],
    )  # fmt: skip


def event_json(event: asyncpg.Record, tz: tzinfo) -> dict[str, Any]:
    return {
        "id": event["id"],
        "type": event["type"],
        "milestone": event["milestone"],
        "at": _iso(tz, event["at"]),
        "previous_at": _iso(tz, event["previous_at"]),
        "note": event["note"],
        "reason": event["reason"],
        "actor": event["actor"],
        "recorded_at": _iso(tz, event["recorded_at"]),
        "pause": event["pause_id"],
        "detail": None if event["detail"] is None else json.loads(event["detail"]),
    }


def creation_entries(row: asyncpg.Record, events: list[asyncpg.Record], tz: tzinfo) -> list[dict[str, Any]]:
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
                    "at": _iso(tz, original),
                    "previous_at": None,
                    "note": "recorded at creation",
                    "reason": None,
                    "actor": row["created_by"],
                    "recorded_at": _iso(tz, row["created_at"]),
                    "pause": None,
                    "detail": None,
                }
            )
    return entries


def _iso(tz: tzinfo, value: datetime | None) -> str | None:
    """A time as answers give it: with the policy's offset (+07:00 in Bangkok), as the CERT reads it."""
    return None if value is None else value.astimezone(tz).isoformat()


SORTS = ("-id", "id", "due_at", "-due_at", "detected_at", "-detected_at")
ID_SORT_KEY = datetime(1970, 1, 1, tzinfo=UTC)  # incident_page_by_time's sort time for a sort by id alone
MAX_ID = 2**63 - 1


def encode_cursor(last: asyncpg.Record, sort: str = "-id") -> str:
    """Where the next page starts: the last row's id, and its sort time for a sort by time."""
    if sort in ("-id", "id"):
        raw = f"id:{last['id']}"
    else:
        value = last["sort_key"]  # asyncpg gives PostgreSQL's infinities as naive datetime.max and .min
        written = {datetime.max: "inf", datetime.min: "-inf"}.get(value) or value.isoformat()
        raw = f"{sort}|{written}|{last['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str = "-id") -> tuple[int, datetime]:
    """The last row's id and sort time of a cursor this service issued for this sort; Invalid naming cursor else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if sort in ("-id", "id"):
            prefix, _, value = raw.partition(":")
            if prefix != "id":
                raise ValueError
            return _cursor_id(value), ID_SORT_KEY
        given, written, value = raw.split("|")
        if given != sort:
            raise ValueError
        key = {"inf": datetime.max, "-inf": datetime.min}.get(written) or datetime.fromisoformat(written)
        if key.tzinfo is None and key not in (datetime.max, datetime.min):
            raise ValueError
        return _cursor_id(value), key
    except ValueError:
        raise Invalid("cursor", f"is not a cursor this service issued for sort={sort}") from None


def _cursor_id(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise ValueError
    return number
