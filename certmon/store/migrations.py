"""Forward-only migrations, shipped in the wheel as ``certmon.sql/migrations/NNNN_name.sql``.

Each pending migration runs in the one transaction of ``migrate`` and is recorded in ``schema_migrations`` with the
SHA-256 of its text. An applied migration whose file has changed since stops start-up: the database was built from
other SQL than the one shipped, and continuing would let schema and code drift apart silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

import asyncpg
import structlog

from certmon.core.errors import CertmonError

LOCK_ID = 0x6365_7274_6D6F_6E01  # "certmon" + 1: serializes migrations across replicas

log = structlog.get_logger("certmon.db")


class MigrationError(CertmonError):
    status = 500
    title = "Migration error"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def sql_files(kind: str) -> list[Traversable]:
    """The ``*.sql`` files of ``migrations`` or ``queries`` in the installed package, by name."""
    directory = resources.files("certmon.sql").joinpath(kind)
    found = sorted((f for f in directory.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    if not found:
        raise MigrationError(f"no {kind} found in the installed package (certmon.sql/{kind}/*.sql): a broken install")
    return found


def migrations() -> list[Migration]:
    found = []
    for file in sql_files("migrations"):
        number, _, name = file.name.removesuffix(".sql").partition("_")
        found.append(Migration(int(number), name, file.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version")
    return found


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply pending migrations in one transaction; returns those applied. MigrationError if an applied one changed."""
    shipped = migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for m in shipped:
            if m.version in done and done[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.label}.sql differs from the one applied to this database "
                    f"(checksum {done[m.version][:12]}, shipped {m.checksum[:12]}); migrations are never edited "
                    "once released: restore the file and add a new migration instead"
                )
        applied = []
        for m in shipped:
            if m.version in done:
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            applied.append(m)
    if applied:
        log.info("migrations applied", versions=[m.version for m in applied])
    return applied
