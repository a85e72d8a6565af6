"""Words for people: the Thai and English names of the codes that machine files carry, and figures as read aloud.

CSV and JSON keep the codes (``green``, ``met``, ``banking-finance``) so that programs can rely on them; workbooks
and PDF reports show these words instead, in the language asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from certmon.core.periods import BE_OFFSET

Lang = Literal["th", "en"]


LANGS: tuple[Lang, ...] = ("th", "en")


STATUS: dict[Lang, dict[str, str]] = {
    "th": {"green": "เขียว", "yellow": "เหลือง", "red": "แดง"},
    "en": {"green": "green", "yellow": "yellow", "red": "red"},
}


# SLA states of a clock, as the export's incident files and figure columns name them.
STATES: dict[Lang, dict[str, str]] = {
    "th": {
        "met": "ทันเวลา",
        "breached": "เกินเวลา",
        "pending": "รอดำเนินการ",
        "at_risk": "ใกล้ครบกำหนด",
        "excluded": "ไม่นับรวม",
        "no_clock": "ไม่มีเวลาเริ่มนับ",
        "paused": "หยุดนับชั่วคราว",
    },
    "en": {
        "met": "met",
        "breached": "breached",
        "pending": "pending",
        "at_risk": "at risk",
        "excluded": "excluded",
        "no_clock": "no clock",
        "paused": "paused",
    },
}


# Satisfaction bands: Thai survey reports name the band of a mean by the level of satisfaction it stands for.
BANDS: dict[Lang, dict[str, str]] = {
    "th": {"very good": "มากที่สุด", "good": "มาก", "fair": "ปานกลาง", "poor": "น้อย", "very poor": "น้อยที่สุด"},
    "en": {"very good": "very good", "good": "good", "fair": "fair", "poor": "poor", "very poor": "very poor"},
}


# The built-in policy's severities; a policy's own severity names show as they are.
SEVERITIES: dict[Lang, dict[str, str]] = {
    "th": {"critical": "วิกฤต", "high": "สูง", "medium": "ปานกลาง", "low": "ต่ำ"},
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low"},
}


# The CII sectors of the Cybersecurity Act B.E. 2562 s.49, and government agencies outside them.
SECTORS: dict[Lang, dict[str, str]] = {
    "th": {
        "national-security": "ด้านความมั่นคงของรัฐ",
        "public-services": "ด้านบริการภาครัฐที่สำคัญ",
        "banking-finance": "ด้านการเงินการธนาคาร",
        "it-telecom": "ด้านเทคโนโลยีสารสนเทศและโทรคมนาคม",
        "transport-logistics": "ด้านการขนส่งและโลจิสติกส์",
        "energy-utilities": "ด้านพลังงานและสาธารณูปโภค",
        "public-health": "ด้านสาธารณสุข",
        "other-cii": "ด้านอื่นตามที่คณะกรรมการประกาศกำหนด",
        "government": "หน่วยงานของรัฐอื่น",
    },
    "en": {
        "national-security": "National security",
        "public-services": "Substantive public services",
        "banking-finance": "Banking and finance",
        "it-telecom": "IT and telecommunications",
        "transport-logistics": "Transportation and logistics",
        "energy-utilities": "Energy and public utilities",
        "public-health": "Public health",
        "other-cii": "Other CII",
        "government": "Other government agencies",
    },
}


MILESTONES: dict[Lang, dict[str, str]] = {
    "th": {
        "detected": "ตรวจพบเหตุการณ์",
        "analysed": "ได้ผลการวิเคราะห์",
        "notified": "แจ้งเตือนหน่วยงาน",
        "acknowledged": "หน่วยงานตอบรับ",
        "contained": "ระงับเหตุ",
        "resolved": "แก้ไขแล้วเสร็จ",
    },
    "en": {
        "detected": "detection",
        "analysed": "the analysis result",
        "notified": "the agency's notification",
        "acknowledged": "the agency's acknowledgement",
        "contained": "containment",
        "resolved": "resolution",
    },
}


MONTHS_TH = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")


MONTHS_TH_FULL = (
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
)  # fmt: skip


MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


MONTHS_EN_FULL = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


WORDS = {
    "status": STATUS,
    "state": STATES,
    "band": BANDS,
    "severity": SEVERITIES,
    "sector": SECTORS,
    "milestone": MILESTONES,
}


def word(kind: str, code: str | None, lang: Lang) -> str:
    """The word for a code, or the code itself when it has none (a policy's own severity, say); "-" for None."""
    if code is None:
        return "-"
    return WORDS[kind][lang].get(code, code)


def month_name(year: int, month: int, lang: Lang) -> str:
    """ "สิงหาคม 2564" (the Buddhist Era year, as Thai documents write it) or "August 2021"."""
    if lang == "th":
        return f"{MONTHS_TH_FULL[month - 1]} {year + BE_OFFSET}"
    return f"{MONTHS_EN_FULL[month - 1]} {year}"


def month_short(label: str, lang: Lang) -> str:
    """A "2021-08" month label as a table cell: "ส.ค. 2564" or "Aug 2021"."""
    year, month = int(label[:4]), int(label[5:7])
    if lang == "th":
        return f"{MONTHS_TH[month - 1]} {year + BE_OFFSET}"
    return f"{MONTHS_EN[month - 1]} {year}"


def local_time(value: datetime, lang: Lang) -> str:
    """A local time to the minute: "4 ก.ย. 2564 00:00 น." or "4 Sep 2021 00:00"."""
    if lang == "th":
        return f"{value.day} {MONTHS_TH[value.month - 1]} {value.year + BE_OFFSET} {value:%H:%M} น."
    return f"{value.day} {MONTHS_EN[value.month - 1]} {value.year} {value:%H:%M}"


def local_date(value: datetime, lang: Lang) -> str:
    """ "1 ตุลาคม 2563" or "1 October 2020"."""
    if lang == "th":
        return f"{value.day} {MONTHS_TH_FULL[value.month - 1]} {value.year + BE_OFFSET}"
    return f"{value.day} {MONTHS_EN_FULL[value.month - 1]} {value.year}"


def figure(value: float | None, decimals: int = 2) -> str:
    """A percentage or mean as the published report prints it: at most two decimals, no trailing zeros (98, 85.2)."""
    if value is None:
        return "-"
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent_of(ratio: float | None) -> str:
    """A ratio (0.98) as a percentage to two decimals at most ("98")."""
    return "-" if ratio is None else figure(ratio * 100)


def duration(seconds: int, lang: Lang) -> str:
    """A target as people say it: "1 ชั่วโมง", "72 hours", "30 minutes"."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} ชั่วโมง" if lang == "th" else f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} นาที" if lang == "th" else f"{minutes} minutes"
    return f"{seconds} วินาที" if lang == "th" else f"{seconds} seconds"
