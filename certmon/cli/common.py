"""What every command shares: a migrated connection to the service's database, and running work on it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from certmon.core.audit import Actor
from certmon.core.settings import Settings
from certmon.store import db, migrations

Command = Callable[[argparse.Namespace, Settings], int]
CommandGroup = Callable[[Any], None]  # adds its commands to the subparsers object it is given


def cli_actor() -> Actor:
    """The operator running the command, as the audit trail names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry, as in some containers
        user = f"uid-{os.getuid()}"
    return Actor(f"cli:{user}", "cli")


@contextlib.asynccontextmanager
async def database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the configured database or the embedded one (started, or joined if running), migrated first
    unless the command is the migration itself."""
    async with db.database_url(settings.database_url, settings.data_dir) as url:
        conn = await asyncpg.connect(url, timeout=settings.db_timeout_seconds)
        try:
            if migrate:
                await migrations.migrate(conn)
            await db.set_actor(conn, cli_actor())
            yield conn
        finally:
            await conn.close()


def run_db(settings: Settings, work: Callable[[asyncpg.Connection], Any], *, migrate: bool = True) -> Any:
    async def main() -> Any:
        async with database(settings, migrate=migrate) as conn:
            return await work(conn)

    return asyncio.run(main())
