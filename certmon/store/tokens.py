"""Bearer tokens in PostgreSQL: random, stored as SHA-256 hashes, revocable, each with a role."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict

import asyncpg

from certmon.core.access import ROLES, Principal, generate_token, hash_token
from certmon.core.errors import Conflict, DatabaseUnavailable, Invalid
from certmon.store.db import Queries, connection


async def create_token(conn: asyncpg.Connection, q: Queries, name: str, role: str, agency: str | None) -> str:
    if role not in ROLES:
        raise Invalid("role", f"must be one of {', '.join(ROLES)}")
    if (role == "agency") != (agency is not None):
        raise Invalid("agency", "is required for role agency and only allowed with it")
    token = generate_token()
    try:
        created = await conn.fetchval(q["token_insert"], name, role, agency, hash_token(token))
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("agency", f"unknown agency {agency!r}") from None
    if created is None:
        raise Conflict(f"a token named {name!r} exists already")
    return token


async def replace_tokens(conn: asyncpg.Connection, q: Queries, prefix: str, role: str) -> tuple[str, str, list[str]]:
    """Revoke every active token whose name starts with ``prefix`` and create one in their place, atomically.

    Returns the new token's name, the token, and the names revoked.
    """
    async with conn.transaction():
        revoked = [r["name"] for r in await conn.fetch(q["token_revoke_prefixed"], prefix)]
        name = prefix + secrets.token_hex(3)
        return name, await create_token(conn, q, name, role, None), revoked


class TokenCache:
    """Remembers verified tokens briefly so a request does not always cost a lookup.

    Only tokens that were found are kept, in an LRU of at most ``max_entries``: unknown tokens, however many, neither
    take room nor push out the tokens in use (wrong tokens are held back by the failed-authentication limit instead).
    An entry older than ``ttl_seconds`` is verified again; while the database cannot be reached, ``resolve`` with
    ``stale_ok`` still accepts it, so that Prometheus keeps scraping the last figures through an outage.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()  # digest: (verified at, who)
        self._lookups: dict[bytes, asyncio.Future[Principal | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified within the last ``ttl_seconds``, without asking the database."""
        hit = self._entries.get(hash_token(token))
        if hit is None or self._ttl <= 0 or hit[0] + self._ttl <= time.monotonic():
            return None
        return hit[1]

    def known(self, token: str) -> Principal | None:
        """The principal of a token verified at some time, however long ago (it may have been revoked since)."""
        hit = self._entries.get(hash_token(token))
        return None if hit is None else hit[1]

    def in_flight(self, token: str) -> bool:
        """Whether a lookup of this token is under way (later callers share its answer)."""
        return hash_token(token) in self._lookups

    async def resolve(
        self, pool: asyncpg.Pool, q: Queries, token: str, timeout: float, *, stale_ok: bool = False
    ) -> Principal | None:
        hit = self.cached(token)
        if hit is not None:
            return hit
        digest = hash_token(token)
        # Concurrent requests with one token (a sensor opening many connections, or all of them once its entry is
        # old) share one lookup. A task of its own, so that a caller that goes away does not cancel the others'.
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(pool, q, digest, timeout))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(digest, None))
        try:
            return await asyncio.shield(lookup)
        except DatabaseUnavailable:
            stale = self._entries.get(digest)
            if stale_ok and stale is not None:
                return stale[1]
            raise

    async def _lookup(self, pool: asyncpg.Pool, q: Queries, digest: bytes, timeout: float) -> Principal | None:
        async with connection(pool, timeout) as conn:
            row = await conn.fetchrow(q["token_by_hash"], digest)
        if row is None:
            self._entries.pop(digest, None)  # revoked
            return None
        principal = Principal(row["name"], row["role"], row["agency_code"])
        self._entries[digest] = (time.monotonic(), principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return principal
