"""Alerts from sensors and monitoring: Alertmanager webhooks, Suricata EVE and Wazuh bodies, unmatched alerts."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from certmon.core.access import READ_ALL
from certmon.core.errors import Forbidden, Invalid
from certmon.core.sources import eve, wazuh
from certmon.core.sources.mapping import IngestMapping
from certmon.core.sources.records import CHUNK_BYTES
from certmon.store import alertmanager
from certmon.store.grouping import Convert, Pipeline
from certmon.web import appkeys
from certmon.web.api.common import (
    LIMIT_SCHEMA,
    Api,
    Param,
    connection,
    json_response,
    now,
    page_limit,
    principal,
    query,
    read_model,
)
from certmon.web.deadlines import streamed

api = Api()
WRITERS = ("admin", "analyst")
SAMPLE_LIMIT = 100


class IngestResult(BaseModel):
    source: str
    records: int
    alerts: int
    duplicates: int
    incidents_created: int
    alerts_added: int
    unmatched: int
    unmatched_samples: list[dict[str, Any]]
    skipped: dict[str, int]
    rejected_count: int
    rejected: list[dict[str, Any]]
    incidents: list[dict[str, Any]]


class AlertmanagerResult(BaseModel):
    received: int
    created: int
    resolved: int
    unchanged: int
    unmatched: int
    rejected: int
    alerts: list[dict[str, Any]]


class UnmatchedReport(BaseModel):
    groups: list[dict[str, Any]]
    samples: list[dict[str, Any]]


@api.operation(
    "POST",
    "/api/v1/ingest/alertmanager",
    summary="Prometheus Alertmanager webhook (version 4): firing alerts become incidents, resolved ones resolve them",
    roles=WRITERS,
    body=alertmanager.Webhook,
    response=AlertmanagerResult,
    responses={422: "not an Alertmanager version 4 webhook body"},
)
async def alertmanager_webhook(request: web.Request) -> web.Response:
    caller = principal(request)
    hook = await read_model(request, alertmanager.Webhook, alertmanager.MAX_BODY_BYTES)
    app = request.app
    async with connection(request) as conn:
        result = await alertmanager.receive(
            conn, app[appkeys.QUERIES], app[appkeys.POLICY], app[appkeys.INGEST_MAPPING].alertmanager, hook, caller.name
        )
    invalid = {"invalid": result.rejected} if result.rejected else {}
    app[appkeys.METRICS].count_imported(alertmanager.SOURCE, result.created, result.unmatched, invalid)
    return json_response(result.as_json())


HISTORY = Param(
    "history",
    "true: old alerts, imported as history (admin only): their clocks past due are closed as misses, so they count in "
    "their months' figures but are never open, queued, swept or notified",
    {"type": "boolean"},
)


def boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError("must be true or false")
    return raw == "true"


async def _stream(request: web.Request, source: str, convert: Convert, m: IngestMapping) -> web.Response:
    streamed(request)  # any size, at the pace of the inserts: only a pause in the body is cut short
    caller = principal(request)
    app = request.app
    history = query(request, "history", boolean) or False
    if history and caller.role != "admin":
        raise Forbidden("only an admin's token may import history (history=true)")
    async with connection(request) as conn:
        pipeline = Pipeline(
            conn,
            app[appkeys.QUERIES],
            app[appkeys.POLICY],
            source=source,
            convert=convert,
            window=m.window,
            actor=caller.name,
            remember=m.remember,
            history_at=now(request) if history else None,
        )
        try:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                await pipeline.feed(chunk)
            outcome = await pipeline.finish()
        finally:
            await pipeline.cancel()
    app[appkeys.METRICS].count_imported(outcome.source, outcome.incidents_created, outcome.unmatched, outcome.reasons)
    return json_response(outcome.as_json())


STREAM_RESPONSES = {
    200: "every record is accounted for: incidents, duplicates, unmatched, skipped or rejected",
    403: "outside the token's role, or history=true from a token that is not an admin's",
}
STREAM_MEDIA = ("application/x-ndjson", "application/json")
# Records as the sensor writes them; one that is not an alert is counted as skipped or rejected, not refused.
RECORDS = {"type": "array", "items": {"type": "object"}}


@api.operation(
    "POST",
    "/api/v1/ingest/eve",
    summary="Suricata EVE alerts, NDJSON as eve-log writes them or a JSON array; streamed, any size",
    roles=WRITERS,
    body_media=STREAM_MEDIA,
    body_schema=RECORDS,
    streamed=True,
    response=IngestResult,
    params=(HISTORY,),
    responses=STREAM_RESPONSES,
)
async def ingest_eve(request: web.Request) -> web.Response:
    m = request.app[appkeys.INGEST_MAPPING]
    return await _stream(request, eve.SOURCE, eve.converter(m.eve), m)


@api.operation(
    "POST",
    "/api/v1/ingest/wazuh",
    summary="Wazuh alerts, one JSON object a line as in alerts.json (or a JSON array); streamed, any size",
    roles=WRITERS,
    body_media=STREAM_MEDIA,
    body_schema=RECORDS,
    streamed=True,
    response=IngestResult,
    params=(HISTORY,),
    responses=STREAM_RESPONSES,
)
async def ingest_wazuh(request: web.Request) -> web.Response:
    m = request.app[appkeys.INGEST_MAPPING]
    return await _stream(request, wazuh.SOURCE, lambda record: wazuh.to_alert(record, m.wazuh), m)


@api.operation(
    "GET",
    "/api/v1/ingest/unmatched",
    summary="Alerts no agency network matched: counts by source and reason, and the latest samples",
    roles=READ_ALL,
    response=UnmatchedReport,
    params=(
        Param("source", "suricata, wazuh or alertmanager", {"enum": [eve.SOURCE, wazuh.SOURCE, alertmanager.SOURCE]}),
        Param("limit", "samples, 1-1000 (default 100)", LIMIT_SCHEMA),
    ),
)
async def unmatched(request: web.Request) -> web.Response:
    source = query(request, "source")
    limit = query(request, "limit", page_limit) or SAMPLE_LIMIT
    if source is not None and source not in (eve.SOURCE, wazuh.SOURCE, alertmanager.SOURCE):
        raise Invalid("source", f"must be one of {eve.SOURCE}, {wazuh.SOURCE}, {alertmanager.SOURCE}")
    q = request.app[appkeys.QUERIES]
    async with connection(request) as conn:
        groups = await conn.fetch(q["unmatched_summary"], source)
        samples = await conn.fetch(q["unmatched_samples"], source, limit)
    return json_response(
        {
            "groups": [dict(r) for r in groups],
            "samples": [{**dict(r), "sample": _json(r["sample"])} for r in samples],
        }
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
