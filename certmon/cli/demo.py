"""The demo's start-up: fill an empty database, then print where to look and a token to look with."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web

from certmon.core.audit import Actor
from certmon.core.periods import fiscal_year_of
from certmon.store import db
from certmon.store.demo import load
from certmon.store.tokens import replace_tokens
from certmon.web import appkeys

log = structlog.get_logger("certmon.demo")

# Each start revokes the previous start's admin token and prints a new one: one valid demo token at a time.
DEMO_TOKEN_PREFIX = "demo-admin-"


def context(host: str, port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        q = app[appkeys.QUERIES]
        # The audit trail names the demo as the writer of its data and its token.
        async with db.connection(app[appkeys.POOL], 600, Actor("cli:demo", "cli")) as conn:
            # In one transaction: a demo stopped while it loads leaves the database empty, and the next one loads
            # it whole rather than finding a part and taking it for a filled database.
            async with conn.transaction():
                stored = await load(conn, q, app[appkeys.POLICY], datetime.now(UTC))
            name, token, revoked = await replace_tokens(conn, q, DEMO_TOKEN_PREFIX, "admin")
        log.info("demo data ready", incidents=stored, token=name, revoked=revoked)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        fiscal_year = fiscal_year_of(datetime.now(UTC), app[appkeys.POLICY].tz)
        print(f"certmon demo: http://{shown}:{port}/api/v1/sla?period=FY{fiscal_year}", file=sys.stderr)
        print(f"admin token: {token}", flush=True)
        print(token, flush=True)
        yield

    return ctx
