"""The fiscal-year KPI report of the CERT, as in the government's quarterly performance report: window and tables.

A quarter's report is cumulative from 1 October, like the published one: "FY2564 Q4" covers the fiscal year to the
end of September. Its data window stops at the start of the current Bangkok month while the period is still
running, which is how the published FY2564 figure came to cover October 2020 - August 2021.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from certmon.core.periods import (
    BE_OFFSET,
    Period,
    current_month,
    fiscal_quarter_period,
    fiscal_year_period,
    from_earliest,
)
from certmon.core.policy import Policy
from certmon.core.reports import fiscal as fiscal_pdf
from certmon.core.reports import pdf
from certmon.core.tables import Column, Table, to_csv, to_json, to_xlsx
from certmon.core.words import LANGS as LANGS  # the report's languages, as callers import them from here
from certmon.core.words import MONTHS_EN, MONTHS_TH, local_time, word
from certmon.core.words import Lang as Lang

FORMATS = ("table", "csv", "json", "xlsx", "pdf")


SLA_KPI = {
    "th": "ร้อยละของการแจ้งเตือนและดำเนินการเพื่อระงับหรือป้องกันการโจมตีฯ โดย ThaiCERT ภายใน 1 ชั่วโมง",
    "en": "Alerts notified and acted on by ThaiCERT within 1 hour",
}


SATISFACTION_KPIS = {
    "security-services": {
        "th": "ร้อยละความพึงพอใจในการให้บริการด้านความมั่นคงปลอดภัยฯ",
        "en": "Satisfaction with security services",
    },
    "cii-services": {
        "th": "ร้อยละความพึงพอใจในการให้บริการโครงสร้างพื้นฐานสำคัญฯ",
        "en": "Satisfaction with critical information infrastructure (CII) services",
    },
}


@dataclass(frozen=True, slots=True)
class Window:
    """The months a report covers: its period cut at the start of the current month while that is still running."""

    period: Period  # the fiscal year or quarter asked for
    start: datetime
    end: datetime  # exclusive; equal to start when no month of the period has ended yet

    @property
    def empty(self) -> bool:
        return self.end <= self.start

    def label(self, lang: Lang, policy: Policy) -> str:
        if self.empty:
            return "-"
        first = self.start.astimezone(policy.tz)
        last = (self.end.astimezone(policy.tz).replace(day=1) - timedelta(days=1)).replace(day=1)
        if lang == "th":
            return f"ข้อมูล {_th_month(first)} - {_th_month(last)}"
        return f"{MONTHS_EN[first.month - 1]} {first.year} - {MONTHS_EN[last.month - 1]} {last.year}"


def _th_month(dt: datetime) -> str:
    # The published report writes months as "ต.ค.63": the Thai abbreviation and the last two digits of the BE year.
    return f"{MONTHS_TH[dt.month - 1]}{(dt.year + BE_OFFSET) % 100:02d}"


def window_of(policy: Policy, fiscal_year: int, quarter: int | None, now: datetime) -> Window:
    year = fiscal_year_period(fiscal_year, policy.tz)
    period = year if quarter is None else fiscal_quarter_period(fiscal_year, quarter, policy.tz)
    end = min(period.end, max(year.start, current_month(now, policy.tz).start))
    return Window(period, year.start, end)


def percent(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio * 100, 2)


def _basis(kpi: dict[str, Any], lang: Lang) -> str:
    basis = kpi["basis"]
    if "decided" in basis:
        if lang == "th":
            return f"ทันเวลา {basis['met']:,} จาก {basis['decided']:,} เหตุการณ์"
        return f"{basis['met']:,} of {basis['decided']:,} incidents on time"
    if lang == "th":
        return f"ผู้ตอบ {basis['responses']:,} ราย คะแนนเฉลี่ย {basis['mean_score']}"
    return f"{basis['responses']:,} responses, mean {basis['mean_score']}"


def table(report: dict[str, Any], lang: Lang) -> Table:
    window = report["window"][f"label_{lang}"]
    columns = (
        Column("kpi", "KPI", "ตัวชี้วัด", width=60),
        Column("target", "Target (%)", "เป้าหมาย (ร้อยละ)", "number", 12),
        Column("result", "Result (%)", "ผล (ร้อยละ)", "number", 12),
        Column("status", "Status", "สถานะ", "status", 10),
        Column("window", "Data window", "ช่วงข้อมูล", width=26),
        Column("basis", "Basis", "ฐานการคำนวณ", width=34),
    )
    rows = [
        {
            "kpi": kpi[f"kpi_{lang}"],
            "target": kpi["target"],
            "result": kpi["result"],
            "status": kpi["status"],
            "window": window,
            "basis": _basis(kpi, lang),
        }
        for kpi in report["kpis"]
    ]
    title = f"FY{report['fiscal_year']}" + (f" Q{report['quarter']}" if report["quarter"] else "")
    return Table("fiscal-report", title, columns, rows)


SECTOR_COLUMNS = (
    Column("sector", "Sector", "ภาคส่วน", width=34),
    Column("met", "Met", "ทันเวลา", "int"),
    Column("breached", "Breached", "เกินเวลา", "int"),
    Column("pending", "Pending", "รอดำเนินการ", "int"),
    Column("excluded", "Excluded", "ไม่นับรวม", "int"),
    Column("result", "Result (%)", "ผล (ร้อยละ)", "number", 12),
    Column("status", "Status", "สถานะ", "status", 10),
)


AGENCY_COLUMNS = (
    Column("code", "Agency", "รหัสหน่วยงาน", width=10),
    Column("name", "Name", "ชื่อ", width=40),
    Column("name_th", "Thai name", "ชื่อภาษาไทย", width=40),
    Column("sector", "Sector", "ภาคส่วน", width=34),
    Column("met", "Met", "ทันเวลา", "int"),
    Column("breached", "Breached", "เกินเวลา", "int"),
    Column("excluded", "Excluded", "ไม่นับรวม", "int"),
    Column("result", "Result (%)", "ผล (ร้อยละ)", "number", 12),
    Column("status", "Status", "สถานะ", "status", 10),
)


def workbook_tables(report: dict[str, Any], lang: Lang) -> list[Table]:
    """The XLSX's sheets: the KPI table, then the sectors and the worst agencies, sectors named in ``lang``."""
    sectors = [{**row, "sector": word("sector", row["sector"], lang)} for row in report["sectors"]]
    agencies = [{**row, "sector": word("sector", row["sector"], lang)} for row in report["agencies"]]
    return [
        table(report, lang),
        Table("sectors", "Sectors", SECTOR_COLUMNS, sectors),
        Table("agencies", "Worst agencies", AGENCY_COLUMNS, agencies),
    ]


def workbook_note(report: dict[str, Any], lang: Lang) -> str:
    """The line under the title: unit, data window, evaluation instant and source."""
    window = report["window"][f"label_{lang}"]
    at = report["evaluated_at"]
    when = local_time(datetime.fromisoformat(at), lang) if at else "-"
    if lang == "th":
        return f"หน่วย: ร้อยละ · {window} · ประเมินสถานะ ณ {when} (เวลากรุงเทพฯ) · ที่มา: certmon"
    return f"Unit: percent · data window {window} · states evaluated at {when} (Bangkok time) · source: certmon"


def text_table(report: dict[str, Any], lang: Lang) -> str:
    t = table(report, lang)
    header = [c.th if lang == "th" else c.en for c in t.columns]
    cells = [[_text(row.get(c.key), c.key, lang) for c in t.columns] for row in t.rows]
    widths = [max(_width(h), *(_width(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = [
        "  ".join(v + " " * (w - _width(v)) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *cells)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    """Terminal columns: Thai vowel and tone marks sit on their consonant and take none."""
    return sum(unicodedata.category(c) != "Mn" for c in text)


def _text(value: Any, key: str, lang: Lang) -> str:
    if key == "status":
        return word("status", value, lang)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def render(report: dict[str, Any], fmt: str, lang: Lang) -> bytes:
    if fmt == "json":
        return to_json({**report, "lang": lang})
    if fmt == "csv":
        return to_csv(table(report, lang))
    if fmt == "xlsx":
        created = datetime.fromisoformat(report["window"]["end"]).astimezone(UTC)
        heading = fiscal_pdf.title(report, lang)
        if report["quarter"]:
            heading += f" ไตรมาสที่ {report['quarter']}" if lang == "th" else f", quarter {report['quarter']}"
        return to_xlsx(workbook_tables(report, lang), created, heading, lang=lang, note=workbook_note(report, lang))
    if fmt == "pdf":
        return fiscal_pdf.render(report, lang)
    return text_table(report, lang).encode()


MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "table": "text/plain; charset=utf-8",
    "pdf": pdf.MEDIA,
}


def parse_fiscal_year(raw: str) -> int:
    """2564 or FY2564; ValueError for a CE year (with a hint) or one out of range."""
    text = raw.strip().upper().removeprefix("FY")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{raw!r} is not a fiscal year such as 2564")
    value = int(text)
    utc = ZoneInfo("UTC")
    from_earliest(fiscal_year_period(value, utc), utc, f"fiscal year FY{value}")  # its checks explain a CE year
    return value
