"""Time left on an open clock, and how urgent it looks: the bands service desks colour (over an hour, under an
hour, under 30 minutes, past due)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from certmon.core.policy import Policy
from certmon.core.sla import Clock, elapsed_seconds, minutes_left

HOUR = 60  # minutes
HALF_HOUR = 30  # minutes


@dataclass(frozen=True, slots=True)
class TimeLeft:
    minutes: int | None  # negative once past due; None for a clock that stopped or never started
    urgency: str  # css class: ok, hour, half, over, paused, or "" when there is nothing left to count


def time_left(policy: Policy, severity: str, objective: str, clock: Clock, now: datetime) -> TimeLeft:
    """Wall-clock minutes to the due time; for a paused clock, the minutes its target has left when it resumes."""
    if clock.start is None or clock.stopped_at is not None:
        return TimeLeft(None, "")
    if clock.due_at is not None:
        minutes = minutes_left(clock.due_at, now)
        return TimeLeft(minutes, urgency(minutes))
    if severity not in policy.severities or objective not in policy.objectives:
        return TimeLeft(None, "paused")
    calendar = policy.calendar_for(severity, objective)
    used = elapsed_seconds(clock, now, calendar) or 0.0
    remaining = policy.rule(severity, objective).target_seconds - used
    return TimeLeft(math.floor(remaining / 60), "paused")


def urgency(minutes: int) -> str:
    if minutes < 0:
        return "over"
    if minutes < HALF_HOUR:
        return "half"
    if minutes < HOUR:
        return "hour"
    return "ok"


def target_text(seconds: int) -> tuple[str, int]:
    """A target as the catalogue key and number that say it best: ("hours", 4) or ("minutes", 90)."""
    if seconds % 3600 == 0:
        return "hours", seconds // 3600
    return "minutes", math.ceil(seconds / 60)
