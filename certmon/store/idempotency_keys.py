"""Stored first answers of requests sent with an Idempotency-Key, per caller and route.

The caller owns the transaction: storing the answer in the one that made its effect means a crash leaves neither an
effect without its key nor a key without its effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from certmon.store.db import Queries


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose key it is and for what: the same key of another caller or another route is another key."""

    principal: str
    route: str
    key: str

    @property
    def args(self) -> tuple[str, str, str]:
        return self.principal, self.route, self.key


@dataclass(frozen=True, slots=True)
class Answer:
    request_hash: bytes
    status: int
    content_type: str
    body: str


@contextlib.asynccontextmanager
async def held(conn: asyncpg.Connection, q: Queries, scope: Scope) -> AsyncIterator[bool]:
    """Hold the key for the block; yields False (and holds nothing) when another request holds it."""
    taken: bool = await conn.fetchval(q["idempotency_key_lock"], *scope.args)
    try:
        yield taken
    finally:
        if taken:
            await conn.fetchval(q["idempotency_key_unlock"], *scope.args)


async def stored(
    conn: asyncpg.Connection, q: Queries, scope: Scope, now: datetime, retention: timedelta
) -> Answer | None:
    """The first answer given under the key, unless it is older than the retention."""
    row = await conn.fetchrow(q["idempotency_key_get"], *scope.args, now - retention)
    if row is None:
        return None
    return Answer(bytes(row["request_hash"]), row["status"], row["content_type"], row["body"])


async def store(conn: asyncpg.Connection, q: Queries, scope: Scope, answer: Answer, now: datetime) -> None:
    await conn.execute(
        q["idempotency_key_insert"],
        *scope.args,
        answer.request_hash,
        answer.status,
        answer.content_type,
        answer.body,
        now,
    )


async def forget(conn: asyncpg.Connection, q: Queries, now: datetime, retention: timedelta) -> int:
    """Remove the keys older than the retention; how many."""
    status: str = await conn.execute(q["idempotency_keys_forget"], now - retention)
    return int(status.rsplit(" ", 1)[-1])
