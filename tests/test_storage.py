"""Migrations, the schema they produce, and what the service does when the database goes away."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from certmon.store import db, migrations
from tests.conftest import Api


async def test_all_migrations_apply_to_an_empty_database_once(empty_database_url: str) -> None:
    """Every migration applies in order to an empty database, is recorded, and a second run applies nothing."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = [m.version for m in await migrations.migrate(conn)]
        assert applied == [m.version for m in migrations.migrations()]
        assert await migrations.migrate(conn) == []
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == applied
        tables = {
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"agencies", "agency_networks", "api_tokens", "incidents", "incident_events"} <= tables
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'"
        )
        assert columns == [], "every time is timestamptz"
    finally:
        await conn.close()


async def test_two_replicas_migrating_together_do_not_race(empty_database_url: str) -> None:
    """Concurrent start-ups serialize on the advisory lock: one applies, the other finds nothing to do."""
    conns = [await asyncpg.connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(migrations.migrations())]
    finally:
        for c in conns:
            await c.close()


async def test_queries_files_parse_into_named_blocks() -> None:
    """Every named query loads, and the ones the code relies on are present."""
    q = db.Queries.load()
    for name in ("incident_insert", "incident_page", "sla_figures", "token_by_hash", "agency_list"):
        assert name in q
        assert q[name].strip()


async def test_database_outage_gives_503_with_retry_after_then_recovers(make_api: Any, server_url: str) -> None:
    """While the database refuses connections, API calls get 503 + Retry-After; when it is back, 200 again."""
    api: Api = await make_api(token_cache_seconds=60)
    assert (await api.call("GET", "/api/v1/incidents"))[0] == 200
    admin = await asyncpg.connect(server_url)
    dbname = urlsplit(api.database_url).path.lstrip("/")
    try:
        await admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            dbname,
        )
        for path in ("/api/v1/incidents", "/api/v1/sla?period=2021-08", "/readyz"):
            async with api.client.get(path, headers=api.headers("admin")) as response:
                body = await response.json(content_type=None)
                assert response.status == 503, (path, body)
                assert response.headers["Retry-After"] == "5"
                assert body["title"] == "Service unavailable"
                assert "Traceback" not in str(body)
    finally:
        await admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    status, _ = await api.call("GET", "/api/v1/incidents")
    assert status == 200


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


async def test_bulk_key_lookup_probes_the_unique_index_on_a_large_table(conn: asyncpg.Connection) -> None:
    """The keys of a bulk chunk are looked up by index, not by scanning every stored incident for each chunk."""
    await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry of Finance', 'government')")
    await conn.execute(
        "INSERT INTO incidents (agency_code, title, severity, category, source, external_id, detected_at,"
        " policy_hash, created_by)"
        " SELECT 'MOF', 'alert', 'high', 'malicious-code/c2-server', 'sensor', 'stored-' || n,"
        " now() - n * interval '1 minute', 'p', 'test' FROM generate_series(1, 20000) AS n"
    )
    await conn.execute("ANALYZE incidents")
    asked = [f"stored-{n}" for n in range(1, 1001, 2)] + [f"new-{n}" for n in range(500)]
    query = db.Queries.load()["incident_keys_taken"]
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", ["sensor"] * len(asked), asked)
    nodes = _plan_nodes(json.loads(plan)[0]["Plan"])
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "incidents"]
    found = await conn.fetch(query, ["sensor"] * len(asked), asked)
    assert sorted(r["external_id"] for r in found) == sorted(a for a in asked if a.startswith("stored-"))


async def test_bulk_writes_let_postgresql_reuse_plans_that_filter_queries_replan(database_url: str) -> None:
    """A filter query plans for its parameters, but not the per-row foreign-key checks of a later bulk write."""
    pool = await db.create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await conn.fetch(db.Queries.load()["agency_list"], None)
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
            async with db.bulk_transaction(conn):
                assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await pool.close()
