"""Reporting periods: calendar months, Thai fiscal years and quarters, and explicit date ranges.

Every boundary is local midnight in the policy's timezone (Asia/Bangkok by default), never UTC: an incident
at 2021-09-30T17:30:00Z is 2021-10-01 00:30 in Bangkok and so belongs to October and to FY2565.

Thai fiscal years run 1 October - 30 September and are named by the Buddhist Era year (CE + 543) in which they
end, so FY2564 is 2020-10-01 .. 2021-10-01.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

BE_OFFSET = 543  # Buddhist Era year = Common Era year + 543
FY_FIRST_MONTH = 10  # the Thai fiscal year starts on 1 October
MIN_FISCAL_YEAR_BE = 2400  # 1857 CE; anything earlier is almost surely a CE year typed by mistake
MAX_FISCAL_YEAR_BE = 2700

_MONTH_RE = re.compile(r"(\d{4})-(\d{1,2})")
_FY_RE = re.compile(r"FY(\d{4})")
_QUARTER_RE = re.compile(r"FY(\d{4})-Q(\d+)")
_RANGE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


def _require_aware(dt: datetime, what: str = "datetime") -> None:
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # no incident time is older: models.to_utc refuses it


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval [start, end) of aware datetimes with a label that `parse_period` reads back."""

    label: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware(self.start, "period start")
        _require_aware(self.end, "period end")
        if self.end <= self.start:
            raise ValueError(f"period {self.label!r}: end {self.end.isoformat()} is not after start")

    def contains(self, dt: datetime) -> bool:
        """Whether dt falls in [start, end)."""
        _require_aware(dt)
        return self.start <= dt < self.end


def _midnight(year: int, month: int, day: int, tz: tzinfo) -> datetime:
    return datetime(year, month, day, tzinfo=tz)


def _month(year: int, month: int, tz: tzinfo) -> Period:
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1-12, got {month}")
    if not 1 <= year <= 9998:
        raise ValueError(f"year out of range: {year}")
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Period(f"{year:04d}-{month:02d}", _midnight(year, month, 1, tz), _midnight(next_year, next_month, 1, tz))


def _check_fiscal_year(fy_be: int) -> None:
    if fy_be < MIN_FISCAL_YEAR_BE:
        hint = f" (fiscal years are Buddhist Era: did you mean FY{fy_be + BE_OFFSET}?)" if fy_be > 1900 else ""
        raise ValueError(f"fiscal year FY{fy_be} is before FY{MIN_FISCAL_YEAR_BE}{hint}")
    if fy_be > MAX_FISCAL_YEAR_BE:
        raise ValueError(f"fiscal year FY{fy_be} is after FY{MAX_FISCAL_YEAR_BE}")


def month_period(year: int, month: int, tz: ZoneInfo) -> Period:
    """The calendar month `year`-`month` (CE year) in tz, labelled like "2021-08"."""
    return _month(year, month, tz)


def fiscal_year_period(fy_be: int, tz: ZoneInfo) -> Period:
    """Thai fiscal year FY`fy_be`: 1 October of CE year fy_be - 544 up to 1 October of the next year."""
    _check_fiscal_year(fy_be)
    end_ce = fy_be - BE_OFFSET
    return Period(f"FY{fy_be}", _midnight(end_ce - 1, FY_FIRST_MONTH, 1, tz), _midnight(end_ce, FY_FIRST_MONTH, 1, tz))


def fiscal_quarter_period(fy_be: int, quarter: int, tz: ZoneInfo) -> Period:
    """Quarter 1-4 of FY`fy_be`: Q1 Oct-Dec, Q2 Jan-Mar, Q3 Apr-Jun, Q4 Jul-Sep."""
    _check_fiscal_year(fy_be)
    if not 1 <= quarter <= 4:
        raise ValueError(f"quarter must be 1-4, got {quarter}")
    first = _month(*_fiscal_month(fy_be, (quarter - 1) * 3), tz)
    last = _month(*_fiscal_month(fy_be, (quarter - 1) * 3 + 2), tz)
    return Period(f"FY{fy_be}-Q{quarter}", first.start, last.end)


def _fiscal_month(fy_be: int, index: int) -> tuple[int, int]:
    """CE (year, month) of the index-th month (0 = October) of FY`fy_be`."""
    absolute = (fy_be - BE_OFFSET - 1) * 12 + (FY_FIRST_MONTH - 1) + index
    return absolute // 12, absolute % 12 + 1


def _local(dt: datetime, tz: tzinfo) -> datetime:
    _require_aware(dt)
    return dt.astimezone(tz)


def fiscal_year_of(dt: datetime, tz: ZoneInfo) -> int:
    """The BE fiscal year containing dt, cut at local midnight in tz."""
    local = _local(dt, tz)
    return local.year + BE_OFFSET + (1 if local.month >= FY_FIRST_MONTH else 0)


def fiscal_quarter_of(dt: datetime, tz: ZoneInfo) -> int:
    """The fiscal quarter (1-4) containing dt."""
    local = _local(dt, tz)
    return (local.month - FY_FIRST_MONTH) % 12 // 3 + 1


def month_of(dt: datetime, tz: ZoneInfo) -> Period:
    """The local calendar month containing dt."""
    local = _local(dt, tz)
    return _month(local.year, local.month, tz)


def current_month(now: datetime, tz: ZoneInfo) -> Period:
    """The calendar month containing now."""
    return month_of(now, tz)


def previous_month(now: datetime, tz: ZoneInfo) -> Period:
    """The calendar month before the one containing now."""
    local = _local(now, tz)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return _month(year, month, tz)


def fiscal_year_to_date(now: datetime, tz: ZoneInfo) -> Period:
    """The whole fiscal year containing now; its end is the fiscal year's end, so the label stays stable."""
    return fiscal_year_period(fiscal_year_of(now, tz), tz)


def months_in(period: Period) -> list[Period]:
    """The calendar months overlapping period, in order, in the timezone of period.start."""
    tz = period.start.tzinfo
    assert tz is not None  # Period guarantees aware bounds
    local_start = period.start.astimezone(tz)
    month = _month(local_start.year, local_start.month, tz)
    months: list[Period] = []
    while month.start < period.end:
        months.append(month)
        local_next = month.end.astimezone(tz)
        month = _month(local_next.year, local_next.month, tz)
    return months


def range_period(first: date, end: date, tz: ZoneInfo) -> Period:
    """Local midnight of `first` up to local midnight of `end` (exclusive), labelled "first..end"."""
    if end <= first:
        raise ValueError(f"range end {end.isoformat()} must be after its start {first.isoformat()} (end is exclusive)")
    return Period(
        f"{first.isoformat()}..{end.isoformat()}",
        _midnight(first.year, first.month, first.day, tz),
        _midnight(end.year, end.month, end.day, tz),
    )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from None


def parse_period(text: str, tz: ZoneInfo) -> Period:
    """Parse "2021-08", "FY2564", "FY2564-Q4" or "2021-08-01..2021-08-16" (end date exclusive).

    Periods end after 1970 began, the earliest time an incident may carry, and start in 1969 at the earliest; one
    that Python's datetime cannot even hold in UTC (year 1 in Bangkok is year 0 in UTC) is a ValueError like any
    other bad period.
    """
    try:
        period = _parse_period(text, tz)
    except OverflowError:
        raise ValueError(f"period {text!r} is out of range") from None
    return from_earliest(period, tz, f"period {text!r}")


def from_earliest(period: Period, tz: tzinfo, name: str) -> Period:
    """period, or a ValueError naming it when it ends before 1970, the earliest an incident may be.

    One that starts earlier but ends later (FY2513 starts in October 1969) still holds incidents of 1970. One that
    starts before 1969 is a mistake, not a report: its start may be beyond what UTC can hold (year 1 in Bangkok).
    """
    if period.start.astimezone(tz).year < EARLIEST.year - 1:
        raise ValueError(f"{name} starts before 1969")
    if period.end <= EARLIEST:
        raise ValueError(f"{name} ends before 1970")
    return period


def _parse_period(text: str, tz: ZoneInfo) -> Period:
    cleaned = text.strip()
    upper = cleaned.upper()
    if m := _MONTH_RE.fullmatch(cleaned):
        return _month(int(m[1]), int(m[2]), tz)
    if m := _FY_RE.fullmatch(upper):
        return fiscal_year_period(int(m[1]), tz)
    if m := _QUARTER_RE.fullmatch(upper):
        return fiscal_quarter_period(int(m[1]), int(m[2]), tz)
    if m := _RANGE_RE.fullmatch(cleaned):
        return range_period(_parse_date(m[1]), _parse_date(m[2]), tz)
    raise ValueError(
        f"unrecognised period {text!r}: expected YYYY-MM, FY<BE year> (e.g. FY2564), FY<BE year>-Q<1-4> "
        "or YYYY-MM-DD..YYYY-MM-DD (end exclusive)"
    )
