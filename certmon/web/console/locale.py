"""How the console writes times, dates and figures: in the policy's zone, Buddhist Era years on Thai pages.

Thai readers date by the Buddhist Era (2567 is 2024 CE): Thai pages write "15 มี.ค. 2567 14:00", English ones
"15 Mar 2024 14:00". Times typed into a form are read in the same zone; a year above 2400 is taken as BE.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from certmon.core.periods import BE_OFFSET, MIN_FISCAL_YEAR_BE
from certmon.web.console.messages import Lang

MONTHS_TH = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")
MONTHS_TH_LONG = (
    "มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
    "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม",
)  # fmt: skip
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS_EN_LONG = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A time as the store or an API-shaped dict holds it (ISO 8601 text with an offset, or a datetime)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def year(value: datetime, lang: Lang) -> int:
    return value.year + BE_OFFSET if lang == "th" else value.year


def local_time(value: datetime | str | None, lang: Lang, tz: tzinfo, *, seconds: bool = False) -> str:
    """ "15 มี.ค. 2567 14:00" or "15 Mar 2024 14:00"; "-" for no time."""
    instant = as_datetime(value)
    if instant is None:
        return "-"
    local = instant.astimezone(tz)
    months = MONTHS_TH if lang == "th" else MONTHS_EN
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{local.day} {months[local.month - 1]} {year(local, lang)} {clock}"


def month_name(label: str, lang: Lang, *, short: bool = False) -> str:
    """A month labelled "2024-03" as "มีนาคม 2567" / "March 2024", or short "มี.ค. 67" / "Mar 24"."""
    y, m = (int(part) for part in label.split("-"))
    shown = y + BE_OFFSET if lang == "th" else y
    if short:
        names = MONTHS_TH if lang == "th" else MONTHS_EN
        return f"{names[m - 1]} {shown % 100:02d}"
    names = MONTHS_TH_LONG if lang == "th" else MONTHS_EN_LONG
    return f"{names[m - 1]} {shown}"


def utc_offset(now: datetime, tz: tzinfo) -> str:
    """ "UTC+07:00" for Bangkok."""
    offset = now.astimezone(tz).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def input_value(value: datetime | None, tz: tzinfo) -> str:
    """The value of a datetime-local field showing ``value`` in the zone (CE, as browsers want it)."""
    return "" if value is None else f"{value.astimezone(tz):%Y-%m-%dT%H:%M}"


def parse_local(raw: str, tz: tzinfo) -> datetime:
    """A typed local time (2024-03-15T14:05, or 2567-03-15 14:05 in BE) as an aware instant; ValueError else."""
    cleaned = raw.strip()
    for fmt in INPUT_FORMATS:
        try:
            naive = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        if naive.year >= MIN_FISCAL_YEAR_BE:  # no incident is that far ahead in CE: the year was typed in BE
            naive = naive.replace(year=naive.year - BE_OFFSET)
        return naive.replace(tzinfo=tz)
    raise ValueError("is not a time")


def percent(ratio: float | None) -> str:
    """A ratio as a percentage with one decimal, "96.4"; "-" when there is none."""
    return "-" if ratio is None else f"{ratio * 100:.1f}"
