"""Plans: fixed statements keep PostgreSQL's cached plan; queries with optional filters are planned per call."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

from certmon.core.audit import Actor
from certmon.core.clocks import Clocks
from certmon.core.policy import load_policy
from certmon.store import db


def test_every_optional_filter_query_is_planned_per_call() -> None:
    q = db.Queries.load()
    per_call = q.planned_per_call()
    with_filters = {name for name in q.names() if re.search(r"IS\s+NULL\s+OR", q[name], re.IGNORECASE)}
    assert with_filters, "the incident list, the queue and the figures take optional filters"
    assert {name for name in with_filters if q[name] not in per_call} == set()
    assert q["incident_insert"] not in per_call


async def test_a_filter_query_switches_its_connection_until_release(database_url: str) -> None:
    q = db.Queries.load()
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with db.connection(pool) as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            await conn.fetchrow(q["incident_by_id"], 1)
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            await conn.fetch(q["agency_list"], "MOF")
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        # The only connection of the pool, handed out again after the pool's reset.
        async with db.connection(pool) as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    finally:
        await pool.close()


async def test_what_one_user_leaves_on_a_pooled_connection_the_next_does_not_inherit(database_url: str) -> None:
    """The pool skips its reset for a clean connection: the actor, plans and locks still never leak."""
    pool = await db.create_pool(database_url, min_size=1, max_size=1)
    writes = "INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')"
    try:
        async with db.connection(pool, actor=Actor("token:sensor", "analyst")) as conn:
            await conn.execute(writes, "A1")
        async with db.connection(pool, actor=Actor("token:sensor", "analyst")) as conn:
            await conn.execute(writes, "A2")
        async with db.connection(pool) as conn:
            await conn.execute(writes, "A3")
            # A session lock, as the exports take: the connection must give it back when it is released.
            assert await conn.fetchval("SELECT pg_try_advisory_lock(42)")
        other = await asyncpg.connect(database_url)
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock(42)"), "the lock outlived its user"
        finally:
            await other.close()
        async with db.connection(pool, actor=Actor("console:lead", "admin")) as conn:
            await conn.execute(writes, "A4")
            await conn.fetch(db.Queries.load()["agency_list"], "A4")
        async with db.connection(pool) as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
            actors = await conn.fetch(
                "SELECT actor, actor_role FROM audit_entries WHERE table_name = 'agencies' ORDER BY id"
            )
            assert [(r["actor"], r["actor_role"]) for r in actors] == [
                ("token:sensor", "analyst"),
                ("token:sensor", "analyst"),
                (f"db:{await conn.fetchval('SELECT session_user')}", None),
                ("console:lead", "admin"),
            ]
    finally:
        await pool.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def _explain(conn: asyncpg.Connection, query: str, *args: Any) -> tuple[list[dict[str, Any]], int]:
    """The plan's nodes as run, and the buffers it touched."""
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", *args))[0]["Plan"]
    return _nodes(plan), plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def _scans(nodes: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    return {(n["Node Type"], n.get("Index Name")) for n in nodes if n.get("Relation Name") == "incidents"}


async def test_stale_clocks_are_found_through_the_policy_index_without_reading_the_others(
    conn: asyncpg.Connection,
) -> None:
    """ "Is any stale?" is two index probes, and each recompute batch reads its rows, never every incident, even with
    statistics taken before the policy changed."""
    q = db.Queries.load()
    current = Clocks.of(load_policy(None)).fingerprint
    await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry of Finance', 'government')")
    await conn.execute(
        "INSERT INTO incidents (agency_code, title, severity, category, source, external_id, detected_at,"
        " policy_hash, created_by)"
        " SELECT 'MOF', 'alert', 'high', 'fraud/phishing', 'sensor', n::text, now() - n * interval '1 minute', $1,"
        " 'test' FROM generate_series(1, 20000) AS n",
        current,
    )
    await conn.execute("ANALYZE incidents")
    index = {("Index Only Scan", "incidents_policy")}
    nodes, touched = await _explain(conn, q["incidents_stale_probe"], current)
    assert _scans(nodes) <= index and touched < 20
    nodes, touched = await _explain(conn, q["incidents_stale_count"], current)
    assert _scans(nodes) <= index and touched < 20

    # Stale on both sides of the fingerprint in force, which the statistics do not know yet.
    await conn.execute(
        "UPDATE incidents SET policy_hash = CASE WHEN id % 2 = 0 THEN '0' ELSE 'g' END WHERE id % 10 < 2"
    )
    batch = 20
    async with conn.transaction():  # the batch queries lock what they read; rolled back here
        for query, after in (("incidents_stale_below", ("", 0)), ("incidents_stale_above", (current, 2**63 - 1))):
            nodes, touched = await _explain(conn, q[query], current, *after, batch)
            assert _scans(nodes) == {("Index Scan", "incidents_policy")}, query
            assert nodes[0]["Actual Rows"] == batch, query
            # The 16,000 incidents in force sit between both sides in the index: reading them would be hundreds.
            assert touched < 4 * batch, (query, touched)
