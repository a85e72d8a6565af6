"""Reporting periods cut at Bangkok midnight, Thai fiscal years in Buddhist Era years, and period labels."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certmon.core.periods import (
    Period,
    current_month,
    fiscal_quarter_of,
    fiscal_quarter_period,
    fiscal_year_of,
    fiscal_year_period,
    fiscal_year_to_date,
    month_of,
    month_period,
    months_in,
    parse_period,
    previous_month,
    range_period,
)

BKK = ZoneInfo("Asia/Bangkok")


def bkk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BKK)


def test_incident_detected_at_bangkok_midnight_belongs_to_next_fiscal_year() -> None:
    """2021-09-30T17:30:00Z is 00:30 on 1 October in Bangkok, so it falls in FY2565, Q1 and October."""
    dt = datetime(2021, 9, 30, 17, 30, tzinfo=UTC)
    assert fiscal_year_of(dt, BKK) == 2565
    assert fiscal_quarter_of(dt, BKK) == 1
    assert month_of(dt, BKK).label == "2021-10"
    assert not fiscal_year_period(2564, BKK).contains(dt)
    assert fiscal_year_period(2565, BKK).contains(dt)


def test_last_minute_of_september_bangkok_stays_in_fiscal_year() -> None:
    """23:59 Bangkok on 30 September (16:59 UTC) is still FY2564 Q4."""
    dt = datetime(2021, 9, 30, 16, 59, tzinfo=UTC)
    assert fiscal_year_of(dt, BKK) == 2564
    assert fiscal_quarter_of(dt, BKK) == 4


def test_fy2564_runs_from_october_2020_to_october_2021_bangkok() -> None:
    """FY2564 = 2020-10-01T00:00+07:00 .. 2021-10-01T00:00+07:00."""
    fy = fiscal_year_period(2564, BKK)
    assert fy.label == "FY2564"
    assert fy.start == bkk(2020, 10, 1)
    assert fy.end == bkk(2021, 10, 1)
    assert fy.start.isoformat() == "2020-10-01T00:00:00+07:00"


@pytest.mark.parametrize(
    ("quarter", "start", "end"),
    [
        (1, (2020, 10, 1), (2021, 1, 1)),
        (2, (2021, 1, 1), (2021, 4, 1)),
        (3, (2021, 4, 1), (2021, 7, 1)),
        (4, (2021, 7, 1), (2021, 10, 1)),
    ],
)
def test_each_fiscal_quarter_spans_its_three_months(
    quarter: int, start: tuple[int, int, int], end: tuple[int, int, int]
) -> None:
    """Q1 is Oct-Dec of the previous CE year, Q2 Jan-Mar, Q3 Apr-Jun, Q4 Jul-Sep."""
    period = fiscal_quarter_period(2564, quarter, BKK)
    assert period.label == f"FY2564-Q{quarter}"
    assert (period.start, period.end) == (bkk(*start), bkk(*end))
    assert fiscal_quarter_of(period.start, BKK) == quarter
    assert fiscal_quarter_of(period.end - timedelta(microseconds=1), BKK) == quarter


def test_month_starts_at_bangkok_midnight_not_utc_midnight() -> None:
    """August 2021 starts at 2021-07-31T17:00Z; 18:00Z on 31 July is already August in Bangkok."""
    august = month_period(2021, 8, BKK)
    assert august.start == datetime(2021, 7, 31, 17, 0, tzinfo=UTC)
    assert august.contains(datetime(2021, 7, 31, 18, 0, tzinfo=UTC))
    assert not august.contains(datetime(2021, 7, 31, 16, 59, 59, tzinfo=UTC))
    assert august.contains(datetime(2021, 8, 31, 16, 59, 59, tzinfo=UTC))
    assert not august.contains(datetime(2021, 8, 31, 17, 0, tzinfo=UTC))


def test_december_rolls_over_into_january() -> None:
    """December's end is 1 January of the next year, and the month before January is December."""
    assert month_period(2020, 12, BKK).end == bkk(2021, 1, 1)
    assert previous_month(bkk(2021, 1, 15), BKK).label == "2020-12"
    assert current_month(bkk(2021, 1, 15), BKK).label == "2021-01"


def test_fiscal_year_to_date_covers_the_whole_fiscal_year_containing_now() -> None:
    """In March 2026 the fiscal year to date is FY2569, ending on 1 October 2026, not at now."""
    period = fiscal_year_to_date(bkk(2026, 3, 10, 12), BKK)
    assert period.label == "FY2569"
    assert (period.start, period.end) == (bkk(2025, 10, 1), bkk(2026, 10, 1))


def test_months_in_fiscal_year_lists_twelve_months_from_october() -> None:
    """A fiscal year overlaps twelve calendar months, October first."""
    labels = [m.label for m in months_in(fiscal_year_period(2564, BKK))]
    assert labels[0] == "2020-10" and labels[-1] == "2021-09" and len(labels) == 12


def test_months_in_partial_range_includes_months_it_touches() -> None:
    """A range from 20 July to 3 September overlaps July, August and September."""
    period = parse_period("2021-07-20..2021-09-03", BKK)
    assert [m.label for m in months_in(period)] == ["2021-07", "2021-08", "2021-09"]
    assert [m.label for m in months_in(month_period(2021, 8, BKK))] == ["2021-08"]


def test_range_period_end_date_is_exclusive() -> None:
    """Range "2021-08-01..2021-08-16" covers 1-15 August, ending at Bangkok midnight starting the 16th."""
    period = parse_period("2021-08-01..2021-08-16", BKK)
    assert (period.start, period.end) == (bkk(2021, 8, 1), bkk(2021, 8, 16))
    assert period.label == "2021-08-01..2021-08-16"
    assert period.contains(bkk(2021, 8, 15, 23, 59))
    assert not period.contains(bkk(2021, 8, 16))


@pytest.mark.parametrize(
    ("text", "label"),
    [("2021-08", "2021-08"), ("fy2564", "FY2564"), (" FY2564-q4 ", "FY2564-Q4"), ("2021-8", "2021-08")],
)
def test_parse_period_accepts_lenient_spellings_and_returns_canonical_labels(text: str, label: str) -> None:
    """Case, surrounding spaces and a one-digit month are tolerated; the label is canonical."""
    assert parse_period(text, BKK).label == label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2021-13", "month must be 1-12"),
        ("2021-00", "month must be 1-12"),
        ("FY2021", "did you mean FY2564"),
        ("FY2399", "before FY2400"),
        ("FY2701", "after FY2700"),
        ("FY2564-Q5", "quarter must be 1-4"),
        ("FY2564-Q0", "quarter must be 1-4"),
        ("2021-08-16..2021-08-01", "must be after"),
        ("2021-08-01..2021-08-01", "must be after"),
        ("2021-02-30..2021-03-01", "invalid date"),
        ("last month", "unrecognised period"),
        ("", "unrecognised period"),
    ],
)
def test_bad_period_text_raises_value_error_saying_why(text: str, message: str) -> None:
    """Bad months, out-of-range fiscal years, bad quarters, empty ranges and garbage are rejected clearly."""
    with pytest.raises(ValueError, match=message):
        parse_period(text, BKK)


def test_naive_datetimes_are_rejected() -> None:
    """A datetime without a timezone is ambiguous and raises ValueError everywhere."""
    naive = datetime(2021, 8, 1)
    for call in (
        lambda: fiscal_year_of(naive, BKK),
        lambda: fiscal_quarter_of(naive, BKK),
        lambda: month_of(naive, BKK),
        lambda: current_month(naive, BKK),
        lambda: previous_month(naive, BKK),
        lambda: fiscal_year_to_date(naive, BKK),
        lambda: month_period(2021, 8, BKK).contains(naive),
        lambda: Period("x", naive, naive + timedelta(days=1)),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


# parse_period answers for periods from 1970 on: FY2514 is the first fiscal year to start in 1970.
fiscal_years = st.integers(min_value=2514, max_value=2700)
dates = st.dates(min_value=date(1970, 1, 1), max_value=date(2150, 12, 31))
periods = st.one_of(
    st.builds(lambda y, m: month_period(y, m, BKK), st.integers(1970, 2150), st.integers(1, 12)),
    st.builds(lambda fy: fiscal_year_period(fy, BKK), fiscal_years),
    st.builds(lambda fy, q: fiscal_quarter_period(fy, q, BKK), fiscal_years, st.integers(1, 4)),
    st.builds(lambda d, n: range_period(d, d + timedelta(days=n), BKK), dates, st.integers(min_value=1, max_value=800)),
)


@settings(max_examples=200)
@given(periods)
def test_every_label_parses_back_to_the_same_period(period: Period) -> None:
    """parse_period(p.label) == p for months, fiscal years, quarters and ranges."""
    assert parse_period(period.label, BKK) == period


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2150, 1, 1), timezones=st.just(UTC)))
def test_any_instant_lies_in_its_month_quarter_and_fiscal_year(dt: datetime) -> None:
    """The month, quarter and fiscal year computed for an instant all contain it and nest inside each other."""
    fy = fiscal_year_of(dt, BKK)
    quarter = fiscal_quarter_period(fy, fiscal_quarter_of(dt, BKK), BKK)
    month = month_of(dt, BKK)
    assert fiscal_year_period(fy, BKK).contains(dt)
    assert quarter.contains(dt) and month.contains(dt)
    assert quarter.start <= month.start and month.end <= quarter.end
    assert month in months_in(quarter)
    assert previous_month(dt, BKK).end == month.start
