"""The SLA engine: an incident's clock, its state at an instant, and the compliance figures of a set of incidents.

Everything here is pure: callers pass `now`, the policy's severity and calendar, and get values back.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

from certmon.core.calendars import Calendar
from certmon.core.policy import SeverityPolicy

SlaState = Literal["pending", "at_risk", "breached", "met", "excluded", "no_clock"]
SLA_STATES: tuple[SlaState, ...] = ("pending", "at_risk", "breached", "met", "excluded", "no_clock")
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
class Clock:
    """Where an incident's SLA clock starts, when it is at risk and due, and where it stopped."""

    start: datetime | None
    at_risk_at: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    delay_seconds: float | None


def _stop_instant(m: Milestones, stop: str) -> datetime | None:
    if stop == "notified":
        return m.notified
    if stop == "contained":
        return m.contained
    if m.notified is None or m.contained is None:
        return None
    return max(m.notified, m.contained)


def compute_clock(m: Milestones, severity: SeverityPolicy, calendar: Calendar, at_risk_fraction: float) -> Clock:
    """The clock of one incident under a severity's policy; start None when its start milestone is missing."""
    start = m.detected if severity.start == "detected" else m.analysed
    stopped_at = _stop_instant(m, severity.stop)
    if start is None:
        return Clock(start=None, at_risk_at=None, due_at=None, stopped_at=stopped_at, delay_seconds=None)
    target = severity.target_seconds
    return Clock(
        start=start,
        at_risk_at=calendar.add(start, at_risk_fraction * target),
        due_at=calendar.add(start, target),
        stopped_at=stopped_at,
        delay_seconds=None if stopped_at is None else calendar.seconds_between(start, stopped_at),
    )


def state_at(clock: Clock, now: datetime, excluded: bool) -> SlaState:
    """The SLA state at now; a stopped clock's state is final and does not depend on now."""
    _check_aware("now", now)
    if excluded:
        return "excluded"
    if clock.start is None or clock.due_at is None or clock.at_risk_at is None:
        return "no_clock"
    if clock.stopped_at is not None:
        return "met" if clock.stopped_at <= clock.due_at else "breached"
    if now > clock.due_at:
        return "breached"
    if now >= clock.at_risk_at:
        return "at_risk"
    return "pending"


def elapsed_seconds(clock: Clock, now: datetime, calendar: Calendar) -> float | None:
    """Calendar seconds on the clock: the delay once stopped, else from start to now; None without a start."""
    _check_aware("now", now)
    if clock.start is None:
        return None
    if clock.delay_seconds is not None:
        return clock.delay_seconds
    return calendar.seconds_between(clock.start, now)


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
