"""What a monthly SLA export holds: its columns, its evaluation instant, restatement diffs, files and manifest.

A month's data files are a pure function of the stored rows, the policy and the month. Incident states are taken
at the month's *evaluation instant*: the month's end plus the longest target of every SLA objective and severity,
each counted on its own calendar. Every clock that started in the month is due by then, so none is still pending
(a clock that a pause still holds shows as paused; its resumption later restates the month), and the instant does
not depend on when the export runs. The generation time appears in the manifest only.

figures.csv and incidents.csv are the KPI objective's, as they were before the policy had other objectives; the
objective files hold every objective, the KPI's included. report.pdf and export.xlsx are for people, in the
revision's report language (content["report"]); the CSV files and export.json keep machine-readable codes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon.core import signing
from certmon.core.periods import Period, previous_month
from certmon.core.policy import Policy
from certmon.core.reports import monthly, pdf
from certmon.core.tables import CSV_MEDIA, JSON_MEDIA, XLSX_MEDIA, Column, Table, to_csv, to_json, to_xlsx
from certmon.core.words import Lang, local_time, month_name

FORMAT = "certmon-monthly-export/3"
# What each format after the one named adds, oldest first: a restatement that brings a month exported in an older
# format up to FORMAT gives every step from there.
FORMAT_CHANGES = {
    "certmon-monthly-export/1": (
        "adds objectives.csv, objective-figures.csv and incident-objectives.csv (every SLA objective of the policy) "
        "and evaluates the month once every objective's clocks are due; figures.csv and incidents.csv keep the KPI's "
        "figures and clocks, computed as before"
    ),
    "certmon-monthly-export/2": (
        "adds report.pdf (the month's report for people, in the report language) and the report settings it is "
        "drawn with; export.xlsx gains title rows, words for statuses and states, and date cells"
    ),
}


MANIFEST_FORMAT = "certmon-export-manifest/1"


RESTATE_MONTHS = 12  # a scheduled run re-checks the exported months of the last year for late changes


FIGURE_FIELDS = (
    "total", "met", "breached", "pending", "at_risk", "excluded", "no_clock", "compliance", "target", "shortfall",
    "status", "delay_p50", "delay_p90", "delay_p95", "delay_max",
)  # fmt: skip


# Figures of objective-figures.csv: those of figures.csv, and the clocks a pause holds.
OBJECTIVE_FIGURE_FIELDS = (*FIGURE_FIELDS[:5], "paused", *FIGURE_FIELDS[5:])


# Fields of incident-objectives.csv that a restatement compares.
INCIDENT_OBJECTIVE_FIELDS = (
    "state", "clock_start", "due_at", "stopped_at", "delay_seconds", "paused_seconds", "paused_since",
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
    Column("severity", "Severity", "ระดับความรุนแรง", "severity", 10),
    Column("category", "Category (RSIT)", "ประเภท", width=32),
    Column("detected_at", "Detected", "เวลาตรวจพบ", "time", 20),
    Column("analysed_at", "Analysed", "เวลาวิเคราะห์แล้วเสร็จ", "time", 20),
    Column("notified_at", "Notified", "เวลาแจ้งเตือน", "time", 20),
    Column("acknowledged_at", "Acknowledged", "เวลารับทราบ", "time", 20),
    Column("contained_at", "Contained", "เวลาระงับเหตุ", "time", 20),
    Column("resolved_at", "Resolved", "เวลาแก้ไขแล้วเสร็จ", "time", 20),
    Column("clock_start", "Clock start", "เริ่มนับเวลา", "time", 20),
    Column("due_at", "Due", "ครบกำหนด", "time", 20),
    Column("stopped_at", "Clock stop", "หยุดนับเวลา", "time", 20),
    Column("state", "SLA state", "สถานะ SLA", "state", 14),
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
    Column("band", "Band", "ระดับ", "band", 12),
    Column("target", "Target %", "เป้าหมาย (ร้อยละ)", "number"),
    Column("status", "Status", "สถานะ", "status", 10),
)


OBJECTIVE_COLUMNS = (
    Column("objective", "Objective", "ตัวชี้วัด", width=14),
    Column("label_th", "Thai name", "ชื่อตัวชี้วัด", width=40),
    Column("label_en", "Name", "ชื่อ (อังกฤษ)", width=40),
    Column("kpi", "KPI", "ตัวชี้วัดหลัก", width=8),
    Column("severity", "Severity", "ระดับความรุนแรง", "severity", 10),
    Column("start", "Clock starts at", "เริ่มนับเมื่อ", width=14),
    Column("stop", "Clock stops at", "หยุดนับเมื่อ", width=20),
    Column("calendar", "Calendar", "ปฏิทิน", width=12),
    Column("target_seconds", "Target (s)", "เป้าหมาย (วินาที)", "int"),
    Column("pauses", "Pauses count", "หยุดนับระหว่างรอหน่วยงาน", width=10),
)


OBJECTIVE_FIGURE_COLUMNS = (
    Column("objective", "Objective", "ตัวชี้วัด", width=14),
    *FIGURE_COLUMNS[:10],
    Column("paused", "Paused", "หยุดนับชั่วคราว", "int"),
    *FIGURE_COLUMNS[10:],
)


INCIDENT_OBJECTIVE_COLUMNS = (
    Column("id", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("objective", "Objective", "ตัวชี้วัด", width=14),
    Column("agency", "Agency", "หน่วยงาน", width=10),
    Column("severity", "Severity", "ระดับความรุนแรง", "severity", 10),
    Column("state", "SLA state", "สถานะ SLA", "state", 14),
    Column("clock_start", "Clock start", "เริ่มนับเวลา", "time", 20),
    Column("due_at", "Due", "ครบกำหนด", "time", 20),
    Column("stopped_at", "Clock stop", "หยุดนับเวลา", "time", 20),
    Column("delay_seconds", "Delay (s)", "ระยะเวลา (วินาที)", "seconds"),
    Column("paused_seconds", "Paused (s)", "เวลาที่หยุดนับ (วินาที)", "seconds"),
    Column("paused_since", "Paused since", "หยุดนับตั้งแต่", "time", 20),
)


RESTATED_FIGURE_COLUMNS = (
    Column("objective", "Objective", "ตัวชี้วัด", width=14),
    Column("scope", "Scope", "ขอบเขต", width=12),
    Column("key", "Key", "รหัส", width=18),
    Column("figure", "Figure", "ตัวเลข", width=14),
    Column("old", "Previous value", "ค่าเดิม", width=20),
    Column("new", "Restated value", "ค่าใหม่", width=20),
)


RESTATED_INCIDENT_COLUMNS = (
    Column("incident", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("objective", "Objective", "ตัวชี้วัด", width=14),
    Column("field", "Field", "รายการ", width=16),
    Column("old", "Previous value", "ค่าเดิม", width=26),
    Column("new", "Restated value", "ค่าใหม่", width=26),
    Column("reasons", "Reasons", "เหตุผล", width=60),
)


REASON_COLUMNS = (
    Column("incident", "Incident", "เลขที่เหตุการณ์", "int", 10),
    Column("type", "Event", "เหตุการณ์", width=12),
    Column("milestone", "Milestone", "ขั้นตอน", width=12),
    Column("at", "At", "เวลา", "time", 20),
    Column("reason", "Reason", "เหตุผล", width=40),
    Column("note", "Note", "หมายเหตุ", width=30),
    Column("actor", "By", "ผู้บันทึก", width=16),
    Column("recorded_at", "Recorded", "เวลาที่บันทึก", "time", 20),
)


@dataclass(frozen=True, slots=True)
class ExportResult:
    month: str
    revision: int
    created: bool  # False when the stored latest revision already holds the same data
    restated: bool
    generated_at: datetime
    export_id: int


def evaluation_instant(policy: Policy, period: Period, objectives: Iterable[str] | None = None) -> datetime:
    """The period's end plus the longest target of every objective (or of those given) and severity, each on its
    own calendar: every clock that started in the period is due by then, unless a pause holds it."""
    return max(
        policy.calendar_for(severity, name).add(period.end, policy.rule(severity, name).target_seconds)
        for name in (policy.objectives if objectives is None else objectives)
        for severity in policy.severities
    )


def objective_rows(policy: Policy) -> list[dict[str, Any]]:
    """What each objective measures, per severity: the key to reading the objective files."""
    rows = []
    for name, objective in policy.objectives.items():
        for severity in policy.severities:
            rule = policy.rule(severity, name)
            rows.append(
                {"objective": name, "label_th": objective.label_th, "label_en": objective.label_en,
                 "kpi": objective.kpi, "severity": severity, "start": rule.start, "stop": rule.stop,
                 "calendar": rule.calendar, "target_seconds": rule.target_seconds, "pauses": rule.pauses}
            )  # fmt: skip
    return rows


def report_settings(policy: Policy, lang: Lang) -> dict[str, Any]:
    """What report.pdf is drawn with besides the month's figures: its language and the colour rule's thresholds."""
    return {
        "lang": lang,
        "green_max_shortfall": policy.green_max_shortfall,
        "yellow_max_shortfall": policy.yellow_max_shortfall,
    }


def _reason(kind: str, text: str) -> dict[str, Any]:
    return {"incident": None, "type": kind, "milestone": None, "at": None, "reason": text, "note": None,
            "actor": None, "recorded_at": None}  # fmt: skip


def format_reason(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The restatement reason of a revision whose format differs from the previous revision's, else None."""
    if old.get("format") == new["format"]:
        return None
    steps = list(FORMAT_CHANGES)
    older = old.get("format", "")
    what = "; ".join(FORMAT_CHANGES[f] for f in steps[steps.index(older) :]) if older in steps else None
    text = f"export format {old.get('format')} -> {new['format']}: {what or 'see the export documentation'}"
    if old.get("evaluated_at") != new["evaluated_at"]:
        text += f"; evaluated at {new['evaluated_at']} (was {old.get('evaluated_at')})"
    return _reason("format", text)


def report_reason(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The restatement reason of a revision whose report language or colour thresholds changed, else None."""
    before, after = old.get("report"), new.get("report")
    if before is None or after is None or before == after:
        return None  # a revision without report settings is an older format: format_reason tells
    changed = ", ".join(f"{k} {before.get(k)} -> {after.get(k)}" for k in after if before.get(k) != after.get(k))
    return _reason("report", f"report settings changed: {changed}")


def local_iso(value: datetime | None, policy: Policy) -> str | None:
    return None if value is None else value.astimezone(policy.tz).isoformat()


def figure_row(
    scope: str, key: str, figures: dict[str, Any], target: float, fields: Sequence[str] = FIGURE_FIELDS
) -> dict[str, Any]:
    latency = figures["latency_seconds"]
    return {
        "scope": scope,
        "key": key,
        **{name: figures[name] for name in fields if name in figures},
        "target": target,
        "delay_p50": latency["p50"],
        "delay_p90": latency["p90"],
        "delay_p95": latency["p95"],
        "delay_max": latency["max"],
    }


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(to_json({k: v for k, v in content.items() if k != "restatement"})).hexdigest()


def diff_rows(
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


def overall_counts(figures_csv: bytes) -> tuple[int, int]:
    """Met and breached of the overall row of a stored figures.csv."""
    for row in csv.DictReader(io.StringIO(figures_csv.decode("utf-8-sig"))):
        if row["scope"] == "overall":
            return int(row["met"]), int(row["breached"])
    raise ValueError("figures.csv has no overall row")


def reason_text(event: dict[str, Any]) -> str:
    what = event["type"] + (f" {event['milestone']}" if event["milestone"] else "")
    why = f": {event['reason']}" if event["reason"] else ""
    return f"{what} at {event['at']}{why} (by {event['actor']}, recorded {event['recorded_at']})"


def tables(content: dict[str, Any]) -> list[Table]:
    found = [
        Table("figures", "Figures", FIGURE_COLUMNS, content["figures"]),
        Table("incidents", "Incidents", INCIDENT_COLUMNS, content["incidents"]),
    ]
    if "objectives" in content:  # absent from revisions of format 1, which a restatement reads back
        found += [
            Table("objectives", "Objectives", OBJECTIVE_COLUMNS, content["objectives"]),
            Table("objective-figures", "Objective figures", OBJECTIVE_FIGURE_COLUMNS, content["objective_figures"]),
            Table(
                "incident-objectives", "Incident objectives", INCIDENT_OBJECTIVE_COLUMNS, content["incident_objectives"]
            ),
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


def _lang(content: dict[str, Any]) -> Lang:
    return "en" if content.get("report", {}).get("lang") == "en" else "th"


def workbook_note(content: dict[str, Any], lang: Lang) -> str:
    """The line under each sheet's title: evaluation instant, time zone, units and the codes' files."""
    at = local_time(datetime.fromisoformat(content["evaluated_at"]), lang)
    zone = content["period"]["timezone"]
    if lang == "th":
        return (
            f"ประเมินสถานะ ณ {at} · เวลาทั้งหมดเป็นเวลา {zone} · ร้อยละแสดงทศนิยม 2 ตำแหน่ง · "
            "ค่าตามรหัสและค่าละเอียดอยู่ในไฟล์ CSV และ export.json · ที่มา: certmon"
        )
    return (
        f"States evaluated at {at} · all times in {zone} · percentages to two decimals · "
        "codes and exact values are in the CSV files and export.json · source: certmon"
    )


def render(content: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """File name -> (media type, bytes); the same content always renders to the same bytes.

    PDF rendering takes a second or more for a month of 250 agencies: callers on an event loop run this in an
    executor.
    """
    found = tables(content)
    files = {f"{t.name}.csv": (CSV_MEDIA, to_csv(t)) for t in found}
    files["export.json"] = (JSON_MEDIA, to_json(content))
    created = datetime.fromisoformat(content["evaluated_at"]).astimezone(UTC)
    lang = _lang(content)
    year, month = int(content["month"][:4]), int(content["month"][5:7])
    heading = ("certmon: รายงาน SLA ประจำเดือน" if lang == "th" else "certmon: SLA export, ") + month_name(
        year, month, lang
    )
    files["export.xlsx"] = (
        XLSX_MEDIA,
        to_xlsx(found, created, heading, lang=lang, note=workbook_note(content, lang)),
    )
    if "report" in content:  # revisions of formats 1 and 2, which a restatement reads back, had no report.pdf
        files[monthly.NAME] = (pdf.MEDIA, monthly.render(content))
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


def write_directory(out: Path, month: str, revision: int, files: dict[str, tuple[str, bytes]]) -> Path:
    """Write a revision to ``out/<month>/r<revision>/``; returns that directory."""
    target = out / month / f"r{revision}"
    target.mkdir(parents=True, exist_ok=True)
    for name, (_, data) in files.items():
        partial = target / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(target / name)
    return target


def months_to_run(now: datetime, policy: Policy, exported: Sequence[str]) -> list[Period]:
    """The previous month, every month missed since the last export, and exported months of the last year."""
    latest = previous_month(now, policy.tz)
    window = [latest]
    while len(window) < RESTATE_MONTHS:
        window.insert(0, previous_month(window[0].start, policy.tz))
    done = set(exported)
    last = max(done) if done else None
    return [m for m in window if m.label in done or m is latest or (last is not None and m.label > last)]
