"""The SLA pages: this month and the fiscal year to date against the target, for the CERT (/sla) or one agency.

Every figure comes from store.compliance.report and store.surveys.summary, the functions behind /api/v1/sla and
/api/v1/surveys/summary, so the pages and the API cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from certmon.core.errors import NotFound
from certmon.core.periods import Period, current_month, fiscal_year_of, fiscal_year_to_date, months_in
from certmon.core.policy import Policy
from certmon.core.taxonomy import SECTORS
from certmon.store import compliance, console, surveys
from certmon.store.db import Queries
from certmon.web import appkeys
from certmon.web.api.common import connection, now
from certmon.web.console import charts, locale
from certmon.web.console.messages import Lang, label, text
from certmon.web.console.queue import agency_names
from certmon.web.console.rendering import lang_of, page, see_other, signed_in

WORST = 10  # agencies listed below target


def headline(report: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """A report's figures as the page prints them."""
    decided = report["met"] + report["breached"]
    open_count = report["pending"] + report["at_risk"] + report["paused"]
    return {
        "percent": locale.percent(report["compliance"]),
        "status": report["status"] or "none",
        "status_label": label(lang, "colour", report["status"]) if report["status"] else text(lang, "sla.no_data"),
        "met_of": text(lang, "sla.met_of", met=report["met"], decided=decided),
        "open": text(lang, "sla.open", n=open_count),
        "met": report["met"],
        "breached": report["breached"],
        "open_count": open_count,
        "decided": decided,
    }


async def _figures(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    instant: datetime,
    lang: Lang,
    agency: str | None,
) -> dict[str, Any]:
    month = current_month(instant, policy.tz)
    year = fiscal_year_to_date(instant, policy.tz)

    async def report(period: Period, **kw: Any) -> dict[str, Any]:
        return await compliance.report(conn, q, policy, period, instant, agency=agency, **kw)

    kpi_month = await report(month)
    kpi_year = await report(year, group_by="month")
    objectives = []
    for name, objective in policy.objectives.items():
        in_month = kpi_month if name == policy.kpi_name else await report(month, objective=name)
        in_year = kpi_year if name == policy.kpi_name else await report(year, objective=name)
        objectives.append(
            {
                "label": objective.label_th if lang == "th" else objective.label_en,
                "kpi": objective.kpi,
                "month": headline(in_month, lang),
                "year": headline(in_year, lang),
            }
        )
    by_month = {g["key"]: g for g in kpi_year["groups"]}
    trend_months = []
    for m in months_in(year):
        found = by_month.get(m.label)
        trend_months.append(
            (
                locale.month_name(m.label, lang, short=True),
                None if found is None else found["compliance"],
                None if found is None else found["status"],
            )
        )
    return {
        "month_label": locale.month_name(month.label, lang),
        "fiscal_year": fiscal_year_of(instant, policy.tz),
        "target_percent": f"{policy.compliance_target * 100:.1f}",
        "month": headline(kpi_month, lang),
        "year": headline(kpi_year, lang),
        "objectives": objectives,
        "chart": charts.trend(trend_months, policy.compliance_target),
        "trend": [(m[0], locale.percent(m[1]), label(lang, "colour", m[2]) if m[2] else "-") for m in trend_months],
        "kpi_label": policy.kpi.label_th if lang == "th" else policy.kpi.label_en,
        "satisfaction": await _satisfaction(conn, q, policy, year, lang, agency),
    }


async def _satisfaction(
    conn: asyncpg.Connection, q: Queries, policy: Policy, year: Period, lang: Lang, agency: str | None
) -> list[dict[str, Any]]:
    summary = await surveys.summary(conn, q, policy, year, agency=agency, group_by="service")
    services = policy.surveys.services
    rows = []
    for group in summary["groups"]:
        service = services.get(group["key"])
        name = group["key"] if service is None else (service.name_th if lang == "th" else service.name_en)
        rows.append(_satisfaction_row(name or group["key"], group, lang))
    if rows:
        rows.append(_satisfaction_row(text(lang, "sla.all_services"), summary, lang))
    return rows


def _satisfaction_row(name: str, figures: dict[str, Any], lang: Lang) -> dict[str, Any]:
    value = figures["satisfaction_percent"]
    return {
        "name": name,
        "responses": figures["responses"],
        "percent": "-" if value is None else f"{value:.1f}",
        "target": "-" if figures["target"] is None else f"{figures['target']:.1f}",
        "band": label(lang, "band", figures["band"]),
        "status": figures["status"] or "none",
        "status_label": label(lang, "colour", figures["status"]) if figures["status"] else "-",
    }


async def _groups(
    conn: asyncpg.Connection, q: Queries, policy: Policy, instant: datetime, group_by: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    month = current_month(instant, policy.tz)
    year = fiscal_year_to_date(instant, policy.tz)
    in_month = await compliance.report(conn, q, policy, month, instant, group_by=group_by)
    in_year = await compliance.report(conn, q, policy, year, instant, group_by=group_by)
    return {g["key"]: g for g in in_month["groups"]}, {g["key"]: g for g in in_year["groups"]}


async def show_sla(request: web.Request) -> web.Response:
    caller = signed_in(request)
    if caller.role == "agency":
        return see_other(f"/agencies/{caller.agency}")
    app = request.app
    policy = app[appkeys.POLICY]
    q = app[appkeys.QUERIES]
    lang = lang_of(request)
    instant = now(request)
    async with connection(request) as conn:
        figures = await _figures(conn, q, policy, instant, lang, None)
        agency_month, agency_year = await _groups(conn, q, policy, instant, "agency")
        sector_month, sector_year = await _groups(conn, q, policy, instant, "sector")
        names = {a["code"]: a for a in await console.agencies(conn, q)}
    below = [
        g for g in agency_month.values() if g["compliance"] is not None and g["compliance"] < policy.compliance_target
    ]
    below.sort(key=lambda g: (g["compliance"], -g["breached"], g["key"]))
    worst = []
    for g in below[:WORST]:
        a = names.get(g["key"])
        name, name_th = (g["key"], "") if a is None else (a["name"], a["name_th"])
        worst.append(
            {
                "code": g["key"],
                "names": agency_names(g["key"], name, name_th, lang),
                "month": headline(g, lang),
                "year": headline(agency_year[g["key"]], lang) if g["key"] in agency_year else None,
            }
        )
    sectors = []
    for sector in SECTORS:
        if sector not in sector_month and sector not in sector_year:
            continue
        sectors.append(
            {
                "name": label(lang, "sector", sector),
                "month": headline(sector_month[sector], lang) if sector in sector_month else None,
                "year": headline(sector_year[sector], lang) if sector in sector_year else None,
            }
        )
    context = {
        **figures,
        "worst": worst,
        "sectors": sectors,
        "agency": None,
        "title": text(lang, "sla.title"),
        "recomputing": app[appkeys.RECOMPUTE].status.remaining,
    }
    return page(request, "sla.html", context, active="sla")


async def show_agency(request: web.Request) -> web.Response:
    caller = signed_in(request)
    code = caller.scope(request.match_info["code"].upper())
    assert code is not None  # scope() of a given code is that code, or Forbidden
    app = request.app
    policy = app[appkeys.POLICY]
    q = app[appkeys.QUERIES]
    lang = lang_of(request)
    async with connection(request) as conn:
        found = await console.agency(conn, q, code)
        if found is None:
            raise NotFound(f"no agency {code!r}")
        figures = await _figures(conn, q, policy, now(request), lang, code)
    names = agency_names(code, found["name"], found["name_th"], lang)
    context = {
        **figures,
        "worst": [],
        "sectors": [],
        "agency": {**names, "sector": label(lang, "sector", found["sector"]), "cii": found["cii"]},
        "title": text(lang, "sla.agency_title", name=names["first"]),
        "recomputing": app[appkeys.RECOMPUTE].status.remaining,
    }
    return page(request, "sla.html", context, active="agency" if caller.role == "agency" else "sla")
