"""The fiscal-year KPI report over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from certmon.core import fiscal_report
from certmon.core.access import READ_ALL
from certmon.core.errors import Invalid
from certmon.core.models import RECOMPUTING, RecomputingOut
from certmon.core.periods import MAX_FISCAL_YEAR_BE
from certmon.store import fiscal_kpis
from certmon.web import appkeys
from certmon.web.api.common import Api, Param, choice, connection, json_response, now, query

api = Api()
FORMATS = ("json", "csv", "xlsx", "pdf")


class KpiOut(BaseModel):
    id: str
    kpi_th: str
    kpi_en: str
    target: float | None
    result: float | None
    status: str | None
    basis: dict[str, Any]


class FiscalReport(BaseModel):
    fiscal_year: int
    quarter: int | None
    period: str
    window: dict[str, str]
    evaluated_at: str | None
    kpis: list[KpiOut]
    objective: dict[str, str]
    method: dict[str, Any]
    sectors: list[dict[str, Any]]
    agencies: list[dict[str, Any]]
    sources: dict[str, Any]
    lang: str
    recomputing: RecomputingOut | None = Field(description=RECOMPUTING)


@api.operation(
    "GET",
    "/api/v1/reports/fiscal",
    summary="KPI report of a Thai fiscal year, or cumulative to the end of one of its quarters",
    roles=READ_ALL,
    response=FiscalReport,
    media=tuple(fiscal_report.MEDIA[f] for f in FORMATS),
    params=(
        Param(
            "fy",
            "fiscal year in Buddhist Era, e.g. 2564 (Oct 2020 - Sep 2021); FY2513 is the first to end after 1970",
            {"type": "integer", "minimum": 2513, "maximum": MAX_FISCAL_YEAR_BE, "examples": [2564]},
            True,
        ),
        Param(
            "quarter",
            "1-4: cumulative from 1 October to the end of this quarter",
            {"type": "integer", "enum": [1, 2, 3, 4]},
        ),
        Param("lang", "language of csv, xlsx and pdf; json carries both", {"enum": list(fiscal_report.LANGS)}),
        Param("format", "json (default), csv, xlsx or pdf (A4, the government's form)", {"enum": list(FORMATS)}),
    ),
)
async def fiscal(request: web.Request) -> web.Response:
    app = request.app
    policy = app[appkeys.POLICY]
    fy = query(request, "fy", fiscal_report.parse_fiscal_year)
    if fy is None:
        raise Invalid("fy", "is required, e.g. 2564")
    quarter = query(request, "quarter", choice("1", "2", "3", "4"))
    lang = query(request, "lang", choice(*fiscal_report.LANGS)) or "th"
    fmt = query(request, "format", choice(*FORMATS)) or "json"
    assert isinstance(fy, int)
    async with connection(request) as conn:
        report = await fiscal_kpis.build(
            conn, app[appkeys.QUERIES], policy, fy, None if quarter is None else int(quarter), now(request)
        )
    if fmt == "json":
        return json_response({**report, "lang": lang, "recomputing": app[appkeys.RECOMPUTE].status.answer()})
    language: fiscal_report.Lang = "en" if lang == "en" else "th"
    # A PDF is a second of CPU; every format renders in a worker process (or a thread), never on the event loop.
    executor = app[appkeys.PARSER]
    data = await asyncio.get_running_loop().run_in_executor(executor, fiscal_report.render, report, fmt, language)
    content_type, _, charset = fiscal_report.MEDIA[fmt].partition("; charset=")
    name = f"certmon-FY{fy}" + (f"-Q{quarter}" if quarter else "") + f"-{lang}.{fmt}"
    response = web.Response(body=data, content_type=content_type, charset=charset or None)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
