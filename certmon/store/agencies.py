"""Monitored agencies in PostgreSQL: their names, sector, registered networks, and whom certmon notifies."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from certmon.core.errors import Conflict, Invalid, NotFound
from certmon.core.models import AgencyIn
from certmon.store.db import Queries


def agency_json(row: asyncpg.Record) -> dict[str, Any]:
    """An agency as the API shows it: its webhook's URL and whether a secret is set, never the secret."""
    out = {key: row[key] for key in ("code", "name", "name_th", "sector", "cii", "networks")}
    out["contacts"] = json.loads(row["contacts"])
    out["webhook"] = (
        None if row["webhook_url"] is None else {"url": row["webhook_url"], "secret_set": row["webhook_secret_set"]}
    )
    return {**out, "created_at": row["created_at"], "updated_at": row["updated_at"]}


async def fetch_agency(conn: asyncpg.Connection, q: Queries, code: str) -> dict[str, Any]:
    rows = await conn.fetch(q["agency_list"], code)
    if not rows:
        raise NotFound(f"no agency {code!r}")
    return agency_json(rows[0])


async def save_agency(conn: asyncpg.Connection, q: Queries, agency: AgencyIn, *, create: bool) -> dict[str, Any]:
    contacts = json.dumps([c.model_dump() for c in agency.contacts], ensure_ascii=False)
    webhook = agency.webhook
    values = (
        *(agency.code, agency.name, agency.name_th, agency.sector, agency.cii, contacts),
        *((None, None) if webhook is None else (webhook.url, webhook.secret)),
    )
    async with conn.transaction():
        try:
            done = await conn.fetchval(q["agency_insert" if create else "agency_update"], *values)
        except asyncpg.CheckViolationError as exc:
            if exc.constraint_name != "agencies_webhook_whole":
                raise
            raise Invalid("webhook.secret", "is required: no secret is stored for this agency's webhook") from None
        if done is None:
            raise (
                Conflict(f"agency {agency.code!r} exists already") if create else NotFound(f"no agency {agency.code!r}")
            )
        await conn.execute(q["agency_networks_delete"], agency.code)
        await conn.execute(q["agency_networks_insert"], agency.code, agency.networks)
        return await fetch_agency(conn, q, agency.code)
