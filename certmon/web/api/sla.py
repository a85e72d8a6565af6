"""SLA compliance of a period."""

from __future__ import annotations

from aiohttp import web

from certmon.core.access import READ_ALL
from certmon.core.errors import Invalid
from certmon.core.models import PERIOD_SCHEMA, SlaReport, from_policy
from certmon.core.periods import parse_period
from certmon.core.taxonomy import SECTORS
from certmon.store import compliance
from certmon.web import appkeys
from certmon.web.api.common import Api, Param, choice, connection, json_response, now, principal, query
from certmon.web.api.incidents import AGENCY

api = Api()

PARAMS = (
    Param(
        "period",
        "2021-08, FY2564, FY2564-Q4 or 2021-08-01..2021-08-16 (end exclusive), Bangkok time",
        PERIOD_SCHEMA,
        required=True,
    ),
    AGENCY,
    Param("sector", "sector", {"enum": list(SECTORS)}),
    Param("severity", "a severity of the policy", from_policy("severities")),
    Param("group_by", "split the figures", {"enum": list(compliance.GROUPS)}),
    Param("objective", "an objective of the policy (default: the KPI's)", from_policy("objectives")),
)


@api.operation(
    "GET",
    "/api/v1/sla",
    summary="SLA compliance of a period against the target",
    roles=(*READ_ALL, "agency"),
    response=SlaReport,
    params=PARAMS,
)
async def sla_report(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    policy = app[appkeys.POLICY]
    raw_period = request.query.get("period")
    if not raw_period:
        raise Invalid("period", "is required, e.g. 2021-08, FY2564 or FY2564-Q4")
    try:
        period = parse_period(raw_period, policy.tz)
    except ValueError as exc:
        raise Invalid("period", str(exc)) from None
    agency = caller.scope(query(request, "agency"))
    sector = query(request, "sector", choice(*SECTORS))
    severity = query(request, "severity", choice(*policy.severities))
    group_by = query(request, "group_by", choice(*compliance.GROUPS))
    objective = query(request, "objective", choice(*policy.objectives))
    async with connection(request) as conn:
        result = await compliance.report(
            conn,
            app[appkeys.QUERIES],
            policy,
            period,
            now(request),
            agency=agency,
            sector=sector,
            severity=severity,
            group_by=group_by,
            objective=objective,
        )
    return json_response({**result, "recomputing": app[appkeys.RECOMPUTE].status.answer()})
