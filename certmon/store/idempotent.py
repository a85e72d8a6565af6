"""Creation idempotent on a key: the same body again returns the stored row, another body is a conflict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from certmon.core.errors import Conflict


async def insert_or_compare(
    conn: asyncpg.Connection,
    insert: str,
    args: Sequence[Any],
    by_key: str,
    key: Mapping[str, Any],
    digest: str,
    noun: str,
) -> tuple[asyncpg.Record, bool]:
    """Insert a row (``insert`` does nothing on a taken key); returns the row and whether it is new.

    A taken key returns the row stored under it when that row's body_hash is ``digest``; otherwise it is a Conflict
    naming the key, with the stored row's id as ``<noun>_id``.
    """
    row = await conn.fetchrow(insert, *args)
    if row is not None:
        return row, True
    existing = await conn.fetchrow(by_key, *key.values())
    if existing is None:  # rows are never deleted, so the key that blocked the insert is still there
        raise Conflict(f"the {noun} key was taken concurrently; retry")
    if existing["body_hash"] != digest:
        named = " ".join(f"{name} {value!r}" for name, value in key.items())
        raise Conflict(f"{named} exists with a different body", **{f"{noun}_id": existing["id"]})
    return existing, False
