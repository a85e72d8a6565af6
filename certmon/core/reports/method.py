"""The note on method that every report prints: how a clock is counted, what is left out, and the colour rule.

Everything comes from the policy in force (through the JSON-able rows the reports carry), never from fixed text, so a
report under a policy that starts the clock at the analysis result says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from certmon.core.words import Lang, duration, figure, word

TIMES = "\N{MULTIPLICATION SIGN}"  # as the formula is printed; ruff would mistake the literal sign for an x


def clock_rules(rows: Iterable[Mapping[str, Any]], objective: str) -> list[dict[str, Any]]:
    """An objective's clocks (rows as in objectives.csv), severities with the same clock merged, in policy order."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if row["objective"] != objective:
            continue
        rule = (row["start"], row["stop"], row["target_seconds"], row["calendar"], row["pauses"])
        entry = merged.setdefault(
            rule,
            {"severities": [], "start": row["start"], "stop": row["stop"], "target_seconds": row["target_seconds"],
             "calendar": row["calendar"], "pauses": row["pauses"]},
        )  # fmt: skip
        entry["severities"].append(row["severity"])
    return list(merged.values())


def _stop(stop: str, lang: Lang) -> str:
    joined = " และ " if lang == "th" else " and "
    names = [word("milestone", part, lang) for part in stop.split("+")]
    if len(names) == 1:
        return names[0]
    return ("ครั้งหลังสุดของ" if lang == "th" else "the later of ") + joined.join(names)


def _calendar(calendar: str, lang: Lang) -> str:
    # Only the name is in the rows; the policy in the manifest says which hours another calendar counts.
    if calendar == "24x7":
        return "ตลอด 24 ชั่วโมงทุกวัน" if lang == "th" else "round the clock"
    return f"ตามปฏิทิน “{calendar}” ของนโยบาย SLA" if lang == "th" else f"on the SLA policy's “{calendar}” calendar"


def clock_sentence(rule: Mapping[str, Any], label: str, several: bool, lang: Lang) -> str:
    """One clock in words, e.g. from detection to the agency's notification within 1 hour, round the clock."""
    start, stop = word("milestone", rule["start"], lang), _stop(rule["stop"], lang)
    target, calendar = duration(rule["target_seconds"], lang), _calendar(rule["calendar"], lang)
    who = ", ".join(rule["severities"])
    if lang == "th":
        text = f"“{label}” นับเวลาตั้งแต่{start}จนถึง{stop} ภายใน {target} {calendar}"
        if several:
            text += f" (ระดับความรุนแรง {who})"
        if rule["pauses"]:
            text += " หยุดนับระหว่างรอข้อมูลจากหน่วยงาน (พร้อมเหตุผล)"
        return text
    text = f"“{label}” runs from {start} to {stop}, within {target} {calendar}"
    if several:
        text += f" (severities {who})"
    if rule["pauses"]:
        text += "; the clock stops while the CERT waits for the agency, with a reason"
    return text


def counting_notes(lang: Lang) -> list[str]:
    """How the SLA percentage is counted: the same under every policy."""
    if lang == "th":
        return [
            f"ร้อยละ = จำนวนที่ทันเวลา / (จำนวนที่ทันเวลา + จำนวนที่เกินเวลา) {TIMES} 100",
            "เหตุการณ์ที่ไม่นับรวม (เช่น ผลบวกลวง เหตุการณ์ซ้ำ) มีเหตุผลบันทึกไว้ และไม่อยู่ในตัวหาร",
            "เหตุการณ์ที่ยังไม่ครบกำหนดและยังไม่หยุดนับเวลา (รอดำเนินการ) ไม่นับรวมจนกว่าจะทราบผล",
            "เหตุการณ์นับในเดือนที่เริ่มนับเวลา ตามเวลากรุงเทพฯ (UTC+07:00)",
            "เวลาที่แก้ไขภายหลังบันทึกเป็นรายการแก้ไขพร้อมเหตุผล ไม่เขียนทับของเดิม",
        ]
    return [
        f"Percentage = met / (met + breached) {TIMES} 100",
        "Excluded incidents (false positives, duplicates) carry a recorded reason and are left out of the divisor",
        "Clocks not yet due and not yet stopped (pending) are left out until their outcome is known",
        "An incident counts in the Bangkok month (UTC+07:00) in which its clock started",
        "A time corrected later is recorded as a correction with its reason, never overwritten",
    ]


def satisfaction_note(lang: Lang) -> str:
    if lang == "th":
        return f"ร้อยละความพึงพอใจ = คะแนนเฉลี่ย (มาตราส่วน 5 ระดับ) / 5 {TIMES} 100 เช่น คะแนนเฉลี่ย 4.26 = ร้อยละ 85.2"
    return f"Satisfaction % = mean score on the 5-point scale / 5 {TIMES} 100; a mean of 4.26 is 85.2 %"


def colour_rule(green_max: float, yellow_max: float, lang: Lang) -> str:
    """The rule as the government report writes it, from the policy's thresholds of relative shortfall."""
    green, yellow = figure(green_max * 100), figure(yellow_max * 100)
    yellow_from = figure(green_max * 100 + 0.1)
    if lang == "th":
        return (
            f"เกณฑ์การระบุสีของสถานะ: สีเขียว = เป็นไปตามเป้าหมาย/ต่ำกว่าเป้าหมายไม่เกิน {green}%, "
            f"สีเหลือง = ต่ำกว่าเป้าหมาย {yellow_from}-{yellow}%, สีแดง = ต่ำกว่าเป้าหมายมากกว่า {yellow}% "
            "(ต่ำกว่าเป้าหมายคิดเป็นสัดส่วนของเป้าหมาย: (เป้าหมาย - ผล) / เป้าหมาย)"
        )
    return (
        f"Status colours: green = on target or below it by at most {green} %, yellow = below target by "
        f"{yellow_from}-{yellow} %, red = below target by more than {yellow} % (shortfall relative to the target: "
        "(target - result) / target)"
    )
