"""Bearer tokens in PostgreSQL: random, stored as SHA-256 hashes, revocable, each with a role."""

from __future__ import annotations

import secrets
import time

import asyncpg

from certmon.core.access import ROLES, Principal, generate_token, hash_token
from certmon.core.errors import Conflict, Invalid
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
    """Remembers verified tokens briefly so a request does not always cost a lookup."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[bytes, tuple[float, Principal | None]] = {}

    async def resolve(self, pool: asyncpg.Pool, q: Queries, token: str, timeout: float) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with connection(pool, timeout) as conn:
            row = await conn.fetchrow(q["token_by_hash"], digest)
        principal = None if row is None else Principal(row["name"], row["role"], row["agency_code"])
        if self._ttl > 0:
            if len(self._entries) > 10_000:  # bounded: random bad tokens must not grow memory
                self._entries.clear()
            self._entries[digest] = (now + self._ttl, principal)
        return principal
