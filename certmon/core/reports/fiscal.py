"""The fiscal-year KPI report as a PDF in the government's form: the KPI table with its colours, then the detail.

It is a pure function of the report's JSON (certmon.store.fiscal_kpis.build), so the JSON and the PDF always agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from certmon.core.reports import method, pdf
from certmon.core.reports.labels import LABELS
from certmon.core.reports.ranking import WORST_AGENCIES
from certmon.core.words import Lang, figure, local_date, local_time, month_short, word

TEMPLATE = "fiscal.html"


def title(report: dict[str, Any], lang: Lang) -> str:
    return LABELS[lang]["fiscal_title"].format(fy=report["fiscal_year"])


def _subtitle(report: dict[str, Any], lang: Lang) -> str:
    labels = LABELS[lang]
    period_start = datetime.fromisoformat(report["window"]["start"])
    if report["quarter"]:
        start = local_date(period_start, lang)
        return labels["fiscal_quarter"].format(quarter=report["quarter"], fy=report["fiscal_year"], start=start)
    last_day = period_start.replace(year=period_start.year + 1) - timedelta(days=1)
    return labels["fiscal_year"].format(start=local_date(period_start, lang), end=local_date(last_day, lang))


def _kpi_rows(report: dict[str, Any], lang: Lang) -> list[dict[str, Any]]:
    labels = LABELS[lang]
    objective = report["objective"]
    rows = []
    for kpi in report["kpis"]:
        basis = kpi["basis"]
        if "decided" in basis:
            label = objective[f"label_{lang}"]
            sub = labels["basis_sla"].format(label=label, met=f"{basis['met']:,}", decided=f"{basis['decided']:,}")
        else:
            sub = labels["basis_survey"].format(responses=f"{basis['responses']:,}", mean=basis["mean_score"])
        rows.append(
            {
                "name": kpi[f"kpi_{lang}"],
                "sub": sub,
                "target": figure(kpi["target"]),
                "result": figure(kpi["result"]),
                "status": kpi["status"],
                "status_word": word("status", kpi["status"], lang),
            }
        )
    return rows


def _group_row(row: dict[str, Any], label: str, name: str, lang: Lang) -> dict[str, Any]:
    return {
        "label": label,
        "name": name,
        "met": f"{row['met']:,}",
        "breached": f"{row['breached']:,}",
        "excluded": f"{row['excluded']:,}",
        "result": figure(row["result"]),
        "status": row["status"],
        "status_word": word("status", row["status"], lang),
    }


def _sources(report: dict[str, Any], lang: Lang) -> dict[str, Any]:
    labels = LABELS[lang]
    sources = report["sources"]
    revisions = [
        {
            "month": month_short(r["month"], lang),
            "revision": r["revision"],
            "basis": f"{r['met']:,} / {r['decided']:,}",
            "sha256": r["manifest_sha256"],
        }
        for r in sources["revisions"]
    ]
    lines = []
    if sources["missing"]:
        missing = ", ".join(month_short(m, lang) for m in sources["missing"])
        lines.append(("warn", labels["missing"].format(months=missing)))
    if sources["matches"] is not None:
        agrees = sources["matches"]
        text = labels["agrees" if agrees else "differs"].format(
            met=f"{sources['met']:,}", decided=f"{sources['decided']:,}"
        )
        lines.append(("ok" if agrees else "warn", text))
    return {"revisions": revisions, "fingerprint": sources["fingerprint"], "lines": lines}


def context(report: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """What fiscal.html shows, every figure already in the words and number format people read."""
    labels = LABELS[lang]
    m = report["method"]
    objective = report["objective"]
    rules = m["clocks"]
    evaluated = report["evaluated_at"]
    return {
        "labels": labels,
        "subtitle": _subtitle(report, lang),
        "window": report["window"][f"label_{lang}"],
        "evaluated": labels["evaluated"].format(at=local_time(datetime.fromisoformat(evaluated), lang))
        if evaluated
        else "",
        "kpis": _kpi_rows(report, lang),
        "colour_rule": method.colour_rule(m["green_max_shortfall"], m["yellow_max_shortfall"], lang),
        "sectors": [_group_row(r, word("sector", r["sector"], lang), "", lang) for r in report["sectors"]],
        "worst_title": labels["worst"].format(count=WORST_AGENCIES),
        "agencies": [
            _group_row(r, r["code"], (r["name_th"] if lang == "th" else r["name"]) or r["name"] or "", lang)
            for r in report["agencies"]
        ],
        "clocks": [method.clock_sentence(rule, objective[f"label_{lang}"], len(rules) > 1, lang) for rule in rules],
        "notes": method.counting_notes(lang),
        "satisfaction_note": method.satisfaction_note(lang) if len(report["kpis"]) > 1 else "",
        "sources": _sources(report, lang),
        "footer": labels["footer_fiscal"].format(fy=report["fiscal_year"]),
        "page_word": labels["page"],
    }


def created_at(report: dict[str, Any]) -> datetime:
    """The PDF's date: the instant its figures were evaluated at, or the window's end when nothing was."""
    return datetime.fromisoformat(report["evaluated_at"] or report["window"]["end"])


def render(report: dict[str, Any], lang: Lang) -> bytes:
    return pdf.render(TEMPLATE, context(report, lang), lang=lang, title=title(report, lang), created=created_at(report))
