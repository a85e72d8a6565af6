"""Clock calendars: which instants count towards an SLA target.

A 24x7 calendar counts every second. A business-hours calendar counts only the opening hours of working
weekdays that are not public holidays, which is how ThaiCERT states its "within 6 business hours" coordination SLA.
"""

from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Protocol

import holidays as holidays_lib

# A calendar with at least one working weekday has an opening within any fortnight unless holidays fill it;
# if two years pass without one, the holiday data is wrong and looping on would never end.
_MAX_CLOSED_DAYS = 2 * 366


class Calendar(Protocol):
    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of calendar time have elapsed after start."""
        ...

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Calendar seconds in [start, end); 0 if end <= start."""
        ...


def _check_aware(*moments: datetime) -> None:
    for dt in moments:
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            raise ValueError(f"datetime must be timezone-aware, got naive {dt.isoformat()}")


def _check_seconds(seconds: float) -> None:
    if not seconds >= 0:  # also rejects NaN
        raise ValueError(f"seconds must be >= 0, got {seconds}")


class Always:
    """Every second counts (24x7)."""

    # The checks run inline first: bulk ingest computes three of these per incident.
    def add(self, start: datetime, seconds: float) -> datetime:
        if start.utcoffset() is None or not seconds >= 0:
            _check_aware(start)
            _check_seconds(seconds)
        return start + timedelta(seconds=seconds)

    def seconds_between(self, start: datetime, end: datetime) -> float:
        if start.utcoffset() is None or end.utcoffset() is None:
            _check_aware(start, end)
        return max(0.0, (end - start).total_seconds())

    def __repr__(self) -> str:
        return "Always()"


class BusinessHours:
    """Opening hours on working weekdays, minus the public holidays of a country, in a given timezone."""

    def __init__(
        self,
        tz: tzinfo,
        weekdays: Iterable[int] = (0, 1, 2, 3, 4),
        opens: time = time(8, 30),
        closes: time = time(17, 30),
        holidays: str | None = "TH",
    ) -> None:
        self.tz = tz
        self.weekdays = frozenset(weekdays)
        self.opens = opens
        self.closes = closes
        self.country = holidays
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ValueError(f"weekdays must be a non-empty subset of 0-6 (Monday = 0), got {sorted(self.weekdays)}")
        if opens >= closes:
            raise ValueError(f"opening time {opens} must be before closing time {closes}")
        # Holiday tables are computed per year on first use: incidents span few years, the package covers many.
        self._holidays: dict[int, frozenset[date]] = {}

    def __repr__(self) -> str:
        return (
            f"BusinessHours(tz={self.tz}, weekdays={sorted(self.weekdays)}, opens={self.opens}, "
            f"closes={self.closes}, holidays={self.country!r})"
        )

    def is_holiday(self, day: date) -> bool:
        if self.country is None:
            return False
        year = self._holidays.get(day.year)
        if year is None:
            year = frozenset(holidays_lib.country_holidays(self.country, years=day.year))
            self._holidays[day.year] = year
        return day in year

    def _hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The opening interval of a local day, or None when closed all day."""
        if day.weekday() not in self.weekdays or self.is_holiday(day):
            return None
        return datetime.combine(day, self.opens, tzinfo=self.tz), datetime.combine(day, self.closes, tzinfo=self.tz)

    def _open_intervals(self, first: date) -> Iterator[tuple[datetime, datetime]]:
        day, closed_run = first, 0
        while True:
            hours = self._hours(day)
            if hours is None:
                closed_run += 1
                if closed_run > _MAX_CLOSED_DAYS:
                    raise ValueError(f"{self!r} has no opening hours for two years after {first.isoformat()}")
            else:
                closed_run = 0
                yield hours
            day += timedelta(days=1)

    def add(self, start: datetime, seconds: float) -> datetime:
        _check_aware(start)
        _check_seconds(seconds)
        local = start.astimezone(self.tz)
        remaining = timedelta(seconds=seconds)
        for opens, closes in self._open_intervals(local.date()):
            begin = max(local, opens)
            if begin >= closes:
                continue
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _open_intervals never ends")

    def seconds_between(self, start: datetime, end: datetime) -> float:
        _check_aware(start, end)
        if end <= start:
            return 0.0
        local_start, local_end = start.astimezone(self.tz), end.astimezone(self.tz)
        total = timedelta()
        day = local_start.date()
        while day <= local_end.date():
            hours = self._hours(day)
            if hours is not None:
                begin, finish = max(local_start, hours[0]), min(local_end, hours[1])
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total.total_seconds()
