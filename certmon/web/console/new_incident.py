"""Recording a new incident from the console: the agency found by typing, RSIT category and TLP picked from lists."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import groupby
from typing import Any

import pydantic
from aiohttp import web

from certmon.core.errors import Conflict, Invalid
from certmon.core.models import IncidentIn
from certmon.core.taxonomy import TLP_LABELS, rsit_names
from certmon.store import console, incidents
from certmon.telemetry.registry import source_label
from certmon.web import appkeys
from certmon.web.api.common import connection, now, validation_problem
from certmon.web.console import locale
from certmon.web.console.messages import label
from certmon.web.console.queue import agency_names
from certmon.web.console.rendering import WRITERS, explained, lang_of, page, see_other, signed_in

SOURCE = "console"  # what the incidents recorded here carry as their source


def categories() -> list[tuple[str, list[tuple[str, str]]]]:
    """RSIT types grouped by class, as (class name, [(class/type, type name)])."""
    names = rsit_names()
    pairs = sorted((code, names[code]) for code in names if "/" in code)
    grouped = []
    for cls, members in groupby(pairs, key=lambda p: p[1].partition(": ")[0]):
        grouped.append((cls, [(code, name.partition(": ")[2] or name) for code, name in members]))
    return grouped


async def _form_context(request: web.Request, values: Mapping[str, str]) -> dict[str, Any]:
    app = request.app
    lang = lang_of(request)
    policy = app[appkeys.POLICY]
    async with connection(request) as conn:
        agencies = await console.agencies(conn, app[appkeys.QUERIES])
    return {
        "agencies": [agency_names(a["code"], a["name"], a["name_th"], lang) for a in agencies],
        "categories": categories(),
        "tlps": TLP_LABELS,
        "severities": [(s, label(lang, "severity", s)) for s in policy.severities],
        "values": {"detected_at": locale.input_value(now(request), policy.tz), "severity": "medium", **values},
    }


async def new_incident_form(request: web.Request) -> web.Response:
    signed_in(request).require(*WRITERS)
    return page(request, "new_incident.html", await _form_context(request, {}), active="new")


def incident_of(form: Mapping[str, str], request: web.Request) -> IncidentIn:
    tz = request.app[appkeys.POLICY].tz
    raw = form.get("detected_at", "")
    if not raw.strip():
        raise Invalid("detected_at", "is required")
    try:
        detected = locale.parse_local(raw, tz)
    except ValueError as exc:
        raise Invalid("detected_at", str(exc)) from None
    fields = {
        "agency": form.get("agency", "").strip().upper(),
        "title": form.get("title", ""),
        "severity": form.get("severity", ""),
        "category": form.get("category", ""),
        "detected_at": detected,
        "source": SOURCE,
        "external_id": form.get("external_id", "").strip() or None,
        "tlp": form.get("tlp") or None,
        "description": form.get("description", "").strip() or None,
    }
    try:
        return IncidentIn.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise validation_problem(exc) from None


async def create_incident(request: web.Request) -> web.Response:
    caller = signed_in(request)
    caller.require(*WRITERS)
    app = request.app
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str) and k != "csrf"}
    try:
        data = incident_of(form, request)
        async with connection(request) as conn:
            row, created, _ = await incidents.create(conn, app[appkeys.QUERIES], app[appkeys.POLICY], data, caller.name)
    except (Invalid, Conflict) as exc:
        context = await _form_context(request, form)
        context["error"] = explained(request, exc)
        return page(request, "new_incident.html", context, status=exc.status, active="new")
    if created:
        app[appkeys.METRICS].ingested.labels(source=source_label(SOURCE)).inc()
    return see_other(f"/incidents/{row['id']}?done=created")
