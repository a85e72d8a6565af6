"""The SLA engine: an incident's clock, its state at an instant, and the compliance figures of a set of incidents.

Everything here is pure: callers pass `now`, the policy's severity and calendar, and get values back.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

from certmon.core.calendars import Calendar
from certmon.core.policy import Rule

SlaState = Literal["pending", "at_risk", "paused", "breached", "met", "excluded", "no_clock"]
SLA_STATES: tuple[SlaState, ...] = ("pending", "at_risk", "paused", "breached", "met", "excluded", "no_clock")
Colour = Literal["green", "yellow", "red"]

# Shortfalls are rounded before the colour comparison so that exactly 5 % short stays green despite float error.
_SHORTFALL_DECIMALS = 10


def _check_aware(name: str, dt: datetime | None) -> None:
    if dt is not None and (dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")


_MILESTONE_NAMES = ("detected", "analysed", "notified", "acknowledged", "contained", "resolved")


@dataclass(frozen=True, slots=True)
class Milestones:
    """The instants an incident reached each milestone; all aware, None when not (yet) reached."""

    detected: datetime
    analysed: datetime | None = None
    notified: datetime | None = None
    acknowledged: datetime | None = None
    contained: datetime | None = None
    resolved: datetime | None = None

    def __post_init__(self) -> None:
        # Bulk ingest builds one per row, so the common case (all aware) costs one C call per set milestone.
        values = (self.detected, self.analysed, self.notified, self.acknowledged, self.contained, self.resolved)
        for name, value in zip(_MILESTONE_NAMES, values, strict=True):
            if value is not None and value.utcoffset() is None:
                _check_aware(name, value)


@dataclass(frozen=True, slots=True)
class Pause:
    """A span in which the incident waited for the agency; end None while the pause lasts."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Clock:
    """Where an incident's SLA clock starts, when it is at risk and due, and where it stopped.

    A paused clock has no due time yet: due_at and at_risk_at are None (unless already passed before the pause)
    and paused_since says when the pause began. paused_seconds counts the pauses that ended (or that the stop
    ended), on the clock's calendar, within the clock's run.
    """

    start: datetime | None
    at_risk_at: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    delay_seconds: float | None
    paused_seconds: float = 0.0
    paused_since: datetime | None = None


def stop_instant(m: Milestones, stop: str) -> datetime | None:
    """The instant a stop ("notified", or "notified+contained" for the later of both) was reached, or None."""
    instants: list[datetime | None] = [getattr(m, name) for name in stop.split("+")]
    if None in instants:
        return None
    return max(instant for instant in instants if instant is not None)


def _spans(
    pauses: Sequence[Pause], start: datetime, stopped_at: datetime | None
) -> list[tuple[datetime, datetime | None]]:
    """The pauses within the clock's run, clipped to it, sorted; the last one may still be open."""
    spans: list[tuple[datetime, datetime | None]] = []
    for pause in sorted(pauses, key=lambda p: p.start):
        begin = max(pause.start, start)
        end = pause.end if stopped_at is None else (stopped_at if pause.end is None else min(pause.end, stopped_at))
        if stopped_at is not None and begin >= stopped_at:
            continue
        if end is not None and end <= begin:
            continue
        if spans:
            last_begin, last_end = spans[-1]
            if last_end is None or begin < last_end:  # overlapping pauses count once
                spans[-1] = (last_begin, None if last_end is None or end is None else max(last_end, end))
                continue
        spans.append((begin, end))
    return spans


def _reached(
    calendar: Calendar, start: datetime, seconds: float, spans: list[tuple[datetime, datetime | None]]
) -> datetime | None:
    """When the clock has run for ``seconds`` of calendar time outside the pauses; None if a pause holds it."""
    cursor, remaining = start, seconds
    for begin, end in spans:
        running = calendar.seconds_between(cursor, begin)
        if running >= remaining:
            break
        remaining -= running
        if end is None:
            return None
        cursor = end
    return calendar.add(cursor, remaining)


def compute_clock(
    m: Milestones, rule: Rule, calendar: Calendar, at_risk_fraction: float, pauses: Sequence[Pause] = ()
) -> Clock:
    """The clock of one incident under an objective's rule; start None when its start milestone is missing.

    Pauses count only for a rule that pauses: their time on the calendar is left out of the delay and pushes the
    due time back, as long as the pause began before the clock was due.
    """
    start: datetime | None = getattr(m, rule.start)
    stopped_at = stop_instant(m, rule.stop)
    if start is None:
        return Clock(start=None, at_risk_at=None, due_at=None, stopped_at=stopped_at, delay_seconds=None)
    target = rule.target_seconds
    spans = _spans(pauses, start, stopped_at) if rule.pauses and pauses else []
    if not spans:
        return Clock(
            start=start,
            at_risk_at=calendar.add(start, at_risk_fraction * target),
            due_at=calendar.add(start, target),
            stopped_at=stopped_at,
            delay_seconds=None if stopped_at is None else calendar.seconds_between(start, stopped_at),
        )
    closed = [(begin, end) for begin, end in spans if end is not None]
    paused = sum(calendar.seconds_between(begin, end) for begin, end in closed)
    open_since = spans[-1][0] if spans[-1][1] is None else None
    delay = None
    if stopped_at is not None:
        delay = max(0.0, calendar.seconds_between(start, stopped_at) - paused)
    return Clock(
        start=start,
        at_risk_at=_reached(calendar, start, at_risk_fraction * target, spans),
        due_at=_reached(calendar, start, target, spans),
        stopped_at=stopped_at,
        delay_seconds=delay,
        paused_seconds=paused,
        paused_since=open_since,
    )


def state_at(clock: Clock, now: datetime, excluded: bool) -> SlaState:
    """The SLA state at now; a stopped clock's state is final and does not depend on now."""
    _check_aware("now", now)
    if excluded:
        return "excluded"
    if clock.start is None:
        return "no_clock"
    if clock.stopped_at is not None:
        return "met" if clock.due_at is not None and clock.stopped_at <= clock.due_at else "breached"
    if clock.due_at is None:
        return "paused"
    if now > clock.due_at:
        return "breached"
    if clock.at_risk_at is not None and now >= clock.at_risk_at:
        return "at_risk"
    return "pending"


def elapsed_seconds(clock: Clock, now: datetime, calendar: Calendar) -> float | None:
    """Calendar seconds on the clock: the delay once stopped, else from start to now; None without a start."""
    _check_aware("now", now)
    if clock.start is None:
        return None
    if clock.delay_seconds is not None:
        return clock.delay_seconds
    until = clock.paused_since or now
    return max(0.0, calendar.seconds_between(clock.start, until) - clock.paused_seconds)


def minutes_left(due_at: datetime, now: datetime) -> int:
    """Whole minutes until due, rounded down, so that a clock one second past due shows -1, not 0."""
    return math.floor((due_at - now).total_seconds() / 60)


def paused_seconds_at(clock: Clock, now: datetime, calendar: Calendar) -> float:
    """Paused calendar seconds up to now: the ended pauses, and the one still going on."""
    if clock.paused_since is None or clock.stopped_at is not None:
        return clock.paused_seconds
    return clock.paused_seconds + calendar.seconds_between(clock.paused_since, max(now, clock.paused_since))


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts of incidents per SLA state over one period or group."""

    total: int = 0
    met: int = 0
    breached: int = 0
    pending: int = 0
    at_risk: int = 0
    excluded: int = 0
    no_clock: int = 0
    paused: int = 0

    @property
    def decided(self) -> int:
        return self.met + self.breached

    @property
    def compliance(self) -> float | None:
        """met / (met + breached); None when nothing is decided yet."""
        return self.met / self.decided if self.decided else None

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def tally(states: Iterable[SlaState]) -> Figures:
    """Count states into Figures; total counts every state, excluded and no_clock included."""
    counts = dict.fromkeys(SLA_STATES, 0)
    for state in states:
        if state not in counts:
            raise ValueError(f"unknown SLA state {state!r}")
        counts[state] += 1
    return Figures(total=sum(counts.values()), **counts)


def shortfall(compliance: float | None, target: float) -> float | None:
    """Relative shortfall max(0, (target - actual) / target); None when compliance is None."""
    if compliance is None:
        return None
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    return max(0.0, (target - compliance) / target)


def status_colour(compliance: float | None, target: float, green_max: float, yellow_max: float) -> Colour | None:
    """Green within green_max relative shortfall, yellow within yellow_max, else red; None without compliance."""
    short = shortfall(compliance, target)
    if short is None:
        return None
    short = round(short, _SHORTFALL_DECIMALS)
    if short <= green_max:
        return "green"
    if short <= yellow_max:
        return "yellow"
    return "red"
