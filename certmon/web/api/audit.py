"""The audit trail: every write, who made it and when, with the rows before and after (docs/audit.md)."""

from __future__ import annotations

from aiohttp import web

from certmon.core.audit import ACTIONS, KINDS, READERS
from certmon.core.errors import Invalid
from certmon.core.models import AuditPage
from certmon.store import audit
from certmon.web import appkeys
from certmon.web.api.common import Api, Param, aware_datetime, choice, connection, json_response, query

api = Api()
MAX_PAGE = 200  # an entry of a bulk upload carries all its rows
TIME = {"type": "string", "format": "date-time"}
PARAMS = (
    Param("actor", "who wrote: the whole actor (token:alice) or the name alone (alice)"),
    Param("table", "the table written, e.g. incidents, incident_events, agencies, api_tokens"),
    Param("kind", "the kind of entity written", {"enum": list(KINDS)}),
    Param("entity", "an entity's id: an incident id, an agency code, a token id, ..."),
    Param("action", "the statement", {"enum": list(ACTIONS)}),
    Param("since", "written at or after (RFC 3339 with offset)", TIME),
    Param("until", "written before (RFC 3339 with offset)", TIME),
    Param("limit", f"page size, 1-{MAX_PAGE} (default 50)", {"type": "integer"}),
    Param("cursor", "next_cursor of the previous page"),
)


def short_text(raw: str) -> str:
    if len(raw) > 200:
        raise ValueError("must be at most 200 characters")
    return raw


def page_size(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be a whole number between 1 and {MAX_PAGE}") from None
    if not 1 <= value <= MAX_PAGE:
        raise ValueError(f"must be between 1 and {MAX_PAGE}")
    return value


@api.operation(
    "GET",
    "/api/v1/audit",
    summary="The audit trail, newest first: who wrote what and when, with the rows before and after",
    roles=READERS,
    response=AuditPage,
    params=PARAMS,
)
async def list_audit(request: web.Request) -> web.Response:
    where = audit.Filters(
        actor=query(request, "actor", short_text),
        table=query(request, "table", short_text),
        kind=query(request, "kind", choice(*KINDS)),
        entity=query(request, "entity", short_text),
        action=query(request, "action", choice(*ACTIONS)),
        since=query(request, "since", aware_datetime),
        until=query(request, "until", aware_datetime),
    )
    if where.since is not None and where.until is not None and where.until <= where.since:
        raise Invalid("until", "must be later than since")
    limit = query(request, "limit", page_size) or 50
    cursor = query(request, "cursor")
    after = audit.decode_cursor(cursor) if cursor else None
    async with connection(request) as conn:
        rows, last = await audit.page(conn, request.app[appkeys.QUERIES], where, after, limit)
    items = [audit.entry_json(r) for r in rows]
    return json_response({"items": items, "next_cursor": None if last is None else audit.encode_cursor(last)})
