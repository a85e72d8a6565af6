"""The incident page: its timeline, every objective's clock, and the forms that record what the analyst did.

Every form posts back here and is answered with a redirect to the page (so a reload never records twice); one the
store refuses (422, 409, 403, 502) is answered with the page itself, the refusal written at its top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import pydantic
from aiohttp import web
from multidict import MultiDictProxy

from certmon.core.access import Principal
from certmon.core.errors import BadGateway, CertmonError, Conflict, Forbidden, Invalid, NotFound
from certmon.core.models import AGENCY_EVENTS, CHANNELS, MILESTONES, EventIn
from certmon.core.sla import Clock
from certmon.core.taxonomy import rsit_names
from certmon.store import console, incidents
from certmon.web import appkeys
from certmon.web.api.common import connection, now, row_id, validation_problem
from certmon.web.api.notifications import notify_counted
from certmon.web.console import locale
from certmon.web.console.messages import Lang, label, text
from certmon.web.console.queue import agency_names
from certmon.web.console.rendering import WRITERS, explained, lang_of, page, see_other, signed_in
from certmon.web.console.timing import target_text, time_left

AGENCY_MILESTONES = tuple(m for m in MILESTONES if m in AGENCY_EVENTS)
NO_CLOCK = Clock(None, None, None, None, None)
DONE = ("recorded", "sent", "duplicate", "created")  # the outcomes a redirect may announce
LABEL_MILESTONES = frozenset({"detected", *MILESTONES})  # timeline entries named as milestones, not events
FormValues = Mapping[str, str]


def target_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    value = row_id(raw)
    if value is None:
        raise NotFound(f"no incident {raw!r}")
    return value


def recordable(caller: Principal, row: asyncpg.Record) -> list[str]:
    """The milestones the caller's role may record that are not recorded yet."""
    allowed = MILESTONES if caller.role in WRITERS else AGENCY_MILESTONES if caller.role == "agency" else ()
    return [m for m in allowed if row[f"{m}_at"] is None]


def _entry(entry: Mapping[str, Any], lang: Lang) -> dict[str, Any]:
    kind, milestone = entry["type"], entry["milestone"]
    if kind in ("correction", "reopened"):
        what = f"{label(lang, 'event', kind)}: {label(lang, 'milestone', milestone)}"
    elif kind in ("paused", "resumed") or kind not in LABEL_MILESTONES:
        what = label(lang, "event", kind)
    else:
        what = label(lang, "milestone", kind)
    note = entry["note"]
    if entry["id"] is None:
        note = text(lang, "incident.at_creation")
    return {
        "at": entry["at"],
        "what": what,
        "kind": kind,
        "previous_at": entry["previous_at"],
        "reason": entry["reason"],
        "note": note,
        "actor": entry["actor"],
        "recorded_at": entry["recorded_at"],
    }


async def incident_context(
    request: web.Request, incident_id: int, *, error: CertmonError | None = None, last: FormValues | None = None
) -> dict[str, Any]:
    app = request.app
    policy = app[appkeys.POLICY]
    lang = lang_of(request)
    caller = signed_in(request)
    instant = now(request)
    async with connection(request) as conn:
        view = await console.incident(conn, app[appkeys.QUERIES], incident_id, caller.scope(None))
    row = view.row
    body = incidents.to_json(row, policy, instant, list(view.events), view.clocks)
    clocks = []
    for name, objective in policy.objectives.items():
        stored = view.clocks.get(name)
        clock = NO_CLOCK if stored is None else incidents.stored_clock(stored)
        left = time_left(policy, row["severity"], name, clock, instant)
        known = row["severity"] in policy.severities
        key, amount = target_text(policy.rule(row["severity"], name).target_seconds) if known else ("minutes", 0)
        clocks.append(
            {
                "name": name,
                "label": objective.label_th if lang == "th" else objective.label_en,
                "kpi": name == policy.kpi_name,
                "state": body["objectives"][name]["state"],
                "state_label": label(lang, "state", body["objectives"][name]["state"]),
                "start": clock.start,
                "due_at": clock.due_at,
                "stopped_at": clock.stopped_at,
                "minutes": left.minutes,
                "urgency": left.urgency,
                "target": text(lang, key, n=amount) if known else "-",
            }
        )
    writer = caller.role in WRITERS
    recorded = ["detected", *(m for m in MILESTONES if row[f"{m}_at"] is not None)]
    if any(e["type"] == "paused" for e in view.events):
        recorded += ["paused", "resumed"]
    context: dict[str, Any] = {
        "incident": row,
        "agency": agency_names(view.agency["code"], view.agency["name"], view.agency["name_th"], lang),
        "reach": view.agency,
        "severity": label(lang, "severity", row["severity"]),
        "category_name": rsit_names().get(row["category"], row["category"]),
        "clocks": clocks,
        "timeline": [_entry(e, lang) for e in body["timeline"]],
        "open_pause": view.open_pause,
        "notifications": view.notifications,
        "recordable": recordable(caller, row),
        "correctable": recorded if writer else [],
        "can_manage": writer,
        "can_comment": writer or caller.role == "agency",
        "channels": CHANNELS,
        "now_value": locale.input_value(instant, policy.tz),
        "last": last or {},
    }
    done = request.query.get("done")
    if done in DONE:
        context["flash"] = text(lang, f"done.{done}")
    if error is not None:
        context["error"] = explained(request, error)
    return context


async def show_incident(request: web.Request) -> web.Response:
    incident_id = target_id(request)
    return page(request, "incident.html", await incident_context(request, incident_id), active="queue")


async def _refused(request: web.Request, incident_id: int, error: CertmonError, form: FormValues) -> web.Response:
    context = await incident_context(request, incident_id, error=error, last=form)
    return page(request, "incident.html", context, status=error.status, active="queue")


def _form_values(form: MultiDictProxy[Any]) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}


def event_of(form: FormValues, request: web.Request) -> EventIn:
    """The timeline event a form of the page asks for; Invalid naming the field when it cannot be one."""
    action = form.get("action", "")
    tz = request.app[appkeys.POLICY].tz
    fields: dict[str, Any] = {}
    if action == "now":
        fields = {"type": form.get("milestone")}
    elif action in ("at", "correction"):
        raw = form.get("at", "")
        if not raw.strip():
            raise Invalid("at", "is required")
        try:
            at = locale.parse_local(raw, tz)
        except ValueError as exc:
            raise Invalid("at", str(exc)) from None
        if action == "at":
            fields = {"type": form.get("milestone"), "at": at, "note": form.get("note") or None}
        else:
            fields = {"type": "correction", "milestone": form.get("milestone"), "at": at, "reason": _reason(form)}
    elif action in ("excluded", "paused"):
        fields = {"type": action, "reason": _reason(form)}
    elif action in ("included", "resumed", "reopened"):
        fields = {"type": action}
    elif action == "comment":
        note = (form.get("note") or "").strip()
        if not note:
            raise Invalid("note", "is required")
        fields = {"type": "comment", "note": note}
    else:
        raise Invalid("action", "must be one of now, at, correction, excluded, included, paused, resumed, comment")
    try:
        return EventIn.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise validation_problem(exc) from None


def _reason(form: FormValues) -> str:
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise Invalid("reason", "is required")
    return reason


async def record_event(request: web.Request) -> web.Response:
    caller = signed_in(request)
    caller.require(*WRITERS, "agency")
    incident_id = target_id(request)
    app = request.app
    form = _form_values(await request.post())
    try:
        event = event_of(form, request)
        async with connection(request) as conn:
            await incidents.add_event(
                conn,
                app[appkeys.QUERIES],
                app[appkeys.POLICY],
                incident_id,
                event,
                caller.name,
                now(request),
                agency=caller.scope(None),
            )
    except (Invalid, Conflict, Forbidden) as exc:
        return await _refused(request, incident_id, exc, form)
    return see_other(f"/incidents/{incident_id}?done=recorded")


async def notify_agency(request: web.Request) -> web.Response:
    """Notify the agency through the notifications code, as POST /api/v1/incidents/{id}/notifications does."""
    caller = signed_in(request)
    caller.require(*WRITERS)
    incident_id = target_id(request)
    form = _form_values(await request.post())
    channel = form.get("channel", "")
    try:
        if channel not in CHANNELS:
            raise Invalid("channel", f"must be one of {', '.join(CHANNELS)}")
        async with connection(request) as conn:
            resend = form.get("resend") == "1"
            outcome = await notify_counted(request, conn, incident_id, channel, caller.name, resend=resend)
        if outcome.kind == "failed":
            response = outcome.notification["response"]
            raise BadGateway(f"the {channel} notification was not accepted: {response}")
    except (Invalid, Conflict, BadGateway) as exc:
        return await _refused(request, incident_id, exc, form)
    return see_other(f"/incidents/{incident_id}?done={outcome.kind}")
