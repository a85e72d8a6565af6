"""Satisfaction surveys: the questionnaire, responses one by one or in bulk, and period summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from certmon.core import satisfaction
from certmon.core.access import READ_ALL, Principal
from certmon.core.errors import Forbidden, Invalid
from certmon.core.models import PERIOD_SCHEMA, BulkResult, from_policy
from certmon.core.periods import Period, parse_period
from certmon.core.satisfaction import ResponseIn
from certmon.store import bulk, surveys
from certmon.web import appkeys
from certmon.web.api.common import (
    LIMIT_SCHEMA,
    ROW_ID_SCHEMA,
    Api,
    Param,
    choice,
    connection,
    json_response,
    page_limit,
    principal,
    query,
    read_model,
    read_ndjson,
    row_id,
)
from certmon.web.api.incidents import AGENCY

api = Api()
WRITERS = ("admin", "analyst")
MAX_BULK_BYTES = 20_000_000  # 10,000 lines with comments of a few hundred bytes each


class SurveyList(BaseModel):
    scale: list[dict[str, Any]]
    services: list[dict[str, Any]]


class ResponseOut(BaseModel):
    id: int
    service: str
    agency: str | None
    submitted_at: datetime
    answers: dict[str, int]
    comment: str | None
    channel: str
    external_id: str | None
    created_at: datetime


class ResponsePage(BaseModel):
    items: list[ResponseOut]
    next_cursor: str | None


class SurveyFigures(BaseModel):
    key: str | None = None
    service: str | None = None
    question: str | None = None
    text_th: str | None = None
    text_en: str | None = None
    responses: int
    agencies: int | None = Field(description="null in question groups")
    answers: int
    mean_score: float | None
    satisfaction_percent: float | None
    top2_share: float | None
    band: satisfaction.Band | None
    target: float | None
    shortfall: float | None
    status: str | None


class SurveySummary(SurveyFigures):
    period: dict[str, str]
    service: str | None
    agency: str | None
    groups: list[SurveyFigures]


def _own_agency(caller: Principal, data: ResponseIn) -> ResponseIn:
    """An agency token answers for its own agency only."""
    if caller.role != "agency":
        return data
    if data.agency is not None and data.agency != caller.agency:
        raise Forbidden(f"token {caller.name!r} may only submit responses of agency {caller.agency}")
    return data.model_copy(update={"agency": caller.agency})


@api.operation(
    "GET",
    "/api/v1/surveys",
    summary="Surveyed services with their questions, targets and the 5-point scale",
    roles=(*READ_ALL, "agency"),
    response=SurveyList,
)
async def list_surveys(request: web.Request) -> web.Response:
    return json_response(satisfaction.services_json(request.app[appkeys.POLICY]))


@api.operation(
    "POST",
    "/api/v1/surveys/responses",
    summary="Record one survey response (idempotent on service + external_id)",
    roles=(*WRITERS, "agency"),
    body=ResponseIn,
    response=ResponseOut,
    status=201,
    responses={
        200: "the same response was recorded before",
        409: "the key exists with a different body",
        422: "a field is invalid: unknown service or question, answer outside 1-5",
    },
)
async def create_response(request: web.Request) -> web.Response:
    caller = principal(request)
    data = _own_agency(caller, await read_model(request, ResponseIn))
    app = request.app
    async with connection(request) as conn:
        row, created = await surveys.create(conn, app[appkeys.QUERIES], app[appkeys.POLICY], data, caller.name)
    return json_response(surveys.to_json(row), status=201 if created else 200)


@api.operation(
    "POST",
    "/api/v1/surveys/responses/bulk",
    summary="Record up to 10,000 survey responses from NDJSON, one per line",
    roles=WRITERS,
    body=ResponseIn,
    body_media="application/x-ndjson",
    response=BulkResult,
)
async def bulk_responses(request: web.Request) -> web.Response:
    caller = principal(request)
    lines = await read_ndjson(request, satisfaction.MAX_BULK_LINES, MAX_BULK_BYTES)
    app = request.app
    q = app[appkeys.QUERIES]
    outcome = bulk.BulkOutcome()
    async with connection(request) as conn:
        agencies = {r["code"] for r in await conn.fetch(q["agency_codes"])}
    # Validation holds no pooled connection: it takes a second or two for a full body.
    rows = await surveys.parse_bulk(lines, app[appkeys.POLICY], agencies, caller.name, outcome, app[appkeys.PARSER])
    async with connection(request) as conn:
        await surveys.store(conn, q, rows, outcome)
    return json_response(outcome.as_json())


def _period(request: web.Request, required: bool) -> Period | None:
    raw = request.query.get("period")
    if not raw:
        if required:
            raise Invalid("period", "is required, e.g. 2021-08, FY2564 or FY2564-Q4")
        return None
    try:
        return parse_period(raw, request.app[appkeys.POLICY].tz)
    except ValueError as exc:
        raise Invalid("period", str(exc)) from None


PERIOD_HELP = "2021-08, FY2564, FY2564-Q4 or 2021-08-01..2021-08-16 (end exclusive), Bangkok time"
SERVICE = Param("service", "a survey service of the policy", from_policy("survey_services"))


def _cursor(raw: str) -> int:
    value = row_id(raw)
    if value is None:
        raise ValueError("is not a cursor of this listing")
    return value


@api.operation(
    "GET",
    "/api/v1/surveys/responses",
    summary="List survey responses, newest first",
    roles=(*READ_ALL, "agency"),
    response=ResponsePage,
    params=(
        Param("period", PERIOD_HELP, PERIOD_SCHEMA),
        SERVICE,
        AGENCY,
        Param("limit", "page size, 1-1000 (default 100)", LIMIT_SCHEMA),
        Param("cursor", "next_cursor of the previous page", ROW_ID_SCHEMA),
    ),
)
async def list_responses(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    policy = app[appkeys.POLICY]
    period = _period(request, required=False)
    service = query(request, "service", choice(*policy.surveys.services))
    agency = caller.scope(query(request, "agency"))
    limit = query(request, "limit", page_limit) or 100
    after = query(request, "cursor", _cursor)
    async with connection(request) as conn:
        rows = await conn.fetch(
            app[appkeys.QUERIES]["survey_response_page"],
            None if period is None else period.start,
            None if period is None else period.end,
            service,
            agency,
            after,
            limit + 1,
        )
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return json_response({"items": [surveys.to_json(r) for r in page], "next_cursor": next_cursor})


@api.operation(
    "GET",
    "/api/v1/surveys/summary",
    summary="Satisfaction of a period: mean, mean / 5 * 100, top-2 share, Thai band and status against the target",
    roles=(*READ_ALL, "agency"),
    response=SurveySummary,
    params=(
        Param("period", PERIOD_HELP, PERIOD_SCHEMA, required=True),
        SERVICE,
        AGENCY,
        Param("group_by", "split the figures", {"enum": list(satisfaction.GROUPS)}),
    ),
)
async def summary(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    policy = app[appkeys.POLICY]
    period = _period(request, required=True)
    assert period is not None
    service = query(request, "service", choice(*policy.surveys.services))
    agency = caller.scope(query(request, "agency"))
    group_by = query(request, "group_by", choice(*satisfaction.GROUPS))
    async with connection(request) as conn:
        result = await surveys.summary(
            conn, app[appkeys.QUERIES], policy, period, service=service, agency=agency, group_by=group_by
        )
    return json_response(result)
