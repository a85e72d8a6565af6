"""Console sessions in PostgreSQL: opened with an API token, found by the hash of their id, ended by sign-out."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from certmon.core.access import Principal, hash_token
from certmon.core.audit import Actor
from certmon.core.sessions import ConsoleSession, csrf_token, new_secret, session_hash
from certmon.store.db import Queries, set_actor


async def open_session(
    conn: asyncpg.Connection, q: Queries, token: str, now: datetime, idle: timedelta, lifetime: timedelta
) -> tuple[str, ConsoleSession] | None:
    """A new session for a live API token: its id (for the cookie only) and the session; None for any other token.

    Sessions that can no longer be used are deleted on the way, so the table holds only live ones and recent debris.
    """
    row = await conn.fetchrow(q["session_token"], hash_token(token.strip()))
    if row is None:
        return None
    session_id = new_secret()
    expires_at = now + lifetime
    async with conn.transaction():
        # The sign-in is recorded as the signing-in token's own act; nobody was signed in before it.
        await set_actor(conn, Actor(f"console:{row['name']}", row["role"]), local=True)
        await conn.execute(q["sessions_ended_delete"], now, idle.total_seconds())
        await conn.execute(q["session_insert"], session_hash(session_id), row["id"], now, expires_at)
    principal = Principal(row["name"], row["role"], row["agency_code"])
    return session_id, ConsoleSession(principal, csrf_token(session_id), expires_at)


async def resolve(
    conn: asyncpg.Connection, q: Queries, session_id: str, now: datetime, idle: timedelta, *, touch: bool = True
) -> ConsoleSession | None:
    """The live session of an id, or None; with ``touch`` this use counts against the idle limit."""
    row = await conn.fetchrow(q["session_resolve"], session_hash(session_id), now, idle.total_seconds(), touch)
    if row is None:
        return None
    principal = Principal(row["name"], row["role"], row["agency_code"])
    return ConsoleSession(principal, csrf_token(session_id), row["expires_at"])


async def close_session(conn: asyncpg.Connection, q: Queries, session_id: str) -> None:
    await conn.execute(q["session_delete"], session_hash(session_id))
