"""report.pdf of a monthly export: the month's figures for people, with colours, and what a restatement changed.

It is a pure function of the revision's content (what export.json holds), dated at the revision's evaluation
instant, so regenerating an unchanged month gives the same bytes as every other file of the revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from certmon.core.reports import method, pdf
from certmon.core.reports.labels import LABELS
from certmon.core.reports.ranking import WORST_AGENCIES, worst
from certmon.core.words import Lang, duration, figure, local_date, local_time, month_name, percent_of, word

TEMPLATE = "monthly.html"
NAME = "report.pdf"
RESTATED_ROWS = 30  # the PDF lists this many changed figures and reasons; the restatement CSVs hold them all
RATIO_FIGURES = frozenset({"compliance", "target", "shortfall", "top2_share"})
SCOPE_ORDER = {"overall": 0, "sector": 1, "severity": 2, "agency": 3, "satisfaction": 4}


def _month(content: Mapping[str, Any], lang: Lang) -> str:
    year, month = int(content["month"][:4]), int(content["month"][5:7])
    return month_name(year, month, lang)


def _revision(content: Mapping[str, Any]) -> int:
    restatement = content.get("restatement")
    return 1 if not restatement else int(restatement["previous_revision"]) + 1


def title(content: Mapping[str, Any], lang: Lang) -> str:
    return LABELS[lang]["monthly_title"].format(month=_month(content, lang))


def _group(row: Mapping[str, Any], label: str, name: str, lang: Lang) -> dict[str, Any]:
    return {
        "label": label,
        "name": name,
        "met": f"{row['met']:,}",
        "breached": f"{row['breached']:,}",
        "excluded": f"{row['excluded']:,}",
        "paused": f"{row.get('paused', 0):,}",
        "total": f"{row['total']:,}",
        "result": percent_of(row["compliance"]),
        "status": row["status"],
        "status_word": word("status", row["status"], lang),
    }


def _agency_name(row: Mapping[str, Any], lang: Lang) -> str:
    first, other = ("name_th", "name") if lang == "th" else ("name", "name_th")
    return str(row.get(first) or row.get(other) or "")


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else figure(seconds / 60, 1)


def _targets(rules: list[dict[str, Any]], lang: Lang) -> str:
    if len(rules) == 1:
        return duration(rules[0]["target_seconds"], lang)
    return ", ".join(f"{'/'.join(r['severities'])} {duration(r['target_seconds'], lang)}" for r in rules)


def _objectives(content: Mapping[str, Any], lang: Lang) -> list[dict[str, Any]]:
    overall = {r["objective"]: r for r in content["objective_figures"] if r["scope"] == "overall"}
    rows = []
    for name in dict.fromkeys(r["objective"] for r in content["objectives"]):
        described = next(r for r in content["objectives"] if r["objective"] == name)
        figures = overall.get(name)
        if figures is None:
            continue
        rows.append(
            {
                **_group(figures, described[f"label_{lang}"], name, lang),
                "target_time": _targets(method.clock_rules(content["objectives"], name), lang),
                "kpi": described["kpi"],
            }
        )
    return rows


# The restated figures the PDF lists, in this order; delays and the rest are in restatement-figures.csv.
SHOWN_FIGURES = ("total", "met", "breached", "pending", "excluded", "no_clock", "paused", "compliance", "status",
                 "responses", "satisfaction_percent")  # fmt: skip
FIGURE_WORDS: dict[Lang, dict[str, str]] = {
    "th": {"total": "เหตุการณ์ทั้งหมด", "compliance": "ร้อยละที่ทันเวลา", "status": "สถานะ", "responses": "ผู้ตอบ",
           "satisfaction_percent": "ร้อยละความพึงพอใจ", "overall": "ภาพรวม", "satisfaction": "ความพึงพอใจ",
           "severity": "ระดับความรุนแรง", "agency": "หน่วยงาน"},
    "en": {"total": "incidents", "compliance": "compliance", "status": "status", "responses": "responses",
           "satisfaction_percent": "satisfaction %", "overall": "overall", "satisfaction": "satisfaction",
           "severity": "severity", "agency": "agency"},
}  # fmt: skip


def _figure_name(name: str, lang: Lang) -> str:
    return FIGURE_WORDS[lang].get(name) or word("state", name, lang)


def _scope(row: Mapping[str, Any], lang: Lang) -> str:
    scope, key = row["scope"], row["key"]
    if scope == "sector":
        return word("sector", key, lang)
    if scope in FIGURE_WORDS[lang]:
        return FIGURE_WORDS[lang][scope] + (f" {key}" if key else "")
    return f"{scope} {key}"


def _value(name: str, value: Any, lang: Lang) -> str:
    if value is None:
        return "-"
    if name == "status":
        return word("status", value, lang)
    if name in RATIO_FIGURES and isinstance(value, int | float):
        return percent_of(value) + " %"
    if isinstance(value, float):
        return figure(value)
    return str(value)


def _restatement(content: Mapping[str, Any], lang: Lang, kpi: str) -> dict[str, Any] | None:
    restatement = content.get("restatement")
    if not restatement:
        return None
    labels = LABELS[lang]
    shown = sorted(
        (r for r in restatement["figures"] if r["figure"] in SHOWN_FIGURES),
        key=lambda r: (
            r["objective"] or "",
            SCOPE_ORDER.get(r["scope"], 9),
            r["key"] or "",
            SHOWN_FIGURES.index(r["figure"]),
        ),
    )
    changed = [
        {
            # No objective: a row of figures.csv (the KPI's) or satisfaction.csv.
            "objective": r["objective"] or ("-" if r["scope"] == "satisfaction" else kpi),
            "scope": _scope(r, lang),
            "figure": _figure_name(r["figure"], lang),
            "old": _value(r["figure"], r["old"], lang),
            "new": _value(r["figure"], r["new"], lang),
        }
        for r in shown[:RESTATED_ROWS]
    ]
    reasons = [
        {
            "incident": "-" if r["incident"] is None else f"#{r['incident']}",
            "event": r["type"] + (f" {r['milestone']}" if r["milestone"] else ""),
            "at": local_time(datetime.fromisoformat(r["at"]), lang) if r["at"] else "",
            "reason": r["reason"] or r["note"] or "",
            "by": r["actor"] or "",
        }
        for r in restatement["reasons"][:RESTATED_ROWS]
    ]
    more = {
        "figures": len(restatement["figures"]) - len(changed),
        "reasons": max(0, len(restatement["reasons"]) - RESTATED_ROWS),
    }
    return {
        "heading": labels["restatement"].format(previous=restatement["previous_revision"]),
        "figures_line": labels["restated_figures"].format(count=len(restatement["figures"])),
        "incidents_line": labels["restated_incidents"].format(count=len(restatement["incidents"])),
        "figures": changed,
        "reasons": reasons,
        "more_figures": labels["more"].format(count=more["figures"]) if more["figures"] else "",
        "more_reasons": labels["more_reasons"].format(count=more["reasons"]) if more["reasons"] else "",
    }


def _satisfaction(content: Mapping[str, Any], lang: Lang) -> list[dict[str, Any]]:
    return [
        {
            "name": row[f"name_{lang}"] or row["service"],
            "responses": f"{row['responses']:,}",
            "mean": figure(row["mean_score"]),
            "result": figure(row["satisfaction_percent"]),
            "band": word("band", row["band"], lang),
            "target": figure(row["target"]),
            "status": row["status"],
            "status_word": word("status", row["status"], lang),
        }
        for row in content["satisfaction"]
    ]


def context(content: Mapping[str, Any], lang: Lang) -> dict[str, Any]:
    """What monthly.html shows, every figure already in the words and number format people read."""
    labels = LABELS[lang]
    report = content["report"]
    figures = content["figures"]
    overall = next(r for r in figures if r["scope"] == "overall")
    kpi = next(r for r in content["objectives"] if r["kpi"])
    rules = method.clock_rules(content["objectives"], kpi["objective"])
    start = datetime.fromisoformat(content["period"]["start"])
    last_day = datetime.fromisoformat(content["period"]["end"]) - timedelta(days=1)
    revision = _revision(content)
    restatement = content.get("restatement")
    agencies = [r for r in figures if r["scope"] == "agency"]
    return {
        "labels": labels,
        "subtitle": labels["revision_restated"].format(revision=revision, previous=revision - 1)
        if restatement
        else labels["revision"].format(revision=revision),
        "window": labels["data_month"].format(start=local_date(start, lang), end=local_date(last_day, lang)),
        "evaluated": labels["evaluated"].format(at=local_time(datetime.fromisoformat(content["evaluated_at"]), lang)),
        "overall": {
            **_group(overall, kpi[f"label_{lang}"], kpi["objective"], lang),
            "target": percent_of(content["target"]),
            "no_clock": f"{overall['no_clock']:,}",
            "pending": f"{overall['pending']:,}",
            "delays": " / ".join(_minutes(overall[k]) for k in ("delay_p50", "delay_p90", "delay_max")),
        },
        "objectives": _objectives(content, lang),
        "satisfaction": _satisfaction(content, lang),
        "sectors": [_group(r, word("sector", r["key"], lang), "", lang) for r in figures if r["scope"] == "sector"],
        "worst_title": labels["worst"].format(count=WORST_AGENCIES),
        "worst": [_group(r, r["key"], _agency_name(r, lang), lang) for r in worst(agencies)],
        "agencies": [_group(r, r["key"], _agency_name(r, lang), lang) for r in agencies],
        "restatement": _restatement(content, lang, kpi["objective"]),
        "clocks": [method.clock_sentence(rule, kpi[f"label_{lang}"], len(rules) > 1, lang) for rule in rules],
        "notes": method.counting_notes(lang),
        "satisfaction_note": method.satisfaction_note(lang) if content["satisfaction"] else "",
        "colour_rule": method.colour_rule(report["green_max_shortfall"], report["yellow_max_shortfall"], lang),
        "footer": labels["footer_monthly"].format(month=_month(content, lang), revision=revision),
        "page_word": labels["page"],
    }


def render(content: Mapping[str, Any]) -> bytes:
    """report.pdf in the revision's report language, dated at its evaluation instant."""
    lang: Lang = "en" if content["report"]["lang"] == "en" else "th"
    created = datetime.fromisoformat(content["evaluated_at"])
    return pdf.render(TEMPLATE, context(content, lang), lang=lang, title=title(content, lang), created=created)
