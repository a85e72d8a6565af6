"""Monthly SLA exports in PostgreSQL: the month's data read from stored rows, frozen per revision, restated, signed.

See certmon.core.export_content for what a revision holds and why its files do not depend on when it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon.core import signing
from certmon.core.clocks import Clocks
from certmon.core.errors import Conflict, DatabaseUnavailable, Recomputing
from certmon.core.export_content import (
    FIGURE_FIELDS,
    FORMAT,
    INCIDENT_COLUMNS,
    INCIDENT_OBJECTIVE_FIELDS,
    INCIDENT_TIMES,
    OBJECTIVE_FIGURE_FIELDS,
    SATISFACTION_FIELDS,
    ExportResult,
    content_hash,
    diff_rows,
    evaluation_instant,
    figure_row,
    format_reason,
    local_iso,
    manifest,
    months_to_run,
    objective_rows,
    reason_text,
    render,
    report_reason,
    report_settings,
    write_directory,
)
from certmon.core.periods import Period
from certmon.core.policy import Policy
from certmon.core.recompute import RETRY_AFTER_SECONDS
from certmon.core.settings import Settings
from certmon.core.sla import Clock, paused_seconds_at
from certmon.core.tables import JSON_MEDIA
from certmon.core.words import Lang
from certmon.store import compliance, db, incidents, surveys

log = structlog.get_logger("certmon.exports")

LOCK_ID = 0x6365_7274_6D6F_6E03  # "certmon" + 3: one export run at a time across every replica
LOCK_WAIT_SECONDS = 600.0  # another replica's run of a dozen months finishes well within this
APPLICATION_NAME = "certmon-export"  # what pg_stat_activity shows for an export's connection


# Building the month's data


async def _figures(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    period: Period,
    at: datetime,
    objective: str | None = None,
) -> list[Any]:
    """figures.csv's rows, or with ``objective`` those of objective-figures.csv (which count paused clocks too):
    overall, then per agency, sector and severity."""
    fields = FIGURE_FIELDS if objective is None else OBJECTIVE_FIGURE_FIELDS
    agencies = {r["code"]: r for r in await conn.fetch(q["export_agencies"])}
    rows: list[dict[str, Any]] = []
    overall: dict[str, Any] | None = None
    for scope in ("agency", "sector", "severity"):
        report = await compliance.report(conn, q, policy, period, at, group_by=scope, objective=objective, exact=True)
        overall = overall or report
        for group in report["groups"]:
            row = figure_row(scope, group["key"], group, policy.compliance_target, fields)
            if scope == "agency" and group["key"] in agencies:
                agency = agencies[group["key"]]
                row |= {"name": agency["name"], "name_th": agency["name_th"], "sector": agency["sector"]}
            rows.append(row)
    assert overall is not None
    return [figure_row("overall", "", overall, policy.compliance_target, fields), *rows]


async def _objective_figures(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period, at: datetime
) -> list[dict[str, Any]]:
    """Every objective's figures, the KPI's included, in the policy's order of objectives."""
    rows = []
    for name in policy.objectives:
        rows += [{"objective": name, **row} for row in await _figures(conn, q, policy, period, at, name)]
    return rows


def _incident_clock(r: asyncpg.Record, objective: str, policy: Policy, at: datetime) -> dict[str, Any]:
    """One objective's clock of an incident at the evaluation instant, paused time up to that instant included."""
    clock = Clock(
        r["clock_start"], None, r["due_at"], r["stopped_at"], r["delay_seconds"], r["paused_seconds"], r["paused_since"]
    )
    paused = clock.paused_seconds
    if r["severity"] in policy.severities:
        paused = paused_seconds_at(clock, at, policy.calendar_for(r["severity"], objective))
    return {
        "id": r["id"],
        "objective": objective,
        "agency": r["agency_code"],
        "severity": r["severity"],
        "state": r["state"],
        "clock_start": local_iso(r["clock_start"], policy),
        "due_at": local_iso(r["due_at"], policy),
        "stopped_at": local_iso(r["stopped_at"], policy),
        "delay_seconds": r["delay_seconds"],
        "paused_seconds": paused,
        "paused_since": local_iso(r["paused_since"], policy),
    }


async def _incidents(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period, at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The month's incidents with the KPI's clock, and every objective's clock that belongs to the month.

    The KPI's clocks are those of incidents.csv; another objective's clock may belong to the month although its
    incident was detected in the one before (notified on the 1st, say), and the other way round.
    """
    kpi = policy.kpi_name
    rows, clocks = [], []
    for r in await conn.fetch(q["export_incidents"], period.start, period.end, at, kpi):
        rows.append(
            {
                "id": r["id"],
                "agency": r["agency_code"],
                "severity": r["severity"],
                "category": r["category"],
                **{name: local_iso(r[name], policy) for name in INCIDENT_TIMES},
                "state": r["state"],
                "delay_seconds": r["delay_seconds"],
                "exclusion_reason": r["exclusion_reason"],
            }
        )
        clocks.append(_incident_clock(r, kpi, policy, at))
    others = [name for name in policy.objectives if name != kpi]
    if others:
        for r in await conn.fetch(q["export_incident_objectives"], period.start, period.end, at, others):
            clocks.append(_incident_clock(r, r["objective"], policy, at))
    order = {name: position for position, name in enumerate(policy.objectives)}
    clocks.sort(key=lambda row: (row["id"], order[row["objective"]]))
    return rows, clocks


async def _satisfaction(conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period) -> list[Any]:
    """One row per surveyed service with responses in the month."""
    rows = []
    for name, service in policy.surveys.services.items():
        figures = await surveys.summary(conn, q, policy, period, service=name)
        if not figures["responses"]:
            continue
        rows.append(
            {"service": name, "name_th": service.name_th, "name_en": service.name_en}
            | {key: figures[key] for key in SATISFACTION_FIELDS}
        )
    return rows


async def collect(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period, lang: Lang = "th"
) -> dict[str, Any]:
    """The month's data: JSON types only, so that it compares equal to what the stored export.json reads back as.

    ``lang`` is the language of report.pdf and of the workbook's words (CERTMON_REPORT_LANG).
    """
    at = evaluation_instant(policy, period)
    incident_rows, incident_clocks = await _incidents(conn, q, policy, period, at)
    content: dict[str, Any] = {
        "format": FORMAT,
        "month": period.label,
        "period": {
            "start": local_iso(period.start, policy),
            "end": local_iso(period.end, policy),
            "timezone": policy.timezone,
        },
        "evaluated_at": local_iso(at, policy),
        "target": policy.compliance_target,
        "figures": await _figures(conn, q, policy, period, at),
        "incidents": incident_rows,
        "satisfaction": await _satisfaction(conn, q, policy, period),
        "objectives": objective_rows(policy),
        "objective_figures": await _objective_figures(conn, q, policy, period, at),
        "incident_objectives": incident_clocks,
        "report": report_settings(policy, lang),
    }
    return content


# Restatement


def _figure_changes(old: dict[str, Any], new: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    """Changed figures: figures.csv's (the KPI's) and satisfaction.csv's with no objective, then the objective
    files' by objective. The KPI's rows there repeat figures.csv, so only what figures.csv lacks is compared."""
    kpi = policy.kpi_name
    figures = [
        {"objective": None, "scope": scope, "key": key, "figure": name, "old": a, "new": b}
        for (scope, key), name, a, b in diff_rows(
            old["figures"], new["figures"], lambda r: (r["scope"], r["key"]), FIGURE_FIELDS
        )
    ]
    figures += [
        {"objective": None, "scope": "satisfaction", "key": key, "figure": name, "old": a, "new": b}
        for key, name, a, b in diff_rows(
            old.get("satisfaction", []), new.get("satisfaction", []), lambda r: r["service"], SATISFACTION_FIELDS
        )
    ]
    if "objective_figures" not in old:  # a revision of format 1: nothing of these was published to restate
        return figures
    only_here = [name for name in OBJECTIVE_FIGURE_FIELDS if name not in FIGURE_FIELDS]
    for objective in dict.fromkeys([r["objective"] for r in (*old["objective_figures"], *new["objective_figures"])]):
        fields = only_here if objective == kpi else OBJECTIVE_FIGURE_FIELDS
        figures += [
            {"objective": objective, "scope": scope, "key": key, "figure": name, "old": a, "new": b}
            for (scope, key), name, a, b in diff_rows(
                [r for r in old["objective_figures"] if r["objective"] == objective],
                [r for r in new["objective_figures"] if r["objective"] == objective],
                lambda r: (r["scope"], r["key"]),
                fields,
            )
        ]
    return figures


INCIDENT_COLUMNS_KEYS = frozenset(c.key for c in INCIDENT_COLUMNS)


def _clock_changes(
    old: dict[str, Any], new: dict[str, Any], policy: Policy
) -> list[tuple[int, str | None, str, Any, Any]]:
    """Changed incident fields: incidents.csv's with no objective, then incident-objectives.csv's by objective
    ("id" standing for the row itself). The KPI's clocks there repeat incidents.csv but for their pauses."""
    incident_fields = [c.key for c in INCIDENT_COLUMNS if c.key != "id"]
    changes: list[tuple[int, str | None, str, Any, Any]] = [
        (incident_id, None, name, a, b)
        for incident_id, name, a, b in diff_rows(
            old["incidents"], new["incidents"], lambda r: r["id"], ["id", *incident_fields]
        )
    ]
    if "incident_objectives" not in old:
        return changes
    kpi = policy.kpi_name
    only_here = [name for name in INCIDENT_OBJECTIVE_FIELDS if name not in INCIDENT_COLUMNS_KEYS]
    for (incident_id, objective), name, a, b in diff_rows(
        old["incident_objectives"],
        new["incident_objectives"],
        lambda r: (r["id"], r["objective"]),
        ["id", *INCIDENT_OBJECTIVE_FIELDS],
    ):
        if objective != kpi or name in only_here:
            changes.append((incident_id, objective, name, a, b))
    return changes


async def restate(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    previous: asyncpg.Record,
    old: dict[str, Any],
    new: dict[str, Any],
) -> dict[str, Any]:
    """Each figure and incident field that changed since the previous revision, with the timeline events behind it.

    What the previous revision did not publish (the objective files, to a revision of format 1) is not a
    restatement; the format change is given as a reason instead.
    """
    figures = _figure_changes(old, new, policy)
    changed = _clock_changes(old, new, policy)
    events = await conn.fetch(q["export_reasons"], sorted({c[0] for c in changed}), previous["generated_at"])
    reasons = [
        {
            "incident": e["incident_id"],
            "type": e["type"],
            "milestone": e["milestone"],
            "at": local_iso(e["at"], policy),
            "reason": e["reason"],
            "note": e["note"],
            "actor": e["actor"],
            "recorded_at": local_iso(e["recorded_at"], policy),
        }
        for e in events
    ]
    for settings_reason in (format_reason(old, new), report_reason(old, new)):
        if settings_reason is not None:
            reasons.append(settings_reason)
    if previous["policy_hash"] != policy.fingerprint():
        reasons.append(
            {"incident": None, "type": "policy", "milestone": None, "at": None,
             "reason": f"SLA policy changed ({previous['policy_hash'][:12]} -> {policy.fingerprint()[:12]})",
             "note": None, "actor": None, "recorded_at": None}
        )  # fmt: skip
    by_incident: dict[int, list[str]] = {}
    for reason in reasons:
        if reason["incident"] is not None:
            by_incident.setdefault(reason["incident"], []).append(reason_text(reason))
    incidents = [
        {
            "incident": incident_id,
            "objective": objective,
            "field": "row" if name == "id" else name,
            "old": ("present" if a is not None else "absent") if name == "id" else a,
            "new": ("present" if b is not None else "absent") if name == "id" else b,
            "reasons": "; ".join(by_incident.get(incident_id, [])),
        }
        for incident_id, objective, name, a, b in changed
    ]
    return {
        "previous_revision": previous["revision"],
        "previous_generated_at": local_iso(previous["generated_at"], policy),
        "figures": figures,
        "incidents": incidents,
        "reasons": reasons,
    }


# Storing


async def _previous_content(conn: asyncpg.Connection, q: db.Queries, export_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(q["export_file"], export_id, "export.json")
    assert row is not None  # every revision stores export.json
    content: dict[str, Any] = json.loads(row["content"])
    content.pop("restatement", None)
    return content


async def _store(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    key: Ed25519PrivateKey,
    period: Period,
    now: datetime,
    actor: str,
    lang: Lang,
) -> ExportResult:
    latest = await conn.fetchrow(q["export_latest"], period.label)
    content = await collect(conn, q, policy, period, lang)
    digest = content_hash(content)
    if latest is not None and latest["content_sha256"] == digest:
        return ExportResult(
            period.label, latest["revision"], False, latest["restated"], latest["generated_at"], latest["id"]
        )
    revision = 1
    if latest is not None:
        revision = latest["revision"] + 1
        old = await _previous_content(conn, q, latest["id"])
        content["restatement"] = await restate(conn, q, policy, latest, old, content)
    files = render(content)  # seconds of CPU: the service runs all of this in a worker (month_in_worker)
    signed = signing.manifest_bytes(manifest(content, revision, files, policy, key, now))
    row = await conn.fetchrow(
        q["export_insert"],
        period.label,
        revision,
        period.start,
        period.end,
        evaluation_instant(policy, period),
        digest,
        policy.fingerprint(),
        signed,
        signing.sign(key, signed),
        signing.public_pem(key),
        revision > 1,
        now,
        actor,
    )
    assert row is not None
    await conn.executemany(
        q["export_file_insert"],
        [
            (row["id"], name, media, len(data), hashlib.sha256(data).hexdigest(), data)
            for name, (media, data) in files.items()
        ],
    )
    log.info("month exported", month=period.label, revision=revision, files=len(files), actor=actor)
    return ExportResult(period.label, revision, True, revision > 1, now, row["id"])


async def export_month(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    key: Ed25519PrivateKey,
    period: Period,
    now: datetime,
    actor: str,
    *,
    lang: Lang = "th",
) -> ExportResult:
    """Store revision 1 of a month, or revision N+1 when its data changed since revision N; else return N.

    Replicas serialise on an advisory lock and read one snapshot; the unique (month, revision) constraint backs it up.
    While any incident's clocks are stored under another policy (a recompute in progress), Recomputing is raised and
    nothing is stored. ``lang`` is the report language. This is CPU work of seconds to minutes: the service runs it
    in a worker (``month_in_worker``), never on its event loop.
    """
    ready = evaluation_instant(policy, period)
    if now < ready:
        raise Conflict(
            f"month {period.label} can be exported from {ready.astimezone(policy.tz).isoformat()}, "
            "when every clock that started in it is due"
        )
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID, timeout=LOCK_WAIT_SECONDS)
    try:
        try:
            async with conn.transaction(isolation="repeatable_read"):
                # In the snapshot the month is read from: a signed revision never mixes two policies' clocks.
                stale = await incidents.stale_count(conn, q, Clocks.of(policy).fingerprint)
                if stale:
                    raise Recomputing(stale, RETRY_AFTER_SECONDS)
                return await _store(conn, q, policy, key, period, now, actor, lang)
        except asyncpg.UniqueViolationError:
            # Reached only when a writer ignored the lock; what it stored is the month's revision.
            latest = await conn.fetchrow(q["export_latest"], period.label)
            assert latest is not None
            return ExportResult(
                period.label, latest["revision"], False, latest["restated"], latest["generated_at"], latest["id"]
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)


async def files_of(conn: asyncpg.Connection, q: db.Queries, row: asyncpg.Record) -> dict[str, tuple[str, bytes]]:
    """Every file of a stored revision, with its manifest, signature and public key, as served and written."""
    files = {r["name"]: (r["media_type"], bytes(r["content"])) for r in await conn.fetch(q["export_files"], row["id"])}
    files[signing.MANIFEST] = (JSON_MEDIA, bytes(row["manifest"]))
    files[signing.SIGNATURE] = ("text/plain; charset=utf-8", signing.signature_text(bytes(row["signature"])))
    files[signing.PUBLIC_KEY] = ("application/x-pem-file", row["public_key"].encode())
    return files


async def revision_row(
    conn: asyncpg.Connection, q: db.Queries, month: str, revision: int | None
) -> asyncpg.Record | None:
    """A stored revision of a month, the latest when revision is None."""
    if revision is None:
        return await conn.fetchrow(q["export_latest"], month)
    return await conn.fetchrow(q["export_by_revision"], month, revision)


async def stored_files(
    conn: asyncpg.Connection, q: db.Queries, month: str, revision: int
) -> dict[str, tuple[str, bytes]]:
    row = await revision_row(conn, q, month, revision)
    assert row is not None  # callers pass a revision they have just stored or found
    return await files_of(conn, q, row)


# Scheduling


async def run_due(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    key: Ed25519PrivateKey,
    now: datetime,
    actor: str,
    *,
    lang: Lang = "th",
) -> tuple[list[ExportResult], datetime | None]:
    """The scheduled run: exports and restatements due at now; also when a month not ready yet becomes ready."""
    exported = [r["month"] for r in await conn.fetch(q["export_months"])]
    results, retry_at = [], None
    for period in months_to_run(now, policy, exported):
        ready = evaluation_instant(policy, period)
        if now < ready:
            retry_at = ready
            continue
        results.append(await export_month(conn, q, policy, key, period, now, actor, lang=lang))
    return results, retry_at


# Off the service's event loop
#
# Everything an export does is CPU work but its queries: the month's rows turned into tables, restatement diffs,
# CSV, JSON, XLSX, report.pdf, hashes and the signature. For a month of 100,000 incidents that is minutes, during
# which an event loop running it would answer nothing. So the service hands the whole export to a worker process
# (or, with CERTMON_PARSE_WORKERS=0, a thread) that opens a connection of its own.


@dataclass(frozen=True, slots=True)
class Worker:
    """What an export needs away from the service: picklable, so that it crosses to a worker process.

    The signing key travels as its path, not as key material; the caller has created it already if it was missing.
    """

    database_url: str
    policy: Policy
    key_path: Path
    lang: Lang
    connect_timeout: float
    statement_timeout: float
    export_dir: Path | None


def worker_of(settings: Settings, policy: Policy, database_url: str) -> Worker:
    return Worker(
        database_url=database_url,
        policy=policy,
        key_path=settings.effective_signing_key_path,
        lang=settings.report_lang,
        connect_timeout=settings.db_timeout_seconds,
        statement_timeout=settings.export_timeout_seconds,
        export_dir=settings.export_dir,
    )


async def _connect(worker: Worker) -> asyncpg.Connection:
    """A connection outside the pool, so that a long query of an export holds up no request's connection.

    Requests treat a query slower than CERTMON_DB_TIMEOUT_SECONDS as an outage, so that a client is answered 503
    and its pooled connection freed instead of waiting on a database that hangs. Nobody waits on an export's
    queries that way, and the month's aggregates over 100,000 incidents take longer than that; its statements get
    CERTMON_EXPORT_TIMEOUT_SECONDS instead, on the server too, so that PostgreSQL ends a runaway one itself.
    Connecting keeps the short timeout: a database that is down is told as soon as for a request.
    """
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            worker.database_url,
            timeout=worker.connect_timeout,
            command_timeout=worker.statement_timeout,
            server_settings={
                "application_name": APPLICATION_NAME,
                "timezone": "UTC",
                "plan_cache_mode": "force_custom_plan",  # as the pool's: the queries are written for it
                "statement_timeout": str(int(worker.statement_timeout * 1000)),
            },
        )
    except db.CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from None
    return conn


async def _on_own_connection(worker: Worker, work: Callable[[asyncpg.Connection], Any]) -> Any:
    conn = await _connect(worker)
    try:
        return await work(conn)
    except db.OUTAGE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from None
    finally:
        await conn.close()


def month_in_worker(worker: Worker, period: Period, now: datetime, actor: str) -> ExportResult:
    """``export_month`` in a process or thread of its own, with an event loop and a connection of its own."""
    key = signing.load_or_create_key(worker.key_path)
    q = db.Queries.load()

    async def work(conn: asyncpg.Connection) -> ExportResult:
        return await export_month(conn, q, worker.policy, key, period, now, actor, lang=worker.lang)

    result: ExportResult = asyncio.run(_on_own_connection(worker, work))
    return result


DueRun = tuple[list[ExportResult], datetime | None, list[str]]


def due_in_worker(worker: Worker, now: datetime, actor: str) -> DueRun:
    """``run_due`` in a worker, writing each new revision to CERTMON_EXPORT_DIR; also the directories written."""
    key = signing.load_or_create_key(worker.key_path)
    q = db.Queries.load()

    async def work(conn: asyncpg.Connection) -> DueRun:
        results, retry_at = await run_due(conn, q, worker.policy, key, now, actor, lang=worker.lang)
        written = []
        if worker.export_dir is not None:
            for result in results:
                if result.created:
                    files = await stored_files(conn, q, result.month, result.revision)
                    written.append(str(write_directory(worker.export_dir, result.month, result.revision, files)))
        return results, retry_at, written

    done: DueRun = asyncio.run(_on_own_connection(worker, work))
    return done


T = TypeVar("T")


async def off_loop(executor: Executor | None, work: Callable[..., T], *args: Any) -> T:
    """Run ``month_in_worker`` or ``due_in_worker`` in ``executor``; None runs it in a thread of this process."""
    if executor is None:
        return await asyncio.to_thread(work, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, work, *args)
