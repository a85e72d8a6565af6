"""The audit trail in PostgreSQL: sealing entries into the hash chain, verifying it, and reading entries by page.

The entries themselves are written by the database's statement triggers (sql/migrations/0007_audit.sql); the actor
they record is the one ``db.set_actor`` gave the connection.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from certmon.core.audit import GENESIS, ChainCheck, Fields, Link, chain_hash
from certmon.core.errors import Invalid
from certmon.store.db import Queries

SEAL_BATCH = 500  # entries per sealing transaction; a bulk upload's entry holds all its rows
VERIFY_BATCH = 200
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    entry_id: int
    entry_xid: int
    hash: str


@dataclass(frozen=True, slots=True)
class Sealed:
    count: int
    head: Head | None  # None: the chain is empty


async def head(conn: asyncpg.Connection, q: Queries) -> Head | None:
    row = await conn.fetchrow(q["audit_chain_head"])
    return None if row is None else Head(row["seq"], row["entry_id"], row["entry_xid"], row["hash"])


async def seal(conn: asyncpg.Connection, q: Queries, *, wait: bool = False, batch: int = SEAL_BATCH) -> Sealed | None:
    """Append every entry whose writer has ended to the chain; None when another sealer holds the lock (unless wait).

    Each batch is a transaction of its own, so a long backlog is sealed in steps that each commit.
    """
    total = 0
    while True:
        async with conn.transaction():
            if wait:
                await conn.execute(q["audit_seal_wait"])
            elif not await conn.fetchval(q["audit_seal_lock"]):
                return None
            last = await head(conn, q)
            rows = await conn.fetch(
                q["audit_sealable"], 0 if last is None else last.entry_xid, 0 if last is None else last.entry_id, batch
            )
            if rows:
                seq, digest = (0, GENESIS) if last is None else (last.seq, last.hash)
                seqs, ids, xids, hashes = [], [], [], []
                for row in rows:
                    seq, digest = seq + 1, chain_hash(digest, row)
                    seqs.append(seq)
                    ids.append(row["id"])
                    xids.append(row["xid"])
                    hashes.append(digest)
                await conn.execute(q["audit_chain_append"], seqs, ids, xids, hashes)
                last = Head(seq, ids[-1], xids[-1], digest)
        total += len(rows)
        if len(rows) < batch:
            return Sealed(total, last)


@dataclass(frozen=True, slots=True)
class Verification:
    problem: str | None  # the first bad entry; None when the chain verifies
    length: int  # positions checked
    head: Head | None
    pending: int  # entries whose writers may still be running: sealed at the next round

    @property
    def ok(self) -> bool:
        return self.problem is None


async def verify(
    conn: asyncpg.Connection, q: Queries, expect: tuple[int, str] | None = None, batch: int = VERIFY_BATCH
) -> Verification:
    """Seal what can be sealed, then recompute the whole chain from its first position.

    ``expect`` is a head anchored earlier (a log line, a manifest): the chain must still hold that hash there.
    """
    await seal(conn, q, wait=True)
    check = ChainCheck()
    anchored: str | None = None
    while True:
        rows = await conn.fetch(q["audit_chain_links"], check.seq + 1, batch)
        links = [Link(r["seq"], r["entry_id"], r["hash"], None if r["id"] is None else r) for r in rows]
        if not check.feed(links):
            break
        if expect is not None and check.seq >= expect[0] > check.seq - len(links):
            anchored = next(link.hash for link in links if link.seq == expect[0])
        if len(rows) < batch:
            break
    last = await head(conn, q)
    problem = check.problem
    if problem is None and last is not None:
        behind = await conn.fetchval(q["audit_unchained_behind_head"], last.entry_xid, last.entry_id)
        if behind is not None:
            problem = f"entry {behind} is not in the chain though entries written after it are: added behind it"
    if problem is None and expect is not None and anchored != expect[1]:
        problem = (
            f"the anchored head {expect[0]}:{expect[1][:12]}… is not in the chain"
            if anchored is None
            else f"chain position {expect[0]} holds {anchored[:12]}…, not the anchored {expect[1][:12]}…: rewritten"
        )
    pending = await conn.fetchval(q["audit_pending"], *((0, 0) if last is None else (last.entry_xid, last.entry_id)))
    return Verification(problem, check.seq, last, pending)


@dataclass(frozen=True, slots=True)
class Filters:
    actor: str | None = None
    table: str | None = None
    kind: str | None = None
    entity: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def page(
    conn: asyncpg.Connection, q: Queries, where: Filters, after: int | None, limit: int
) -> tuple[list[asyncpg.Record], int | None]:
    """A page of entries, newest first, and the id the next page starts below (None on the last page)."""
    rows = await conn.fetch(
        q["audit_page"],
        where.actor,
        where.table,
        where.kind,
        where.entity,
        where.action,
        where.since,
        where.until,
        after,
        limit + 1,
    )
    return rows[:limit], rows[limit - 1]["id"] if len(rows) > limit else None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor this service issued points below; Invalid naming cursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        number = int(value)
        if prefix != "audit" or not 1 <= number <= MAX_ID:
            raise ValueError
        return number
    except ValueError:
        raise Invalid("cursor", "is not a cursor this service issued for the audit trail") from None


def entry_json(row: Fields) -> dict[str, Any]:
    """An entry as the API and the command show it."""
    return {
        "id": row["id"],
        "at": row["at"],
        "actor": row["actor"],
        "actor_role": row["actor_role"],
        "action": row["action"],
        "table": row["table_name"],
        "kind": row["kind"],
        "entity_ids": list(row["entity_ids"]),
        "row_count": row["row_count"],
        "before": None if row["before"] is None else json.loads(row["before"]),
        "after": None if row["after"] is None else json.loads(row["after"]),
        "chain_seq": row["chain_seq"],
        "chain_hash": row["chain_hash"],
    }
