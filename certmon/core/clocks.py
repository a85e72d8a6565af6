"""An incident's SLA clock under a policy: the clock columns of a new row, and a fingerprint of what was said."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from certmon.core.calendars import Always
from certmon.core.errors import Invalid
from certmon.core.models import MILESTONES, IncidentIn
from certmon.core.policy import Policy, SeverityPolicy
from certmon.core.sla import Clock, Milestones, compute_clock

ALL_MILESTONES = ("detected", *MILESTONES)


def body_hash(data: IncidentIn) -> str:
    """A fingerprint of what the sender said, independent of key order and of timestamp offsets.

    Validation has already normalized every time to UTC, and pydantic dumps fields in declaration order.
    """
    return hashlib.sha256(data.__pydantic_serializer__.to_json(data)).hexdigest()


class _RoundTheClock:
    """A severity whose clock runs on the 24x7 calendar, where due times are plain additions.

    Bulk ingest computes one clock per line; this gives the values compute_clock gives (a test holds the two
    equal) without building its Milestones and Clock objects.
    """

    def __init__(self, rule: SeverityPolicy, at_risk_fraction: float) -> None:
        self.from_analysed = rule.start == "analysed"
        self.stop = rule.stop
        self.at_risk = timedelta(seconds=at_risk_fraction * rule.target_seconds)
        self.target = timedelta(seconds=rule.target_seconds)

    def values(self, data: IncidentIn) -> tuple[Any, ...]:
        """clock_start, at_risk_at, due_at, stopped_at and delay_seconds."""
        start = data.analysed_at if self.from_analysed else data.detected_at
        if self.stop == "notified":
            stopped = data.notified_at
        elif self.stop == "contained":
            stopped = data.contained_at
        elif data.notified_at is None or data.contained_at is None:
            stopped = None
        else:
            stopped = max(data.notified_at, data.contained_at)
        if start is None:
            return (None, None, None, stopped, None)
        delay = None if stopped is None else max(0.0, (stopped - start).total_seconds())
        return (start, start + self.at_risk, start + self.target, stopped, delay)


class Clocks:
    """A policy's SLA clocks, with each severity's rule and calendar looked up once rather than per row."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = {name: (rule, policy.calendar_for(name)) for name, rule in policy.severities.items()}
        self._round_the_clock = {
            name: _RoundTheClock(rule, policy.at_risk_fraction)
            for name, (rule, calendar) in self._rules.items()
            if isinstance(calendar, Always)
        }
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.policy.clock_fingerprint()
        return self._fingerprint

    def check_severity(self, severity: str) -> None:
        if severity not in self._rules:
            raise Invalid("severity", f"must be one of {', '.join(self._rules)}")

    def clock(self, severity: str, milestones: Mapping[str, datetime | None]) -> Clock:
        """The clock under this policy; an incident whose severity the policy no longer knows has none."""
        detected = milestones["detected"]
        assert detected is not None
        return self._clock(
            severity,
            Milestones(
                detected=detected,
                analysed=milestones.get("analysed"),
                notified=milestones.get("notified"),
                acknowledged=milestones.get("acknowledged"),
                contained=milestones.get("contained"),
                resolved=milestones.get("resolved"),
            ),
        )

    def _clock(self, severity: str, m: Milestones) -> Clock:
        parts = self._rules.get(severity)
        if parts is None:
            return Clock(None, None, None, None, None)
        return compute_clock(m, parts[0], parts[1], self.policy.at_risk_fraction)

    def clock_values(self, data: IncidentIn) -> tuple[Any, ...]:
        """The clock columns of a new incident: clock_start, at_risk_at, due_at, stopped_at, delay_seconds."""
        fast = self._round_the_clock.get(data.severity)
        if fast is not None:
            return fast.values(data)
        m = Milestones(
            data.detected_at, data.analysed_at, data.notified_at, data.acknowledged_at, data.contained_at,
            data.resolved_at,
        )  # fmt: skip
        return clock_values(self._clock(data.severity, m))

    def insert_args(self, data: IncidentIn, actor: str, digest: str | None = None) -> tuple[Any, ...]:
        """The values of one incidents row, in the column order of incident_insert and incident_stage.

        ``digest`` is body_hash(data), from a caller that keeps it to compare with a row stored under the same key.
        """
        self.check_severity(data.severity)
        return (
            data.agency,
            data.title,
            data.severity,
            data.category,
            data.tlp,
            data.description,
            data.source,
            data.external_id,
            body_hash(data) if digest is None else digest,
            data.detected_at,
            data.analysed_at,
            data.notified_at,
            data.acknowledged_at,
            data.contained_at,
            data.resolved_at,
            *self.clock_values(data),
            self.fingerprint,
            actor,
        )


def clock_values(clock: Clock) -> tuple[Any, ...]:
    return (clock.start, clock.at_risk_at, clock.due_at, clock.stopped_at, clock.delay_seconds)
