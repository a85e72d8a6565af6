"""Notifications certmon sent an agency, in PostgreSQL: claimed before the send, finished with its outcome.

The caller owns the transaction: a claim and its outcome are each written in one, after ``lock_incident``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from certmon.core.errors import Conflict, NotFound
from certmon.store.db import Queries


async def subject(conn: asyncpg.Connection, q: Queries, incident_id: int) -> asyncpg.Record:
    """The incident a notice is about, with its agency's names, contacts and webhook."""
    row = await conn.fetchrow(q["notification_subject"], incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


async def lock_incident(conn: asyncpg.Connection, q: Queries, incident_id: int) -> datetime | None:
    """Lock the incident for the rest of the transaction; its ``notified_at``."""
    notified: datetime | None = await conn.fetchval(q["notification_incident_lock"], incident_id)
    return notified


async def last_sent(conn: asyncpg.Connection, q: Queries, incident_id: int, channel: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(q["notification_last_sent"], incident_id, channel)
    return row


async def claim(
    conn: asyncpg.Connection,
    q: Queries,
    incident_id: int,
    channel: str,
    recipients: Sequence[str],
    actor: str,
    now: datetime,
    stale_before: datetime,
) -> int:
    """Hold (incident, channel) for a send; its id. A send in progress since before ``stale_before`` is taken over."""
    await conn.execute(
        q["notification_abandon"],
        incident_id,
        channel,
        stale_before,
        now,
        f"abandoned: no outcome was recorded by {stale_before.isoformat()}",
    )
    try:
        async with conn.transaction():
            notification_id: int = await conn.fetchval(
                q["notification_claim"], incident_id, channel, list(recipients), actor, now
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"a notification of incident {incident_id} by {channel} is being sent; try again later"
        ) from None
    return notification_id


async def finish(
    conn: asyncpg.Connection,
    q: Queries,
    notification_id: int,
    status: str,
    message_id: str | None,
    response: str | None,
    at: datetime,
) -> None:
    await conn.execute(q["notification_finish"], notification_id, status, message_id, response, at)


async def add_notice_event(
    conn: asyncpg.Connection,
    q: Queries,
    incident_id: int,
    event_type: str,
    at: datetime,
    note: str,
    actor: str,
    detail: Mapping[str, Any],
) -> None:
    """A notification_sent or notification_failed event: on the timeline, touching no milestone or clock."""
    await conn.execute(
        q["incident_event_insert"], incident_id, event_type, None, at, None, note, None, actor, None, json.dumps(detail)
    )


async def by_id(conn: asyncpg.Connection, q: Queries, notification_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(q["notification_by_id"], notification_id)
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    return row


def notification_json(row: asyncpg.Record) -> dict[str, Any]:
    """A notification as the API shows it; the acknowledgement link's token is not kept, so it cannot be shown."""
    return {
        "id": row["id"],
        "incident": row["incident_id"],
        "channel": row["channel"],
        "status": row["status"],
        "recipients": list(row["recipients"]),
        "message_id": row["message_id"],
        "response": row["response"],
        "actor": row["actor"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "ack_expires_at": row["ack_expires_at"],
    }
