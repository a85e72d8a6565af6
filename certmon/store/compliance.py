"""SLA figures of a period from the database, grouped as asked; the API, metrics and exports share it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from certmon.core.periods import Period
from certmon.core.policy import Policy
from certmon.core.sla import Figures, shortfall, status_colour
from certmon.store import rollups
from certmon.store.db import Queries

GROUPS = ("agency", "sector", "severity", "month")


def figures_json(row: asyncpg.Record | Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    figures = Figures(
        total=row["total"],
        met=row["met"],
        breached=row["breached"],
        pending=row["pending"],
        at_risk=row["at_risk"],
        excluded=row["excluded"],
        no_clock=row["no_clock"],
        paused=row["paused"],
    )
    compliance = figures.compliance
    target = policy.compliance_target
    percentiles = row["delay_percentiles"] or [None, None, None]
    return {
        "total": figures.total,
        "met": figures.met,
        "breached": figures.breached,
        "pending": figures.pending,
        "at_risk": figures.at_risk,
        "excluded": figures.excluded,
        "no_clock": figures.no_clock,
        "paused": figures.paused,
        "compliance": compliance,
        "shortfall": shortfall(compliance, target),
        "status": status_colour(compliance, target, policy.green_max_shortfall, policy.yellow_max_shortfall),
        "latency_seconds": {
            "p50": percentiles[0],
            "p90": percentiles[1],
            "p95": percentiles[2],
            "max": row["delay_max"],
        },
    }


EMPTY = {
    "total": 0, "met": 0, "breached": 0, "pending": 0, "at_risk": 0, "excluded": 0, "no_clock": 0, "paused": 0,
    "delay_percentiles": None, "delay_max": None,
}  # fmt: skip


async def report(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    period: Period,
    now: datetime,
    *,
    agency: str | None = None,
    sector: str | None = None,
    severity: str | None = None,
    group_by: str | None = None,
    objective: str | None = None,
    exact: bool = False,
) -> dict[str, Any]:
    """The period's overall figures of an objective (the KPI's by default), plus one entry per group if asked.

    A period of whole months is read from the rollups, with delay quantiles within 1 %; other periods, and
    ``exact`` ones (the signed exports and the fiscal report keep percentile_cont's own figures), from every
    incident of the period. The KPI's clock is kept on the incidents row itself, so a scan reads it there; other
    objectives' from incident_clocks.
    """
    name = policy.kpi_name if objective is None else objective
    rolled = None
    if not exact:
        rolled = await rollups.report_rows(
            conn, q, policy, period, now, objective=name, agency=agency, sector=sector, severity=severity,
            group_by=group_by,
        )  # fmt: skip
    overall: asyncpg.Record | Mapping[str, Any] | None
    groups: Sequence[asyncpg.Record | Mapping[str, Any]]
    if rolled is not None:
        overall, groups = rolled
    else:
        overall, groups = await _scan(conn, q, policy, period, now, name, agency, sector, severity, group_by)
    names: dict[str, dict[str, str]] = {}
    if group_by == "agency":
        rows = await conn.fetch(q["agency_names"], [g["key"] for g in groups])
        names = {r["code"]: {"name": r["name"], "name_th": r["name_th"]} for r in rows}
    return {
        "objective": name,
        "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
        "target": policy.compliance_target,
        **figures_json(overall or EMPTY, policy),
        "groups": [{"key": g["key"], **names.get(g["key"], {}), **figures_json(g, policy)} for g in groups],
    }


async def _scan(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    period: Period,
    now: datetime,
    objective: str,
    agency: str | None,
    sector: str | None,
    severity: str | None,
    group_by: str | None,
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    args: tuple[Any, ...] = (period.start, period.end, now, agency, sector)
    tail: tuple[Any, ...] = (severity, policy.timezone)
    query = q["sla_figures"]
    if objective != policy.kpi_name:
        query, tail = q["sla_figures_objective"], (*tail, objective)
    overall = await conn.fetchrow(query, *args, "", *tail)
    groups = await conn.fetch(query, *args, group_by, *tail) if group_by else []
    return overall, groups
