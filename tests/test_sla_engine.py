"""SLA clocks, states, calendars with business hours and Thai holidays, compliance figures and status colours."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certmon.core.calendars import Always, BusinessHours, Calendar
from certmon.core.clocks import Clocks, clock_rows
from certmon.core.models import IncidentIn
from certmon.core.policy import CalendarPolicy, Policy, Rule, SeverityPolicy, build_calendar
from certmon.core.sla import (
    SLA_STATES,
    Clock,
    Milestones,
    Pause,
    SlaState,
    compute_clock,
    elapsed_seconds,
    paused_seconds_at,
    shortfall,
    state_at,
    status_colour,
    tally,
)

BKK = ZoneInfo("Asia/Bangkok")
ALWAYS = Always()
BUSINESS = BusinessHours(BKK)
HOUR = 3600


def bkk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BKK)


def rule_of(**given: object) -> Rule:
    """An objective's rule for one severity, as a policy file's [severities.NAME] table of the one-clock format."""
    severity = SeverityPolicy.model_validate(given)
    return Rule(severity.target_seconds, severity.start, severity.stop, severity.calendar, pauses=False)


def clock_for(milestones: Milestones, clock_calendar: Calendar = ALWAYS, **severity: object) -> Clock:
    return compute_clock(milestones, rule_of(**severity), clock_calendar, 0.75)


# Calendars


def test_friday_1700_alert_with_one_business_hour_is_due_monday_0900() -> None:
    """Half an hour counts on Friday until 17:30, the weekend is closed, the rest runs from Monday 08:30."""
    friday = bkk(2021, 8, 20, 17, 0)
    assert BUSINESS.add(friday, HOUR) == bkk(2021, 8, 23, 9, 0)


def test_business_clock_skips_songkran_and_its_bridge_holiday() -> None:
    """Friday 9 April 2021 17:00 + 1 business hour skips the weekend, the 12 April bridge day and Songkran 13-15."""
    assert BUSINESS.is_holiday(bkk(2021, 4, 13).date())
    due = BUSINESS.add(bkk(2021, 4, 9, 17, 0), HOUR)
    assert due == bkk(2021, 4, 16, 9, 0)
    assert BUSINESS.seconds_between(bkk(2021, 4, 9, 17, 0), due) == HOUR


def test_business_clock_without_holidays_opens_on_songkran() -> None:
    """With holidays disabled Songkran is an ordinary working week."""
    calendar = BusinessHours(BKK, holidays=None)
    assert calendar.add(bkk(2021, 4, 9, 17, 0), HOUR) == bkk(2021, 4, 12, 9, 0)


def test_clock_starting_outside_business_hours_starts_at_next_opening() -> None:
    """An alert at 03:00 on a Tuesday, or on a Saturday, starts counting at the next 08:30."""
    assert BUSINESS.add(bkk(2021, 8, 24, 3, 0), HOUR) == bkk(2021, 8, 24, 9, 30)
    assert BUSINESS.add(bkk(2021, 8, 21, 11, 0), HOUR) == bkk(2021, 8, 23, 9, 30)
    assert BUSINESS.add(bkk(2021, 8, 24, 18, 0), HOUR) == bkk(2021, 8, 25, 9, 30)


def test_target_ending_exactly_at_closing_is_due_at_closing() -> None:
    """Nine business hours from 08:30 end at 17:30 the same day, not at the next opening."""
    assert BUSINESS.add(bkk(2021, 8, 24, 8, 30), 9 * HOUR) == bkk(2021, 8, 24, 17, 30)


def test_six_business_hours_across_new_year_uses_both_years_holidays() -> None:
    """One hour on 30 Dec 2021, then New Year's Eve, the weekend and the 3 January in-lieu day are skipped."""
    due = BUSINESS.add(bkk(2021, 12, 30, 16, 30), 6 * HOUR)
    assert due == bkk(2022, 1, 4, 13, 30)


def test_business_seconds_between_counts_only_opening_hours() -> None:
    """A full Monday-to-Monday week without holidays holds five nine-hour days."""
    assert BUSINESS.seconds_between(bkk(2021, 8, 16), bkk(2021, 8, 23)) == 5 * 9 * HOUR
    assert BUSINESS.seconds_between(bkk(2021, 8, 23), bkk(2021, 8, 16)) == 0


def test_always_calendar_is_plain_arithmetic() -> None:
    """24x7 adds and subtracts wall time, whatever the day."""
    start = bkk(2021, 4, 13, 23, 0)
    assert ALWAYS.add(start, HOUR) == bkk(2021, 4, 14, 0, 0)
    assert ALWAYS.seconds_between(start, start + timedelta(hours=2)) == 2 * HOUR


def test_build_calendar_follows_the_calendar_policy() -> None:
    """kind = "24x7" builds Always; kind = "business" builds BusinessHours with the policy's hours."""
    assert isinstance(build_calendar(CalendarPolicy(kind="24x7"), BKK), Always)
    calendar = build_calendar(CalendarPolicy(kind="business", opens=time(9), closes=time(12), holidays=None), BKK)
    assert isinstance(calendar, BusinessHours)
    assert calendar.add(bkk(2021, 8, 23, 11, 0), 2 * HOUR) == bkk(2021, 8, 24, 10, 0)


def test_calendars_reject_negative_seconds_and_naive_datetimes() -> None:
    """Negative durations and naive datetimes raise ValueError."""
    with pytest.raises(ValueError, match=">= 0"):
        BUSINESS.add(bkk(2021, 8, 23), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        BUSINESS.add(datetime(2021, 8, 23), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ALWAYS.seconds_between(datetime(2021, 8, 23), bkk(2021, 8, 24))


def test_year_long_business_target_takes_few_milliseconds() -> None:
    """add works a day at a time, so a year of business hours is quick."""
    due = BUSINESS.add(bkk(2021, 1, 1), 240 * 9 * HOUR)
    assert BUSINESS.seconds_between(bkk(2021, 1, 1), due) == 240 * 9 * HOUR


instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
durations = st.floats(min_value=0, max_value=30 * 9 * HOUR, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(instants, durations)
def test_seconds_between_undoes_add_on_business_calendar(start: datetime, seconds: float) -> None:
    """seconds_between(s, add(s, x)) == x within a microsecond, and the due instant is never before s."""
    due = BUSINESS.add(start, seconds)
    assert due >= start
    assert BUSINESS.seconds_between(start, due) == pytest.approx(seconds, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(instants, durations, durations)
def test_business_add_is_monotone_in_seconds(start: datetime, a: float, b: float) -> None:
    """More calendar seconds never give an earlier due instant."""
    low, high = sorted((a, b))
    assert BUSINESS.add(start, low) <= BUSINESS.add(start, high)


# Clocks and states


def test_clock_runs_from_detection_to_notification_by_default() -> None:
    """Detected 10:00, notified 10:40: due 11:00, at risk 10:45, delay 40 minutes, met."""
    m = Milestones(detected=bkk(2021, 8, 2, 10), notified=bkk(2021, 8, 2, 10, 40))
    clock = clock_for(m)
    assert clock.start == m.detected
    assert clock.due_at == bkk(2021, 8, 2, 11)
    assert clock.at_risk_at == bkk(2021, 8, 2, 10, 45)
    assert clock.stopped_at == m.notified
    assert clock.delay_seconds == 40 * 60
    assert state_at(clock, bkk(2021, 8, 3), excluded=False) == "met"


def test_clock_started_at_analysis_has_no_clock_until_analysed() -> None:
    """With start = "analysed" an incident not yet analysed has no clock; once analysed the clock starts there."""
    detected = bkk(2021, 8, 2, 10)
    waiting = clock_for(Milestones(detected=detected), start="analysed")
    assert waiting.start is None
    assert state_at(waiting, detected + timedelta(days=3), excluded=False) == "no_clock"
    assert elapsed_seconds(waiting, detected, ALWAYS) is None
    analysed = clock_for(Milestones(detected=detected, analysed=detected + timedelta(hours=2)), start="analysed")
    assert analysed.due_at == detected + timedelta(hours=3)


def test_running_clock_goes_pending_then_at_risk_then_breached() -> None:
    """Before 45 minutes pending, from 45 at risk, at exactly 60 still at risk, after 60 breached."""
    start = bkk(2021, 8, 2, 10)
    clock = clock_for(Milestones(detected=start))
    assert state_at(clock, start + timedelta(minutes=44), False) == "pending"
    assert state_at(clock, start + timedelta(minutes=45), False) == "at_risk"
    assert state_at(clock, start + timedelta(minutes=60), False) == "at_risk"
    assert state_at(clock, start + timedelta(minutes=60, seconds=1), False) == "breached"
    assert elapsed_seconds(clock, start + timedelta(minutes=30), ALWAYS) == 30 * 60


def test_notification_at_exactly_the_due_instant_is_met_and_one_second_late_is_breached() -> None:
    """stopped_at <= due_at is met."""
    start = bkk(2021, 8, 2, 10)
    on_time = clock_for(Milestones(detected=start, notified=start + timedelta(hours=1)))
    late = clock_for(Milestones(detected=start, notified=start + timedelta(hours=1, seconds=1)))
    assert state_at(on_time, start, False) == "met"
    assert state_at(late, start, False) == "breached"
    assert late.delay_seconds == HOUR + 1


def test_notified_and_contained_stops_at_the_later_of_both() -> None:
    """With stop = "notified+contained" the clock runs until both happened."""
    start = bkk(2021, 8, 2, 10)
    notified_only = Milestones(detected=start, notified=start + timedelta(minutes=10))
    assert clock_for(notified_only, stop="notified+contained").stopped_at is None
    both = Milestones(detected=start, notified=start + timedelta(minutes=10), contained=start + timedelta(minutes=70))
    clock = clock_for(both, stop="notified+contained")
    assert clock.stopped_at == both.contained
    assert state_at(clock, start, False) == "breached"


def test_stop_before_start_is_met_with_zero_delay() -> None:
    """Notification logged before the analysis result counts as immediate."""
    start = bkk(2021, 8, 2, 10)
    m = Milestones(detected=start, analysed=start + timedelta(hours=2), notified=start + timedelta(hours=1))
    clock = clock_for(m, start="analysed")
    assert clock.delay_seconds == 0
    assert state_at(clock, start, False) == "met"


def test_business_clock_delay_counts_only_opening_hours() -> None:
    """Detected Friday 17:00, notified Monday 08:45: 45 business minutes, met."""
    m = Milestones(detected=bkk(2021, 8, 20, 17), notified=bkk(2021, 8, 23, 8, 45))
    clock = clock_for(m, BUSINESS, calendar="business")
    assert clock.due_at == bkk(2021, 8, 23, 9)
    assert clock.delay_seconds == 45 * 60
    assert state_at(clock, bkk(2021, 8, 24), False) == "met"


def test_excluded_incident_is_excluded_whatever_its_clock() -> None:
    """Exclusion wins over every other state."""
    start = bkk(2021, 8, 2, 10)
    late = clock_for(Milestones(detected=start, notified=start + timedelta(days=1)))
    assert state_at(late, start, excluded=True) == "excluded"


def test_milestones_and_now_must_be_aware() -> None:
    """Naive milestones or a naive now raise ValueError."""
    with pytest.raises(ValueError, match="notified"):
        Milestones(detected=bkk(2021, 8, 2), notified=datetime(2021, 8, 2, 1))
    clock = clock_for(Milestones(detected=bkk(2021, 8, 2)))
    with pytest.raises(ValueError, match="now"):
        state_at(clock, datetime(2021, 8, 2), False)


minutes = st.integers(min_value=0, max_value=5 * 24 * 60)
calendars: st.SearchStrategy[Calendar] = st.sampled_from([ALWAYS, BUSINESS])
targets = st.integers(min_value=60, max_value=12 * HOUR)


@st.composite
def clocks(draw: st.DrawFn) -> tuple[Clock, datetime]:
    detected = draw(instants)
    notified = draw(st.none() | minutes.map(lambda n: detected + timedelta(minutes=n)))
    severity = rule_of(target_seconds=draw(targets))
    fraction = draw(st.floats(min_value=0.05, max_value=0.95))
    milestones = Milestones(detected=detected, notified=notified)
    return compute_clock(milestones, severity, draw(calendars), fraction), detected


@settings(max_examples=150, deadline=None)
@given(clocks(), minutes, minutes)
def test_a_stopped_clock_state_does_not_depend_on_now(clock_and_start: tuple[Clock, datetime], a: int, b: int) -> None:
    """Once stopped, met stays met and breached stays breached at every later now."""
    clock, start = clock_and_start
    if clock.stopped_at is None:
        return
    first = state_at(clock, start + timedelta(minutes=a), False)
    assert first in ("met", "breached")
    assert state_at(clock, start + timedelta(minutes=b), False) == first


_RANK = {"pending": 0, "at_risk": 1, "breached": 2}


@settings(max_examples=150, deadline=None)
@given(clocks(), minutes, minutes)
def test_a_running_clock_only_moves_forward_from_pending_to_at_risk_to_breached(
    clock_and_start: tuple[Clock, datetime], a: int, b: int
) -> None:
    """For a running clock, a later now never gives an earlier state in pending -> at_risk -> breached."""
    clock, start = clock_and_start
    if clock.stopped_at is not None:
        return
    early, late = sorted((a, b))
    assert (
        _RANK[state_at(clock, start + timedelta(minutes=early), False)]
        <= _RANK[state_at(clock, start + timedelta(minutes=late), False)]
    )
    assert clock.start is not None and clock.at_risk_at is not None and clock.due_at is not None
    assert clock.start <= clock.at_risk_at <= clock.due_at


@settings(max_examples=100, deadline=None)
@given(instants, minutes, targets)
def test_on_24x7_a_stopped_clock_is_met_exactly_when_its_delay_fits_the_target(
    detected: datetime, delay_minutes: int, target: int
) -> None:
    """On a 24x7 calendar met means delay_seconds <= target_seconds."""
    m = Milestones(detected=detected, notified=detected + timedelta(minutes=delay_minutes))
    clock = clock_for(m, target_seconds=target)
    expected = "met" if delay_minutes * 60 <= target else "breached"
    assert clock.delay_seconds == delay_minutes * 60
    assert state_at(clock, detected, False) == expected


def test_business_notification_after_closing_on_the_due_day_is_late() -> None:
    """Due at Friday 17:30 closing, notified 17:45: breached, although no further business time elapsed."""
    m = Milestones(detected=bkk(2021, 8, 20, 16, 30), notified=bkk(2021, 8, 20, 17, 45))
    clock = clock_for(m, BUSINESS, calendar="business")
    assert clock.due_at == bkk(2021, 8, 20, 17, 30)
    assert clock.delay_seconds == HOUR
    assert state_at(clock, bkk(2021, 8, 23), False) == "breached"


# Figures, shortfall and colours

state_lists = st.lists(st.sampled_from(SLA_STATES), max_size=200)


@given(state_lists)
def test_figures_counts_add_up_to_total(states: list[SlaState]) -> None:
    """Every state is counted exactly once."""
    figures = tally(states)
    assert figures.total == len(states)
    assert (
        figures.met
        + figures.breached
        + figures.pending
        + figures.at_risk
        + figures.excluded
        + figures.no_clock
        + figures.paused
        == figures.total
    )


@given(state_lists)
def test_compliance_is_between_zero_and_one_or_none(states: list[SlaState]) -> None:
    """Compliance is a ratio in [0, 1], or None when nothing is decided."""
    compliance = tally(states).compliance
    if "met" in states or "breached" in states:
        assert compliance is not None and 0 <= compliance <= 1
    else:
        assert compliance is None


@given(state_lists, st.integers(min_value=0, max_value=50))
def test_adding_excluded_incidents_never_changes_compliance(states: list[SlaState], extra: int) -> None:
    """Excluded incidents count in total but not in compliance."""
    assert tally(states + ["excluded"] * extra).compliance == tally(states).compliance


@given(state_lists, state_lists)
def test_figures_of_two_groups_add_up_to_figures_of_their_union(a: list[SlaState], b: list[SlaState]) -> None:
    """Figures + Figures equals the tally of both groups together."""
    assert tally(a) + tally(b) == tally(a + b)


def test_fy2564_one_hour_kpi_of_98_percent_is_green() -> None:
    """49 met out of 50 decided is 98 %: above the 96 % target, so green with no shortfall."""
    met: list[SlaState] = ["met"] * 49
    states: list[SlaState] = [*met, "breached", "pending", "excluded", "no_clock"]
    figures = tally(states)
    assert figures.compliance == 0.98
    assert shortfall(figures.compliance, 0.96) == 0
    assert status_colour(figures.compliance, 0.96, 0.05, 0.20) == "green"


@pytest.mark.parametrize(
    ("compliance", "colour"),
    [
        (0.98, "green"),
        (0.96, "green"),
        (0.912, "green"),
        (0.9119, "yellow"),
        (0.91, "yellow"),
        (0.768, "yellow"),
        (0.7679, "red"),
        (0.70, "red"),
        (0.0, "red"),
        (None, None),
    ],
)
def test_status_colour_follows_relative_shortfall_against_96_percent(compliance: float | None, colour: str) -> None:
    """Green up to 5 % short (0.912 inclusive), yellow up to 20 % short (0.768 inclusive), red beyond."""
    assert status_colour(compliance, 0.96, 0.05, 0.20) == colour


def test_shortfall_is_relative_to_the_target() -> None:
    """85.2 % against 85 % is no shortfall; 80 % against 85 % is 1/17 short."""
    assert shortfall(0.852, 0.85) == 0
    assert shortfall(0.80, 0.85) == pytest.approx(0.05 / 0.85)
    assert shortfall(None, 0.85) is None


def test_unknown_state_is_rejected_by_tally() -> None:
    """A misspelt state is a ValueError, not a silently dropped incident."""
    with pytest.raises(ValueError, match="unknown SLA state"):
        tally(["met", "meet"])  # type: ignore[list-item]


optional_after = st.none() | st.integers(min_value=0, max_value=3 * 24 * 60 * 60)
past_instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(
    past_instants,
    optional_after,
    optional_after,
    optional_after,
    st.sampled_from(["detected", "analysed"]),
    st.sampled_from(["notified", "contained", "notified+contained"]),
    targets,
    st.floats(min_value=0.05, max_value=0.95),
)
def test_row_clocks_on_the_24x7_calendar_equal_the_engine(
    detected: datetime,
    analysed: int | None,
    notified: int | None,
    contained: int | None,
    start: str,
    stop: str,
    target: int,
    fraction: float,
) -> None:
    """The clock columns computed for a new incident row are exactly what compute_clock says, for every rule."""
    after = {
        name: None if seconds is None else detected + timedelta(seconds=seconds)
        for name, seconds in (("analysed", analysed), ("notified", notified), ("contained", contained))
    }
    rule = SeverityPolicy(target_seconds=target, start=start, stop=stop)  # type: ignore[arg-type]
    policy = Policy(severities={"high": rule}, at_risk_fraction=fraction)
    data = IncidentIn.model_validate(
        {
            "agency": "MOF",
            "title": "t",
            "severity": "high",
            "category": "malicious-code/c2-server",
            "detected_at": detected,
            **{f"{name}_at": at for name, at in after.items()},
        }
    )
    expected = compute_clock(Milestones(detected=detected, **after), policy.rule("high"), ALWAYS, fraction)
    got = Clocks(policy).clock_values(data)
    assert got == (expected.start, expected.at_risk_at, expected.due_at, expected.stopped_at, expected.delay_seconds)


# Pauses


def pausing(target: int = HOUR, start: str = "detected", stop: str = "notified") -> Rule:
    return Rule(target, start, stop, "24x7", pauses=True)  # type: ignore[arg-type]


def test_a_closed_pause_pushes_the_due_time_back_and_leaves_the_delay() -> None:
    """Paused 20 minutes in a one-hour clock: due 20 minutes later, and 20 minutes fewer on the delay."""
    detected = bkk(2024, 3, 13, 14)
    pause = Pause(detected + timedelta(minutes=10), detected + timedelta(minutes=30))
    m = Milestones(detected=detected, notified=detected + timedelta(minutes=70))
    clock = compute_clock(m, pausing(), ALWAYS, 0.75, [pause])
    assert clock.due_at == detected + timedelta(minutes=80)
    assert clock.at_risk_at == detected + timedelta(minutes=65)
    assert (clock.delay_seconds, clock.paused_seconds) == (50 * 60, 20 * 60)
    assert state_at(clock, detected + timedelta(days=1), excluded=False) == "met"
    assert compute_clock(m, rule_of(), ALWAYS, 0.75, [pause]).delay_seconds == 70 * 60  # a rule that does not pause


def test_an_open_pause_holds_the_clock_with_no_due_time() -> None:
    detected = bkk(2024, 3, 13, 14)
    clock = compute_clock(
        Milestones(detected=detected), pausing(), ALWAYS, 0.75, [Pause(detected + timedelta(minutes=50))]
    )
    assert (clock.due_at, clock.paused_since) == (None, detected + timedelta(minutes=50))
    assert clock.at_risk_at == detected + timedelta(minutes=45)  # reached before the pause began
    later = detected + timedelta(hours=5)
    assert state_at(clock, later, excluded=False) == "paused"
    assert elapsed_seconds(clock, later, ALWAYS) == 50 * 60
    assert paused_seconds_at(clock, later, ALWAYS) == 4 * HOUR + 10 * 60


def test_a_pause_after_the_due_time_does_not_rescue_a_breached_clock() -> None:
    detected = bkk(2024, 3, 13, 14)
    pause = Pause(detected + timedelta(minutes=90))
    clock = compute_clock(Milestones(detected=detected), pausing(), ALWAYS, 0.75, [pause])
    assert clock.due_at == detected + timedelta(hours=1)
    assert state_at(clock, detected + timedelta(hours=3), excluded=False) == "breached"


def test_the_stop_ends_a_pause_that_was_never_resumed() -> None:
    detected = bkk(2024, 3, 13, 14)
    m = Milestones(detected=detected, notified=detected + timedelta(minutes=90))
    clock = compute_clock(m, pausing(), ALWAYS, 0.75, [Pause(detected + timedelta(minutes=30))])
    assert (clock.paused_seconds, clock.delay_seconds, clock.paused_since) == (3600, 1800, None)
    assert clock.due_at == detected + timedelta(minutes=120)
    assert state_at(clock, detected + timedelta(days=1), excluded=False) == "met"


def test_on_a_business_calendar_only_opening_hours_of_a_pause_count() -> None:
    """Paused from Friday 16:30 to Monday 09:30 Bangkok: 2 business hours paused, not 65 hours."""
    detected = bkk(2024, 3, 15, 15, 30)  # Friday
    rule = Rule(6 * HOUR, "detected", "notified", "business", pauses=True)
    pause = Pause(bkk(2024, 3, 15, 16, 30), bkk(2024, 3, 18, 9, 30))
    clock = compute_clock(Milestones(detected=detected), rule, BUSINESS, 0.75, [pause])
    assert clock.paused_seconds == 2 * HOUR
    # 1 h ran on Friday before the pause; 5 h remain from Monday 09:30: due 14:30
    assert clock.due_at == bkk(2024, 3, 18, 14, 30)


pause_offsets = st.lists(
    st.tuples(st.integers(min_value=0, max_value=4 * HOUR), st.integers(min_value=1, max_value=2 * HOUR)),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    pause_offsets,
    st.integers(min_value=0, max_value=6 * HOUR),
    st.integers(min_value=60, max_value=3 * HOUR),
)
def test_paused_time_never_counts_and_met_means_within_the_target(
    spans: list[tuple[int, int]], stop: int, target: int
) -> None:
    """On 24x7: the delay is the clock's run minus the paused time in it; within the target is met, beyond is
    breached; paused time equals the union of the pauses clipped to the run."""
    detected = datetime(2024, 1, 1, tzinfo=UTC)
    pauses = [Pause(detected + timedelta(seconds=s), detected + timedelta(seconds=s + d)) for s, d in spans]
    stopped = detected + timedelta(seconds=stop)
    clock = compute_clock(Milestones(detected=detected, notified=stopped), pausing(target), ALWAYS, 0.5, pauses)
    covered = set()
    for s, d in spans:
        covered.update(range(s, min(s + d, stop)))
    assert clock.paused_seconds == len(covered)
    assert clock.delay_seconds == stop - len(covered)
    state = state_at(clock, stopped, excluded=False)
    assert clock.delay_seconds is not None
    if clock.delay_seconds < target:
        assert state == "met"
    if clock.delay_seconds > target:
        assert state == "breached"


@settings(max_examples=200, deadline=None)
@given(pause_offsets, st.lists(st.integers(min_value=0, max_value=8 * HOUR), min_size=2, max_size=6))
def test_a_paused_or_running_clock_only_moves_forward(spans: list[tuple[int, int]], instants: list[int]) -> None:
    """Elapsed time never goes back as now advances, and an open last pause freezes it."""
    detected = datetime(2024, 1, 1, tzinfo=UTC)
    pauses = [Pause(detected + timedelta(seconds=s), detected + timedelta(seconds=s + d)) for s, d in spans]
    pauses.append(Pause(detected + timedelta(seconds=5 * HOUR)))
    clock = compute_clock(Milestones(detected=detected), pausing(), ALWAYS, 0.5, pauses)
    values = [elapsed_seconds(clock, detected + timedelta(seconds=s), ALWAYS) for s in sorted(instants)]
    assert values == sorted(values)  # type: ignore[type-var]


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2025, 1, 1), timezones=st.just(UTC)),
    *(st.one_of(st.none(), st.integers(min_value=0, max_value=5 * 24 * HOUR)) for _ in range(4)),
    st.sampled_from(["critical", "high", "medium", "low"]),
)
def test_a_new_rows_objective_clocks_equal_the_engine_for_every_built_in_objective(
    detected: datetime,
    analysed: int | None,
    notified: int | None,
    acknowledged: int | None,
    contained: int | None,
    severity: str,
) -> None:
    """The clock rows stored with a new incident (24x7 shortcut or not) are what the engine gives each objective."""
    after = {
        name: None if seconds is None else detected + timedelta(seconds=seconds)
        for name, seconds in (
            ("analysed", analysed),
            ("notified", notified),
            ("acknowledged", acknowledged),
            ("contained", contained),
        )
    }
    data = IncidentIn.model_validate(
        {
            "agency": "MOF",
            "title": "t",
            "severity": severity,
            "category": "malicious-code/c2-server",
            "detected_at": detected,
            **{f"{name}_at": value for name, value in after.items()},
        }
    )
    clocks = Clocks(Policy())
    engine = clocks.all(severity, {"detected": detected, **after})
    assert clocks.objective_rows(data) == clock_rows(engine)
    assert {row[0] for row in clocks.objective_rows(data)} >= {"notify", "coordinate"}
