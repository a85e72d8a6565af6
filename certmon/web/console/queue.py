"""The queue: every open clock, soonest due first, with the time it has left; and excluding several at once.

The page asks /queue/rows for its table body every few seconds (static/console.js), so new incidents and state
changes show without a reload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import pydantic
from aiohttp import web

from certmon.core.errors import Invalid
from certmon.core.models import EventIn
from certmon.core.policy import Policy
from certmon.core.sla import Clock
from certmon.core.taxonomy import SECTORS, rsit_names
from certmon.store import console, incidents
from certmon.store.console import QueueFilter
from certmon.web import appkeys
from certmon.web.api.common import connection, now, row_id, validation_problem
from certmon.web.console import locale
from certmon.web.console.messages import Lang, label, text
from certmon.web.console.rendering import WRITERS, frame, lang_of, page, see_other, signed_in
from certmon.web.console.timing import time_left
from certmon.web.pages import CONSOLE_HEADERS, render

OPEN_STATES = ("pending", "at_risk", "paused", "breached")
MAX_SEARCH = 200  # characters of the text search
MAX_BULK = 500  # incidents excluded in one go


def queue_filter(request: web.Request) -> QueueFilter:
    """The filters of the query string; a value the policy or the taxonomy does not know is a 422."""
    policy = request.app[appkeys.POLICY]
    query = request.query

    def pick(name: str, allowed: tuple[str, ...] | list[str]) -> str | None:
        raw = query.get(name) or None
        if raw is not None and raw not in allowed:
            raise Invalid(name, f"must be one of {', '.join(allowed)}")
        return raw

    states = tuple(dict.fromkeys(s for s in query.getall("state", []) if s))
    for state in states:
        if state not in OPEN_STATES:
            raise Invalid("state", f"must be one of {', '.join(OPEN_STATES)}")
    search = (query.get("q") or "").strip()[:MAX_SEARCH] or None
    if search is not None and "\x00" in search:
        raise Invalid("q", "must not contain NUL characters")
    agency = (query.get("agency") or "").strip().upper() or None
    return QueueFilter(
        agency=signed_in(request).scope(agency),
        sector=pick("sector", SECTORS),
        severity=pick("severity", list(policy.severities)),
        states=states,
        objective=pick("objective", list(policy.objectives)),
        text=search,
    )


def row_view(r: asyncpg.Record, policy: Policy, lang: Lang, now: datetime) -> dict[str, Any]:
    clock = Clock(r["clock_start"], r["at_risk_at"], r["due_at"], None, None, r["paused_seconds"], r["paused_since"])
    left = time_left(policy, r["severity"], r["objective"], clock, now)
    objective = policy.objectives.get(r["objective"])
    if objective is None:
        objective_label = r["objective"]
    else:
        objective_label = objective.label_th if lang == "th" else objective.label_en
    return {
        "id": r["incident_id"],
        "title": r["title"],
        "external_id": r["external_id"],
        "objective": r["objective"],
        "objective_label": objective_label,
        "state": r["state"],
        "state_label": label(lang, "state", r["state"]),
        "minutes": left.minutes,
        "urgency": left.urgency,
        "due_at": r["due_at"],
        "agency": agency_names(r["agency_code"], r["agency_name"], r["agency_name_th"], lang),
        "severity": label(lang, "severity", r["severity"]),
        "category": r["category"],
        "category_name": rsit_names().get(r["category"], r["category"]),
        "select_label": text(lang, "queue.select", id=r["incident_id"], objective=objective_label),
    }


def agency_names(code: str, name: str, name_th: str, lang: Lang) -> dict[str, str]:
    """An agency's names, the page's language first; the other is shown beside it."""
    thai = name_th or name
    return {
        "code": code,
        "first": thai if lang == "th" else name,
        "second": name if lang == "th" else thai,
        "first_lang": "th" if lang == "th" and name_th else "en",
        "second_lang": "en" if lang == "th" else ("th" if name_th else "en"),
    }


async def _queue_context(request: web.Request) -> dict[str, Any]:
    app = request.app
    policy = app[appkeys.POLICY]
    lang = lang_of(request)
    where = queue_filter(request)
    instant = now(request)
    async with connection(request) as conn:
        found = await console.queue(conn, app[appkeys.QUERIES], instant, where)
        agencies = await console.agencies(conn, app[appkeys.QUERIES])
    caller = signed_in(request)
    if caller.role == "agency":
        agencies = [a for a in agencies if a["code"] == caller.agency]
    return {
        "rows": [row_view(r, policy, lang, instant) for r in found.rows],
        "more": found.more,
        "limit": console.QUEUE_LIMIT,
        "counts": [(s, label(lang, "state", s), found.counts.get(s, 0)) for s in OPEN_STATES],
        "where": where,
        "agencies": [{"code": a["code"], **agency_names(a["code"], a["name"], a["name_th"], lang)} for a in agencies],
        "sectors": SECTORS,
        "severities": policy.severities,
        "objectives": [(k, o.label_th if lang == "th" else o.label_en) for k, o in policy.objectives.items()],
        "states": OPEN_STATES,
        "updated": locale.local_time(instant, lang, policy.tz, seconds=True),
        "refresh_seconds": app[appkeys.SETTINGS].console_refresh_seconds,
        "query_string": request.query_string,
    }


async def show_queue(request: web.Request) -> web.Response:
    context = await _queue_context(request)
    done = request.query.get("done")
    if done == "excluded":
        context["flash"] = text(lang_of(request), "done.excluded", n=request.query.get("n", "0"))
    return page(request, "queue.html", context, active="queue")


async def queue_rows(request: web.Request) -> web.Response:
    """The table body alone, for the page's refresh."""
    context = await _queue_context(request)
    return render(request, "console/_queue_rows.html", {**frame(request), **context}, 200, CONSOLE_HEADERS)


async def exclude_selected(request: web.Request) -> web.Response:
    """Exclude every selected incident with one reason, all or none."""
    caller = signed_in(request)
    caller.require(*WRITERS)
    app = request.app
    form = await request.post()
    ids = sorted({i for raw in form.getall("ids", []) if isinstance(raw, str) and (i := row_id(raw)) is not None})
    back = form.get("back")
    back_query = back if isinstance(back, str) else ""
    if not ids:
        raise Invalid("ids", "is required: select at least one incident")
    if len(ids) > MAX_BULK:
        raise Invalid("ids", f"at most {MAX_BULK} at once")
    reason = form.get("reason")
    try:
        event = EventIn.model_validate({"type": "excluded", "reason": reason if isinstance(reason, str) else None})
    except pydantic.ValidationError as exc:
        raise validation_problem(exc) from None
    instant = now(request)
    async with connection(request) as conn, conn.transaction():
        for incident_id in ids:
            await incidents.add_event(
                conn, app[appkeys.QUERIES], app[appkeys.POLICY], incident_id, event, caller.name, instant
            )
    params = [(k, v) for k, v in parse_qsl(back_query) if k not in ("done", "n")]
    return see_other("/?" + urlencode([*params, ("done", "excluded"), ("n", str(len(ids)))]))
