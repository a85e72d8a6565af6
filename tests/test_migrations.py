"""The schema the migrations build, kept as a reviewed snapshot, and what start-up does when a migration changed."""

from __future__ import annotations

import asyncio
import difflib
import os
import socket
import sys
from pathlib import Path

import asyncpg
import pytest

from certmon.cli import main as cli
from certmon.store import migrations

SNAPSHOT = Path(__file__).resolve().parent / "data" / "schema.txt"
UPDATE_VARIABLE = "CERTMON_UPDATE_SCHEMA"
REGENERATE = f"{UPDATE_VARIABLE}=1 pytest tests/test_migrations.py"

HEADER = f"""\
# The public schema of a freshly migrated certmon database, read from pg_catalog by tests/test_migrations.py.
# A migration that changes the schema changes this file in the same commit; regenerate it with:
#   {REGENERATE}
# Objects are sorted by name, columns are in table order. NOT NULL is shown on the column only (PostgreSQL 18 also
# lists it as a constraint), an index that backs a constraint only as that constraint, extensions without versions.
"""


def _block(text: str) -> list[str]:
    """A multi-line definition, indented under its heading, without trailing blanks."""
    return ["    " + line.rstrip() if line.strip() else "" for line in text.strip().splitlines()]


async def _table(conn: asyncpg.Connection, oid: int, name: str, persistence: str) -> list[str]:
    lines = [f"table {name}" + (" (unlogged)" if persistence == "u" else "")]
    for c in await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,"
        " a.attidentity::text AS attidentity, a.attgenerated::text AS attgenerated,"
        " pg_get_expr(d.adbin, d.adrelid) AS default"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        oid,
    ):
        line = f"    column {c['attname']} {c['type']}"
        if c["attnotnull"]:
            line += " not null"
        if c["attidentity"]:
            line += " generated " + {"a": "always", "d": "by default"}[c["attidentity"]] + " as identity"
        if c["attgenerated"]:
            line += f" generated always as ({c['default']}) stored"
        elif c["default"] is not None:
            line += f" default {c['default']}"
        lines.append(line)
    for r in await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = $1 AND contype <> 'n' ORDER BY conname",
        oid,
    ):
        lines.append(f"    constraint {r['conname']} {r['def']}")
    for r in await conn.fetch(
        "SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i WHERE i.indrelid = $1 AND NOT EXISTS"
        " (SELECT FROM pg_constraint k WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid)"
        " ORDER BY i.indexrelid::regclass::text",
        oid,
    ):
        lines.append(f"    {r['def']}")
    for r in await conn.fetch(
        "SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger"
        " WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname",
        oid,
    ):
        lines.append(f"    {r['def']}")
    return lines


async def schema_text(conn: asyncpg.Connection) -> str:
    """The public schema as sorted, readable text: equal schemas give equal text on PostgreSQL 15 to 18."""
    out = [HEADER.rstrip("\n"), ""]
    async with conn.transaction():
        await conn.execute("SET LOCAL search_path TO public")
        applied = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        out += [f"migration {r['version']:04d}_{r['name']}" for r in applied] + [""]
        extensions = await conn.fetch("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")
        out += [f"extension {r['extname']}" for r in extensions] + ([""] if extensions else [])
        for r in await conn.fetch(
            "SELECT t.typname, t.typtype::text AS typtype, t.typnotnull,"
            " format_type(t.typbasetype, t.typtypmod) AS base,"
            " (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
            "  FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,"
            " (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)"
            "  FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n') AS checks"
            " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') ORDER BY t.typname"
        ):
            if r["typtype"] == "e":
                out += [f"enum {r['typname']} ({r['labels']})", ""]
            else:
                checks = f" {r['checks']}" if r["checks"] else ""
                out += [f"domain {r['typname']} {r['base']}{' not null' if r['typnotnull'] else ''}{checks}", ""]
        relations = await conn.fetch(
            "SELECT c.oid, c.relname, c.relkind::text AS relkind, c.relpersistence::text AS relpersistence"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname"
        )
        for r in relations:
            if r["relkind"] in ("r", "p"):
                out += [*await _table(conn, r["oid"], r["relname"], r["relpersistence"]), ""]
        for r in relations:
            if r["relkind"] in ("v", "m"):
                kind = "view" if r["relkind"] == "v" else "materialized view"
                definition = await conn.fetchval("SELECT pg_get_viewdef($1::oid, true)", r["oid"])
                out += [f"{kind} {r['relname']}", *_block(definition), ""]
        sequences = await conn.fetch(
            "SELECT c.relname, format_type(s.seqtypid, NULL) AS type,"
            " (SELECT d.refobjid::regclass::text || '.' || a.attname FROM pg_depend d"
            "  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            "  WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid"
            "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owner"
            " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' ORDER BY c.relname"
        )
        for r in sequences:
            out.append(f"sequence {r['relname']} {r['type']}" + (f" owned by {r['owner']}" if r["owner"] else ""))
        out += [""] if sequences else []
        for r in await conn.fetch(
            "SELECT p.proname, p.prokind::text AS prokind, pg_get_function_identity_arguments(p.oid) AS args,"
            " CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS def"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND NOT EXISTS (SELECT FROM pg_depend d"
            "  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
            " ORDER BY p.proname, args"
        ):
            kind = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}[r["prokind"]]
            out += [f"{kind} {r['proname']}", *(_block(r["def"]) if r["def"] else [f"    ({r['args']})"]), ""]
    return "\n".join(out).rstrip("\n") + "\n"


async def test_migrated_schema_matches_the_committed_snapshot(conn: asyncpg.Connection) -> None:
    """The migrations build exactly the schema of tests/data/schema.txt, so every schema change is reviewed."""
    actual = await schema_text(conn)
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(actual, encoding="utf-8")
        return
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                "tests/data/schema.txt (committed)",
                "schema after migrations",
            )
        )
        pytest.fail(
            f"the migrated schema differs from tests/data/schema.txt; if the change is intended, regenerate it with "
            f"`{REGENERATE}` and commit it\n{diff}",
            pytrace=False,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_migration_edited_after_it_was_applied_stops_start_up(
    conn: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An applied migration whose file changed stops migrate, certmon migrate and certmon serve, naming the file."""
    await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(migrations.MigrationError, match=r"0001_core\.sql"):
        await migrations.migrate(conn)
    assert await conn.fetchval("SELECT checksum FROM schema_migrations WHERE version = 1") == "x", "left as found"

    for name in [n for n in os.environ if n.startswith("CERTMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CERTMON_DATABASE_URL", database_url)
    monkeypatch.setenv("CERTMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CERTMON_LOG_FORMAT", "json")
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["migrate"])  # the command runs its own event loop
    out, err = capsys.readouterr()
    assert code == 1
    assert "certmon: migration 0001_core.sql differs from the one applied" in err, err
    assert "applied migrations" not in out and "up to date" not in out

    env = {**os.environ, "CERTMON_PARSE_WORKERS": "0", "CERTMON_SCHEDULER": "off"}
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "certmon",
        "serve",
        "--port",
        str(_free_port()),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, serve_err = await asyncio.wait_for(serve.communicate(), timeout=60)
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    assert serve.returncode == 1, serve_err.decode()
    assert "certmon: migration 0001_core.sql differs" in serve_err.decode()
    assert "Traceback" not in serve_err.decode()
