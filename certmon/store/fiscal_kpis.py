"""The fiscal-year KPI figures from the database: the SLA KPI of the compliance report, and satisfaction KPIs.

See certmon.core.fiscal_report for the window a report covers and how it is laid out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from certmon.core import signing
from certmon.core.export_content import evaluation_instant, objective_rows, overall_counts
from certmon.core.fiscal_report import SATISFACTION_KPIS, SLA_KPI, Window, percent, window_of
from certmon.core.periods import Period, months_in
from certmon.core.policy import Policy
from certmon.core.reports.method import clock_rules
from certmon.core.reports.ranking import worst
from certmon.store import compliance, db, surveys


async def build(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    fiscal_year: int,
    quarter: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The KPI rows of a fiscal year or quarter (cumulative from 1 October), both languages' labels included."""
    window = window_of(policy, fiscal_year, quarter, now)
    kpis: list[dict[str, Any]] = []
    evaluated_at = None
    sla: dict[str, Any] = {"compliance": None, "status": None, "met": 0, "breached": 0}
    sectors: list[dict[str, Any]] = []
    agencies: list[dict[str, Any]] = []
    if not window.empty:
        covered = Period(window.period.label, window.start, window.end)
        # The report speaks of the KPI only: its clocks are all due long before the other objectives' are.
        evaluated_at = min(now, evaluation_instant(policy, covered, (policy.kpi_name,)))
        sla = await compliance.report(conn, q, policy, covered, evaluated_at, exact=True)
        sectors, agencies = await _groups(conn, q, policy, covered, evaluated_at)
    kpis.append(
        {
            "id": "sla-notify-1h",
            "kpi_th": SLA_KPI["th"],
            "kpi_en": SLA_KPI["en"],
            "target": percent(policy.compliance_target),
            "result": percent(sla["compliance"]),
            "status": sla["status"],
            "basis": {"met": sla["met"], "decided": sla["met"] + sla["breached"]},
        }
    )
    kpis += await _satisfaction_kpis(conn, q, policy, window)
    objective = policy.objectives[policy.kpi_name]
    return {
        "fiscal_year": fiscal_year,
        "quarter": quarter,
        "period": window.period.label,
        "window": {
            "start": window.start.astimezone(policy.tz).isoformat(),
            "end": window.end.astimezone(policy.tz).isoformat(),
            "label_th": window.label("th", policy),
            "label_en": window.label("en", policy),
        },
        "evaluated_at": None if evaluated_at is None else evaluated_at.astimezone(policy.tz).isoformat(),
        "kpis": kpis,
        "objective": {"name": policy.kpi_name, "label_th": objective.label_th, "label_en": objective.label_en},
        "method": {
            "timezone": policy.timezone,
            "green_max_shortfall": policy.green_max_shortfall,
            "yellow_max_shortfall": policy.yellow_max_shortfall,
            "clocks": clock_rules(objective_rows(policy), policy.kpi_name),
        },
        "sectors": sectors,
        "agencies": agencies,
        "sources": await _sources(conn, q, window, (sla["met"], sla["met"] + sla["breached"])),
    }


def _group(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = ("met", "breached", "pending", "excluded", "status")
    return {**{name: row[name] for name in fields}, "result": percent(row["compliance"])}


async def _groups(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, covered: Period, at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The KPI per sector, and the agencies with the lowest results, with their names."""
    by_sector = await compliance.report(conn, q, policy, covered, at, group_by="sector", exact=True)
    sectors = [{"sector": g["key"], **_group(g)} for g in by_sector["groups"]]
    by_agency = await compliance.report(conn, q, policy, covered, at, group_by="agency", exact=True)
    names = {r["code"]: r for r in await conn.fetch(q["export_agencies"])}
    agencies = []
    for g in worst(by_agency["groups"]):
        known = names.get(g["key"])
        agencies.append(
            {"code": g["key"], "name": known["name"] if known else None, "name_th": known["name_th"] if known else None,
             "sector": known["sector"] if known else None, **_group(g)}
        )  # fmt: skip
    return sectors, agencies


async def _sources(conn: asyncpg.Connection, q: db.Queries, window: Window, kpi: tuple[int, int]) -> dict[str, Any]:
    """The newest signed revision of each month in the window, what their figures.csv add up to, the months
    without one, and whether every month is signed and the revisions add up to the KPI's (met, decided)."""
    if window.empty:
        return {"revisions": [], "missing": [], "fingerprint": None, "met": 0, "decided": 0, "matches": None}
    revisions = []
    for row in await conn.fetch(q["export_latest_within"], window.start, window.end):
        met, breached = overall_counts(bytes(row["figures"]))
        revisions.append(
            {"month": row["month"], "revision": row["revision"],
             "manifest_sha256": hashlib.sha256(bytes(row["manifest"])).hexdigest(), "met": met,
             "decided": met + breached}
        )  # fmt: skip
    found = {r["month"] for r in revisions}
    months = [m.label for m in months_in(Period(window.period.label, window.start, window.end))]
    fingerprint = signing.revisions_fingerprint((r["month"], r["revision"], r["manifest_sha256"]) for r in revisions)
    missing = [m for m in months if m not in found]
    met, decided = sum(r["met"] for r in revisions), sum(r["decided"] for r in revisions)
    return {
        "revisions": revisions,
        "missing": missing,
        "fingerprint": fingerprint if revisions else None,
        "met": met,
        "decided": decided,
        "matches": (met, decided) == kpi if revisions and not missing else None,
    }


async def _satisfaction_kpis(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, window: Window
) -> list[dict[str, Any]]:
    """The two satisfaction KPIs once the surveys feature is present and a service has responses in the window."""
    if window.empty:
        return []
    services = policy.surveys.services
    covered = Period(window.period.label, window.start, window.end)
    rows = []
    for name, labels in SATISFACTION_KPIS.items():
        if name not in services:
            continue
        figures = await surveys.summary(conn, q, policy, covered, service=name)
        if not figures["responses"]:
            continue
        rows.append(
            {
                "id": f"satisfaction-{name}",
                "kpi_th": labels["th"],
                "kpi_en": labels["en"],
                "target": figures["target"],
                "result": figures["satisfaction_percent"],
                "status": figures["status"],
                "basis": {"responses": figures["responses"], "mean_score": figures["mean_score"]},
            }
        )
    return rows


# Command line
