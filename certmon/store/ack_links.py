"""Acknowledgement links in PostgreSQL, by the hash of their token."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from certmon.store.db import Queries


async def insert(
    conn: asyncpg.Connection,
    q: Queries,
    digest: bytes,
    incident_id: int,
    agency: str,
    notification_id: int,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(q["ack_link_insert"], digest, incident_id, agency, notification_id, created_at, expires_at)


async def find(conn: asyncpg.Connection, q: Queries, digest: bytes) -> asyncpg.Record | None:
    """The link with its incident's title and acknowledgement, and its agency's names."""
    row: asyncpg.Record | None = await conn.fetchrow(q["ack_link_find"], digest)
    return row


async def use(conn: asyncpg.Connection, q: Queries, digest: bytes, at: datetime) -> asyncpg.Record | None:
    """Mark the link used at ``at``; None when it is unknown, used already or expired."""
    row: asyncpg.Record | None = await conn.fetchrow(q["ack_link_use"], digest, at)
    return row
