"""Incidents, their timelines and bulk ingest."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from certmon.core.access import READ_ALL
from certmon.core.errors import BadRequest, Conflict, Invalid, NotFound
from certmon.core.models import (
    AGENCY_CODE,
    TIME_SCHEMA,
    BulkResult,
    EventIn,
    IncidentIn,
    IncidentOut,
    IncidentPage,
    from_policy,
)
from certmon.core.sla import SLA_STATES
from certmon.store import bulk, incidents
from certmon.telemetry.registry import source_label
from certmon.web import appkeys
from certmon.web.api import idempotency
from certmon.web.api.common import (
    LIMIT_SCHEMA,
    ROW_ID_SCHEMA,
    Api,
    Param,
    aware_datetime,
    choice,
    connection,
    json_response,
    now,
    page_limit,
    principal,
    query,
    read_model,
    read_ndjson,
    row_id,
)

api = Api()
WRITERS = ("admin", "analyst")
MAX_BULK_BYTES = 50_000_000  # 10,000 lines of a few KiB each
ID = Param("id", "incident id", ROW_ID_SCHEMA, required=True, where="path")


def incident_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    value = row_id(raw)
    if value is None:
        raise NotFound(f"no incident {raw!r}")
    return value


def _count(request: web.Request, source: str, accepted: int = 0, **rejected: int) -> None:
    """Ingest counters: accepted records, and refused ones by reason (invalid, conflict)."""
    metrics = request.app[appkeys.METRICS]
    label = source_label(source)
    if accepted:
        metrics.ingested.labels(source=label).inc(accepted)
    for reason, count in rejected.items():
        if count:
            metrics.rejected.labels(source=label, reason=reason).inc(count)


@api.operation(
    "POST",
    "/api/v1/incidents",
    summary="Record an incident (idempotent on source + external_id, or on an Idempotency-Key)",
    roles=WRITERS,
    body=IncidentIn,
    response=IncidentOut,
    status=201,
    params=(idempotency.PARAM,),
    responses={
        200: "the same incident was recorded before",
        409: "the key exists with a different body, or a request with the same Idempotency-Key is still being "
        "processed (retry after Retry-After seconds)",
        422: idempotency.RESPONSES[422],
    },
)
async def create_incident(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    policy = app[appkeys.POLICY]
    source = "api"
    try:
        data = await read_model(request, IncidentIn)
        source = data.source
        async with connection(request) as conn:

            async def record() -> web.Response:
                row, created, clocks = await incidents.create(conn, app[appkeys.QUERIES], policy, data, caller.name)
                _count(request, source, accepted=int(created))
                body = incidents.to_json(row, policy, now(request), clocks=clocks)
                return json_response(body, status=201 if created else 200)

            # An incident without external_id has no key of its own: a retry would record it twice without one.
            return await idempotency.once(request, conn, record)
    except (Invalid, BadRequest):
        _count(request, source, invalid=1)
        raise
    except Conflict:
        _count(request, source, conflict=1)
        raise


@api.operation(
    "POST",
    "/api/v1/incidents/bulk",
    summary="Record up to 10,000 incidents from NDJSON, one per line",
    roles=WRITERS,
    body=IncidentIn,
    body_media="application/x-ndjson",
    response=BulkResult,
)
async def bulk_incidents(request: web.Request) -> web.Response:
    caller = principal(request)
    lines = await read_ndjson(request, bulk.MAX_LINES, MAX_BULK_BYTES)
    app = request.app
    q = app[appkeys.QUERIES]
    async with app[appkeys.BULK_SLOTS], connection(request) as conn, connection(request) as lookup:
        agencies = {r["code"] for r in await lookup.fetch(q["agency_codes"])}
        outcome = await bulk.ingest(
            conn, lookup, q, app[appkeys.POLICY], agencies, caller.name, lines, app[appkeys.PARSER]
        )
    conflicts = sum(1 for r in outcome.rejected if r["error"].startswith("conflict:"))
    _count(request, "bulk", outcome.accepted, invalid=len(outcome.rejected) - conflicts, conflict=conflicts)
    return json_response(outcome.as_json())


@api.operation(
    "GET",
    "/api/v1/incidents/{id}",
    summary="One incident with its timeline",
    roles=(*READ_ALL, "agency"),
    response=IncidentOut,
    params=(ID,),
)
async def get_incident(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    q = app[appkeys.QUERIES]
    async with connection(request) as conn:
        row = await incidents.get(conn, q, incident_id(request), caller.scope(None))
        timeline = await conn.fetch(q["incident_events"], row["id"])
        clocks = (await incidents.clocks_for(conn, q, [row["id"]]))[row["id"]]
    return json_response(incidents.to_json(row, app[appkeys.POLICY], now(request), timeline, clocks))


@api.operation(
    "POST",
    "/api/v1/incidents/{id}/events",
    summary="Append a timeline event (an agency's token: acknowledged, contained, resolved or comment, its own)",
    roles=(*WRITERS, "agency"),
    body=EventIn,
    response=IncidentOut,
    status=201,
    params=(ID, idempotency.PARAM),
    responses={
        403: "an agency's token may record only its side",
        409: "the milestone is recorded already, or the pause is not open; or a request with the same "
        "Idempotency-Key is still being processed (retry after Retry-After seconds)",
        422: idempotency.RESPONSES[422],
    },
)
async def add_event(request: web.Request) -> web.Response:
    caller = principal(request)
    target = incident_id(request)
    event = await read_model(request, EventIn)
    app = request.app
    q = app[appkeys.QUERIES]
    policy = app[appkeys.POLICY]
    instant = now(request)
    async with connection(request) as conn:

        async def record() -> web.Response:
            agency = caller.scope(None)
            row = await incidents.add_event(conn, q, policy, target, event, caller.name, instant, agency=agency)
            timeline = await conn.fetch(q["incident_events"], row["id"])
            clocks = (await incidents.clocks_for(conn, q, [row["id"]]))[row["id"]]
            return json_response(incidents.to_json(row, policy, instant, timeline, clocks), status=201)

        return await idempotency.once(request, conn, record)


MAX_SEARCH = 200
_STATE = f"(?:{'|'.join(SLA_STATES)})"
AGENCY = Param("agency", "agency code", {"type": "string", "pattern": AGENCY_CODE.pattern})
LIST_PARAMS = (
    AGENCY,
    Param("severity", "a severity of the policy", from_policy("severities")),
    Param("state", "open or closed (resolved)", {"enum": ["open", "closed"]}),
    Param("sla", "the KPI's SLA state now; several joined by commas, e.g. at_risk,breached",
          {"type": "string", "pattern": f"^{_STATE}(?:,{_STATE})*$"}),
    Param("q", "text searched in the title and the external id (case-insensitive), up to 200 characters",
          {"type": "string", "maxLength": MAX_SEARCH}),
    Param("since", "detected at or after (RFC 3339)", TIME_SCHEMA),
    Param("until", "detected before (RFC 3339), later than since", TIME_SCHEMA),
    Param("sort", "order: -id (newest first, the default), id, due_at, -due_at, detected_at, -detected_at",
          {"enum": list(incidents.SORTS)}),
    Param("limit", "page size, 1-1000 (default 100)", LIMIT_SCHEMA),
    Param("cursor", "next_cursor of the previous page, with the same sort"),
)  # fmt: skip


def states(raw: str) -> list[str]:
    """One or several SLA states joined by commas."""
    given = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [state for state in given if state not in SLA_STATES]
    if unknown or not given:
        raise ValueError(f"{', '.join(unknown) or 'nothing'} is not a state; use {', '.join(SLA_STATES)}")
    return given


def search(raw: str) -> str:
    if len(raw) > MAX_SEARCH:
        raise ValueError(f"must be at most {MAX_SEARCH} characters")
    return raw


@api.operation(
    "GET",
    "/api/v1/incidents",
    summary="List incidents, newest first unless sorted otherwise",
    roles=(*READ_ALL, "agency"),
    response=IncidentPage,
    params=LIST_PARAMS,
)
async def list_incidents(request: web.Request) -> web.Response:
    caller = principal(request)
    app = request.app
    policy = app[appkeys.POLICY]
    agency = caller.scope(query(request, "agency"))
    severity = query(request, "severity", choice(*policy.severities))
    state = query(request, "state", choice("open", "closed"))
    sla_states = query(request, "sla", states)
    text = query(request, "q", search)
    since = query(request, "since", aware_datetime)
    until = query(request, "until", aware_datetime)
    sort = query(request, "sort", choice(*incidents.SORTS)) or "-id"
    limit = query(request, "limit", page_limit) or 100
    cursor = query(request, "cursor")
    after, after_key = incidents.decode_cursor(cursor, sort) if cursor else (None, None)
    if since is not None and until is not None and until <= since:
        raise Invalid("until", "must be later than since")
    instant = now(request)
    q = app[appkeys.QUERIES]
    filters = (agency, severity, state, sla_states, instant, since, until, after, limit + 1, text)
    async with connection(request) as conn:
        if sort == "-id":
            rows = await conn.fetch(q["incident_page"], *filters)
        else:
            by_time = "id" if sort == "id" else sort.lstrip("-")
            rows = await conn.fetch(
                q["incident_page_by_time"], *filters, by_time, not sort.startswith("-"), after_key or datetime.min
            )
        page = rows[:limit]
        clocks = await incidents.clocks_for(conn, q, [r["id"] for r in page])
    next_cursor = incidents.encode_cursor(page[-1], sort) if len(rows) > limit else None
    items = [incidents.to_json(r, policy, instant, clocks=clocks[r["id"]]) for r in page]
    return json_response({"items": items, "next_cursor": next_cursor})
