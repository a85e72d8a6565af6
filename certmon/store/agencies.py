"""Monitored agencies in PostgreSQL: their names, sector and registered networks."""

from __future__ import annotations

from typing import Any

import asyncpg

from certmon.core.errors import Conflict, NotFound
from certmon.core.models import AgencyIn
from certmon.store.db import Queries


def agency_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        key: row[key] for key in ("code", "name", "name_th", "sector", "cii", "networks", "created_at", "updated_at")
    }


async def fetch_agency(conn: asyncpg.Connection, q: Queries, code: str) -> dict[str, Any]:
    rows = await conn.fetch(q["agency_list"], code)
    if not rows:
        raise NotFound(f"no agency {code!r}")
    return agency_json(rows[0])


async def save_agency(conn: asyncpg.Connection, q: Queries, agency: AgencyIn, *, create: bool) -> dict[str, Any]:
    async with conn.transaction():
        values = (agency.code, agency.name, agency.name_th, agency.sector, agency.cii)
        done = await conn.fetchval(q["agency_insert" if create else "agency_update"], *values)
        if done is None:
            raise (
                Conflict(f"agency {agency.code!r} exists already") if create else NotFound(f"no agency {agency.code!r}")
            )
        await conn.execute(q["agency_networks_delete"], agency.code)
        await conn.execute(q["agency_networks_insert"], agency.code, agency.networks)
        return await fetch_agency(conn, q, agency.code)
