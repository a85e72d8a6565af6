"""Plans: fixed statements keep PostgreSQL's cached plan; queries with optional filters are planned per call."""

from __future__ import annotations

import re

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
