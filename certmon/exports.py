"""Monthly SLA exports for oversight: built from stored data only, frozen per revision, restated, signed.

A month's data files are a pure function of the stored rows, the policy and the month. Incident states are taken
at the month's *evaluation instant*: the month's end plus the longest severity target, counted on each severity's
own calendar. Every clock that started in the month is due by then, so no incident is still pending, and the
instant does not depend on when the export runs. The generation time appears in the manifest only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon import appkeys, compliance, db, signing
from certmon.errors import Conflict, DatabaseUnavailable
from certmon.export_formats import CSV_MEDIA, JSON_MEDIA, XLSX_MEDIA, Column, Table, to_csv, to_json, to_xlsx
from certmon.periods import Period, month_period, parse_period, previous_month
from certmon.policy import Policy
from certmon.settings import Settings

if TYPE_CHECKING:
    from certmon.snapshot import Family

log = structlog.get_logger("certmon.exports")

FORMAT = "certmon-monthly-export/1"
MANIFEST_FORMAT = "certmon-export-manifest/1"
LOCK_ID = 0x6365_7274_6D6F_6E03  # "certmon" + 3: one export run at a time across every replica
LOCK_WAIT_SECONDS = 600.0  # another replica's run of a dozen months finishes well within this
RESTATE_MONTHS = 12  # a scheduled run re-checks the exported months of the last year for late changes
JOB_ID = "monthly-export"

FIGURE_FIELDS = (
    "total", "met", "breached", "pending", "at_risk", "excluded", "no_clock", "compliance", "target", "shortfall",
    "status", "delay_p50", "delay_p90", "delay_p95", "delay_max",
)  # fmt: skip
INCIDENT_TIMES = (
    "detected_at", "analysed_at", "notified_at", "acknowledged_at", "contained_at", "resolved_at", "clock_start",
    "due_at", "stopped_at",
)  # fmt: skip
SATISFACTION_FIELDS = (
    "responses", "answers", "mean_score", "satisfaction_percent", "top2_share", "band", "target", "status",
)  # fmt: skip

FIGURE_COLUMNS = (
    Column("scope", "Scope", "ขอบเขต", width=10),
    Column("key", "Key", "รหัส", width=18),
    Column("name", "Name", "ชื่อ", width=36),
    Column("name_th", "Thai name", "ชื่อภาษาไทย", width=36),
    Column("sector", "Sector", "ภาคส่วน", width=18),
    Column("total", "Incidents", "จำนวนเหตุการณ์", "int"),
    Column("met", "Met", "ทันเวลา", "int"),
    Column("breached", "Breached", "เกินเวลา", "int"),
    Column("pending", "Pending", "รอดำเนินการ", "int"),
    Column("at_risk", "At risk", "ใกล้ครบกำหนด", "int"),
    Column("excluded", "Excluded", "ไม่นับรวม", "int"),
    Column("no_clock", "No clock", "ไม่มีเวลาเริ่มนับ", "int"),
    Column("compliance", "Compliance", "ร้อยละที่ทันเวลา", "ratio"),
    Column("target", "Target", "เป้าหมาย", "ratio"),
    Column("shortfall", "Shortfall (relative)", "ต่ำกว่าเป้าหมาย", "ratio"),
    Column("status", "Status", "สถานะ", "status", 10),
    Column("delay_p50", "Delay p50 (s)", "เวลามัธยฐาน (วินาที)", "seconds"),
    Column("delay_p90", "Delay p90 (s)", "เวลาเปอร์เซ็นไทล์ 90 (วินาที)", "seconds"),
    Column("delay_p95", "Delay p95 (s)", "เวลาเปอร์เซ็นไทล์ 95 (วินาที)", "seconds"),
    Column("delay_max", "Longest delay (s)", "เวลานานที่สุด (วินาที)", "seconds"),
)
INCIDENT_COLUMNS = (
    Column("id", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("agency", "Agency", "หน่วยงาน", width=10),
    Column("severity", "Severity", "ระดับความรุนแรง", width=10),
    Column("category", "Category (RSIT)", "ประเภท", width=32),
    Column("detected_at", "Detected", "เวลาตรวจพบ", width=26),
    Column("analysed_at", "Analysed", "เวลาวิเคราะห์แล้วเสร็จ", width=26),
    Column("notified_at", "Notified", "เวลาแจ้งเตือน", width=26),
    Column("acknowledged_at", "Acknowledged", "เวลารับทราบ", width=26),
    Column("contained_at", "Contained", "เวลาระงับเหตุ", width=26),
    Column("resolved_at", "Resolved", "เวลาแก้ไขแล้วเสร็จ", width=26),
    Column("clock_start", "Clock start", "เริ่มนับเวลา", width=26),
    Column("due_at", "Due", "ครบกำหนด", width=26),
    Column("stopped_at", "Clock stop", "หยุดนับเวลา", width=26),
    Column("state", "SLA state", "สถานะ SLA", width=10),
    Column("delay_seconds", "Delay (s)", "ระยะเวลา (วินาที)", "seconds"),
    Column("exclusion_reason", "Exclusion reason", "เหตุผลที่ไม่นับรวม", width=30),
)
SATISFACTION_COLUMNS = (
    Column("service", "Service", "บริการ", width=18),
    Column("name_th", "Thai name", "ชื่อบริการ", width=40),
    Column("name_en", "Name", "ชื่อ (อังกฤษ)", width=40),
    Column("responses", "Responses", "จำนวนผู้ตอบ", "int"),
    Column("answers", "Answers", "จำนวนคำตอบ", "int"),
    Column("mean_score", "Mean score (1-5)", "คะแนนเฉลี่ย (1-5)", "number"),
    Column("satisfaction_percent", "Satisfaction %", "ร้อยละความพึงพอใจ", "number"),
    Column("top2_share", "Top-2 share", "สัดส่วนระดับมาก-มากที่สุด", "ratio"),
    Column("band", "Band", "ระดับ", width=10),
    Column("target", "Target %", "เป้าหมาย (ร้อยละ)", "number"),
    Column("status", "Status", "สถานะ", "status", 10),
)
RESTATED_FIGURE_COLUMNS = (
    Column("scope", "Scope", "ขอบเขต", width=12),
    Column("key", "Key", "รหัส", width=18),
    Column("figure", "Figure", "ตัวเลข", width=14),
    Column("old", "Previous value", "ค่าเดิม", width=20),
    Column("new", "Restated value", "ค่าใหม่", width=20),
)
RESTATED_INCIDENT_COLUMNS = (
    Column("incident", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("field", "Field", "รายการ", width=16),
    Column("old", "Previous value", "ค่าเดิม", width=26),
    Column("new", "Restated value", "ค่าใหม่", width=26),
    Column("reasons", "Reasons", "เหตุผล", width=60),
)
REASON_COLUMNS = (
    Column("incident", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("type", "Event", "เหตุการณ์", width=12),
    Column("milestone", "Milestone", "ขั้นตอน", width=12),
    Column("at", "At", "เวลา", width=26),
    Column("reason", "Reason", "เหตุผล", width=40),
    Column("note", "Note", "หมายเหตุ", width=30),
    Column("actor", "By", "ผู้บันทึก", width=16),
    Column("recorded_at", "Recorded", "เวลาที่บันทึก", width=26),
)


@dataclass(frozen=True, slots=True)
class ExportResult:
    month: str
    revision: int
    created: bool  # False when the stored latest revision already holds the same data
    restated: bool
    generated_at: datetime
    export_id: int


# Building the month's data


def evaluation_instant(policy: Policy, period: Period) -> datetime:
    """The period's end plus the longest severity target, each on its own calendar: every clock of the period is due."""
    return max(
        policy.calendar_for(name).add(period.end, severity.target_seconds)
        for name, severity in policy.severities.items()
    )


def _local(value: datetime | None, policy: Policy) -> str | None:
    return None if value is None else value.astimezone(policy.tz).isoformat()


def _figure_row(scope: str, key: str, figures: dict[str, Any], target: float) -> dict[str, Any]:
    latency = figures["latency_seconds"]
    return {
        "scope": scope,
        "key": key,
        **{name: figures[name] for name in FIGURE_FIELDS if name in figures},
        "target": target,
        "delay_p50": latency["p50"],
        "delay_p90": latency["p90"],
        "delay_p95": latency["p95"],
        "delay_max": latency["max"],
    }


async def _figures(conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period, at: datetime) -> list[Any]:
    agencies = {r["code"]: r for r in await conn.fetch(q["export_agencies"])}
    rows: list[dict[str, Any]] = []
    overall: dict[str, Any] | None = None
    for scope in ("agency", "sector", "severity"):
        report = await compliance.report(conn, q, policy, period, at, group_by=scope)
        overall = overall or report
        for group in report["groups"]:
            row = _figure_row(scope, group["key"], group, policy.compliance_target)
            if scope == "agency" and group["key"] in agencies:
                agency = agencies[group["key"]]
                row |= {"name": agency["name"], "name_th": agency["name_th"], "sector": agency["sector"]}
            rows.append(row)
    assert overall is not None
    return [_figure_row("overall", "", overall, policy.compliance_target), *rows]


async def _incidents(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period, at: datetime
) -> list[dict[str, Any]]:
    rows = []
    for r in await conn.fetch(q["export_incidents"], period.start, period.end, at):
        rows.append(
            {
                "id": r["id"],
                "agency": r["agency_code"],
                "severity": r["severity"],
                "category": r["category"],
                **{name: _local(r[name], policy) for name in INCIDENT_TIMES},
                "state": r["state"],
                "delay_seconds": r["delay_seconds"],
                "exclusion_reason": r["exclusion_reason"],
            }
        )
    return rows


async def _satisfaction(conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period) -> list[Any]:
    """One row per surveyed service with responses in the month; empty while the surveys feature is absent."""
    try:
        from certmon import surveys
    except ImportError:
        return []
    services: dict[str, Any] = getattr(getattr(policy, "surveys", None), "services", {})
    rows = []
    for name, service in services.items():
        figures = await surveys.summary(conn, q, policy, period, service=name)
        if not figures["responses"]:
            continue
        rows.append(
            {"service": name, "name_th": service.name_th, "name_en": service.name_en}
            | {key: figures[key] for key in SATISFACTION_FIELDS}
        )
    return rows


async def collect(conn: asyncpg.Connection, q: db.Queries, policy: Policy, period: Period) -> dict[str, Any]:
    """The month's data: JSON types only, so that it compares equal to what the stored export.json reads back as."""
    at = evaluation_instant(policy, period)
    content: dict[str, Any] = {
        "format": FORMAT,
        "month": period.label,
        "period": {
            "start": _local(period.start, policy),
            "end": _local(period.end, policy),
            "timezone": policy.timezone,
        },
        "evaluated_at": _local(at, policy),
        "target": policy.compliance_target,
        "figures": await _figures(conn, q, policy, period, at),
        "incidents": await _incidents(conn, q, policy, period, at),
        "satisfaction": await _satisfaction(conn, q, policy, period),
    }
    return content


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(to_json({k: v for k, v in content.items() if k != "restatement"})).hexdigest()


# Restatement


def _diff_rows(
    old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]], key: Any, fields: Sequence[str]
) -> list[tuple[Any, str, Any, Any]]:
    before = {key(r): r for r in old}
    after = {key(r): r for r in new}
    changes = []
    for k in sorted(before.keys() | after.keys(), key=lambda x: json.dumps(x)):
        a, b = before.get(k, {}), after.get(k, {})
        for name in fields:
            if a.get(name) != b.get(name):
                changes.append((k, name, a.get(name), b.get(name)))
    return changes


def _reason_text(event: dict[str, Any]) -> str:
    what = event["type"] + (f" {event['milestone']}" if event["milestone"] else "")
    why = f": {event['reason']}" if event["reason"] else ""
    return f"{what} at {event['at']}{why} (by {event['actor']}, recorded {event['recorded_at']})"


async def restate(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    previous: asyncpg.Record,
    old: dict[str, Any],
    new: dict[str, Any],
) -> dict[str, Any]:
    """Each figure and incident field that changed since the previous revision, with the timeline events behind it."""
    figures = [
        {"scope": scope, "key": key, "figure": name, "old": a, "new": b}
        for (scope, key), name, a, b in _diff_rows(
            old["figures"], new["figures"], lambda r: (r["scope"], r["key"]), FIGURE_FIELDS
        )
    ]
    figures += [
        {"scope": "satisfaction", "key": key, "figure": name, "old": a, "new": b}
        for key, name, a, b in _diff_rows(
            old.get("satisfaction", []), new.get("satisfaction", []), lambda r: r["service"], SATISFACTION_FIELDS
        )
    ]
    incident_fields = [c.key for c in INCIDENT_COLUMNS if c.key != "id"]
    changed = _diff_rows(old["incidents"], new["incidents"], lambda r: r["id"], ["id", *incident_fields])
    events = await conn.fetch(q["export_reasons"], sorted({c[0] for c in changed}), previous["generated_at"])
    reasons = [
        {
            "incident": e["incident_id"],
            "type": e["type"],
            "milestone": e["milestone"],
            "at": _local(e["at"], policy),
            "reason": e["reason"],
            "note": e["note"],
            "actor": e["actor"],
            "recorded_at": _local(e["recorded_at"], policy),
        }
        for e in events
    ]
    if previous["policy_hash"] != policy.fingerprint():
        reasons.append(
            {"incident": None, "type": "policy", "milestone": None, "at": None,
             "reason": f"SLA policy changed ({previous['policy_hash'][:12]} -> {policy.fingerprint()[:12]})",
             "note": None, "actor": None, "recorded_at": None}
        )  # fmt: skip
    by_incident: dict[int, list[str]] = {}
    for reason in reasons:
        if reason["incident"] is not None:
            by_incident.setdefault(reason["incident"], []).append(_reason_text(reason))
    incidents = [
        {
            "incident": incident_id,
            "field": "row" if name == "id" else name,
            "old": ("present" if a is not None else "absent") if name == "id" else a,
            "new": ("present" if b is not None else "absent") if name == "id" else b,
            "reasons": "; ".join(by_incident.get(incident_id, [])),
        }
        for incident_id, name, a, b in changed
    ]
    return {
        "previous_revision": previous["revision"],
        "previous_generated_at": _local(previous["generated_at"], policy),
        "figures": figures,
        "incidents": incidents,
        "reasons": reasons,
    }


# Files, manifest, signature


def tables(content: dict[str, Any]) -> list[Table]:
    found = [
        Table("figures", "Figures", FIGURE_COLUMNS, content["figures"]),
        Table("incidents", "Incidents", INCIDENT_COLUMNS, content["incidents"]),
    ]
    if content["satisfaction"]:
        found.append(Table("satisfaction", "Satisfaction", SATISFACTION_COLUMNS, content["satisfaction"]))
    restatement = content.get("restatement")
    if restatement:
        found += [
            Table("restatement-figures", "Restated figures", RESTATED_FIGURE_COLUMNS, restatement["figures"]),
            Table("restatement-incidents", "Restated incidents", RESTATED_INCIDENT_COLUMNS, restatement["incidents"]),
            Table("restatement-reasons", "Restatement reasons", REASON_COLUMNS, restatement["reasons"]),
        ]
    return found


def render(content: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """File name -> (media type, bytes); the same content always renders to the same bytes."""
    found = tables(content)
    files = {f"{t.name}.csv": (CSV_MEDIA, to_csv(t)) for t in found}
    files["export.json"] = (JSON_MEDIA, to_json(content))
    created = datetime.fromisoformat(content["evaluated_at"]).astimezone(UTC)
    files["export.xlsx"] = (XLSX_MEDIA, to_xlsx(found, created, f"certmon SLA export {content['month']}"))
    return dict(sorted(files.items()))


def manifest(
    content: dict[str, Any],
    revision: int,
    files: dict[str, tuple[str, bytes]],
    policy: Policy,
    key: Ed25519PrivateKey,
    generated_at: datetime,
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "month": content["month"],
        "revision": revision,
        "previous_revision": revision - 1 if revision > 1 else None,
        "period": content["period"],
        "evaluated_at": content["evaluated_at"],
        "generated_at": generated_at.astimezone(UTC).isoformat(),
        "content_sha256": content_hash(content),
        "policy": {"fingerprint": policy.fingerprint(), "settings": policy.model_dump(mode="json")},
        "files": [
            {"name": name, "media_type": media, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, (media, data) in files.items()
        ],
        "signing_key": {"algorithm": "Ed25519", "fingerprint": signing.key_fingerprint(key)},
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
) -> ExportResult:
    latest = await conn.fetchrow(q["export_latest"], period.label)
    content = await collect(conn, q, policy, period)
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
    files = render(content)
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
) -> ExportResult:
    """Store revision 1 of a month, or revision N+1 when its data changed since revision N; else return N.

    Replicas serialise on an advisory lock and read one snapshot; the unique (month, revision) constraint backs it up.
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
                return await _store(conn, q, policy, key, period, now, actor)
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


def write_directory(out: Path, month: str, revision: int, files: dict[str, tuple[str, bytes]]) -> Path:
    """Write a revision to ``out/<month>/r<revision>/``; returns that directory."""
    target = out / month / f"r{revision}"
    target.mkdir(parents=True, exist_ok=True)
    for name, (_, data) in files.items():
        partial = target / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(target / name)
    return target


# Scheduling


def months_to_run(now: datetime, policy: Policy, exported: Sequence[str]) -> list[Period]:
    """The previous month, every month missed since the last export, and exported months of the last year."""
    latest = previous_month(now, policy.tz)
    window = [latest]
    while len(window) < RESTATE_MONTHS:
        window.insert(0, previous_month(window[0].start, policy.tz))
    done = set(exported)
    last = max(done) if done else None
    return [m for m in window if m.label in done or m is latest or (last is not None and m.label > last)]


async def run_due(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, now: datetime, actor: str
) -> tuple[list[ExportResult], datetime | None]:
    """The scheduled run: exports and restatements due at now; also when a month not ready yet becomes ready."""
    exported = [r["month"] for r in await conn.fetch(q["export_months"])]
    results, retry_at = [], None
    for period in months_to_run(now, policy, exported):
        ready = evaluation_instant(policy, period)
        if now < ready:
            retry_at = ready
            continue
        results.append(await export_month(conn, q, policy, key, period, now, actor))
    return results, retry_at


def install_exports(app: web.Application, scheduler: AsyncIOScheduler) -> None:
    """Last month's export on the 1st at CERTMON_EXPORT_HOUR Bangkok time, and a catch-up run at start-up."""
    settings = app[appkeys.SETTINGS]
    policy = app[appkeys.POLICY]

    async def run() -> None:
        now = datetime.now(UTC)
        key = await asyncio.to_thread(signing.load_or_create_key, settings.effective_signing_key_path)
        try:
            async with db.connection(app[appkeys.POOL], settings.db_timeout_seconds) as conn:
                results, retry_at = await run_due(conn, app[appkeys.QUERIES], policy, key, now, "scheduler")
                written = await _write_new(conn, app[appkeys.QUERIES], settings, results)
        except DatabaseUnavailable as exc:
            log.warning("monthly export skipped", error=exc.detail)
            return
        if retry_at is not None:
            scheduler.add_job(run, "date", run_date=retry_at, id=f"{JOB_ID}-retry", replace_existing=True)
        log.info(
            "monthly export run",
            created=[f"{r.month}/r{r.revision}" for r in results if r.created],
            checked=len(results),
            written=written,
            retry_at=None if retry_at is None else retry_at.isoformat(),
        )

    scheduler.add_job(
        run,
        CronTrigger(day=1, hour=settings.export_hour, minute=0, timezone=policy.tz),
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(run, "date", id=f"{JOB_ID}-catch-up", run_date=datetime.now(UTC), misfire_grace_time=None)


async def _write_new(
    conn: asyncpg.Connection, q: db.Queries, settings: Settings, results: list[ExportResult]
) -> list[str]:
    if settings.export_dir is None:
        return []
    written = []
    for result in results:
        if result.created:
            files = await stored_files(conn, q, result.month, result.revision)
            path = write_directory(settings.export_dir, result.month, result.revision, files)
            written.append(str(path))
    return written


# Metrics


async def snapshot_families(conn: asyncpg.Connection, q: db.Queries, policy: Policy, now: datetime) -> list[Family]:
    """When the last export succeeded, and the end of the newest exported month; no sample before the first."""
    from certmon.snapshot import Family

    row = await conn.fetchrow(q["export_last_success"])
    last, month = (row["generated_at"], row["month"]) if row is not None else (None, None)
    success: list[tuple[tuple[str, ...], float]] = [] if last is None else [((), last.timestamp())]
    month_end: list[tuple[tuple[str, ...], float]] = (
        [((), month_period(int(month[:4]), int(month[5:]), policy.tz).end.timestamp())] if month else []
    )
    return [
        Family(
            "certmon_export_last_success_timestamp_seconds",
            "when the newest monthly SLA export revision was stored (Unix time)",
            (),
            success,
        ),
        Family(
            "certmon_export_last_month_end_timestamp_seconds",
            "end of the newest exported month, Bangkok midnight (Unix time); alert when older than ~32 days",
            (),
            month_end,
        ),
    ]


# Command line


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("export", help="monthly SLA exports: export or restate a month, verify a directory")
    parser.add_argument("--month", help="YYYY-MM, cut in Bangkok time (default: the previous month)")
    parser.add_argument("--out", type=Path, help="also write the revision's files to OUT/<month>/r<revision>/")
    parser.set_defaults(handler=cmd_export)
    sub = parser.add_subparsers(dest="export_command", metavar="{verify,list}")
    verify = sub.add_parser("verify", help="check an export directory's signature and every file's SHA-256")
    verify.add_argument("directory", type=Path)
    verify.add_argument("--public-key", type=Path, help="the PEM served at /api/v1/exports/public-key")
    verify.set_defaults(handler=cmd_verify)
    sub.add_parser("list", help="list stored revisions").set_defaults(handler=cmd_list)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from certmon import cli
    from certmon.policy import load_policy

    policy = load_policy(settings.policy_path)
    now = datetime.now(UTC)
    try:
        period = parse_period(args.month, policy.tz) if args.month else previous_month(now, policy.tz)
    except ValueError as exc:
        print(f"certmon: --month: {exc}", file=sys.stderr)
        return 2
    if len(period.label) != len("2021-08"):
        print("certmon: --month: give one month as YYYY-MM", file=sys.stderr)
        return 2
    key = signing.load_or_create_key(settings.effective_signing_key_path)

    async def work(conn: asyncpg.Connection) -> tuple[ExportResult, Path | None]:
        q = db.Queries.load()
        result = await export_month(conn, q, policy, key, period, now, "cli")
        path = None
        if args.out is not None:
            files = await stored_files(conn, q, result.month, result.revision)
            path = write_directory(args.out, result.month, result.revision, files)
        return result, path

    result, path = cli.run_db(settings, work)
    state = "created" + (" (restated)" if result.restated else "") if result.created else "unchanged"
    print(f"{result.month} revision {result.revision} {state}")
    if path is not None:
        print(f"written to {path}")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    public_key = None
    if args.public_key is not None:
        try:
            public_key = signing.load_public_pem(args.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"certmon: --public-key: {exc}", file=sys.stderr)
            return 2
    problems = signing.verify_directory(args.directory, public_key)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads((args.directory / signing.MANIFEST).read_bytes())
        checked = len(data["files"])
        print(f"OK {data['month']} revision {data['revision']}: signature and {checked} files verified")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from certmon import cli

    async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(db.Queries.load()["export_list"], None)

    print(f"{'MONTH':<8} {'REV':>3}  {'GENERATED':<26} {'BY':<10} RESTATED")
    for r in cli.run_db(settings, work):
        generated = r["generated_at"].isoformat(timespec="seconds")
        restated = "yes" if r["restated"] else "no"
        print(f"{r['month']:<8} {r['revision']:>3}  {generated:<26} {r['generated_by']:<10} {restated}")
    return 0
