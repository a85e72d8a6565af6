"""The fiscal-year KPI figures from the database: the SLA KPI of the compliance report, and satisfaction KPIs.

See certmon.core.fiscal_report for the window a report covers and how it is laid out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from certmon.core.export_content import evaluation_instant
from certmon.core.fiscal_report import SATISFACTION_KPIS, SLA_KPI, Window, percent, window_of
from certmon.core.periods import Period
from certmon.core.policy import Policy
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
    if not window.empty:
        covered = Period(window.period.label, window.start, window.end)
        # The report speaks of the KPI only: its clocks are all due long before the other objectives' are.
        evaluated_at = min(now, evaluation_instant(policy, covered, (policy.kpi_name,)))
        sla = await compliance.report(conn, q, policy, covered, evaluated_at)
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
