"""An incident's SLA clocks under a policy, one per objective: the clock columns of a new row, and a fingerprint
of what was said."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from certmon.core.calendars import Always, Calendar
from certmon.core.errors import Invalid
from certmon.core.models import MILESTONES, IncidentIn
from certmon.core.policy import Policy, Rule
from certmon.core.sla import Clock, Milestones, Pause, compute_clock

ALL_MILESTONES = ("detected", *MILESTONES)
# The columns of incident_clocks after incident_id, in the order of every query and COPY that writes them.
CLOCK_COLUMNS = (
    "objective", "clock_start", "at_risk_at", "due_at", "stopped_at", "delay_seconds", "paused_seconds",
    "paused_since",
)  # fmt: skip
_NO_CLOCK = Clock(None, None, None, None, None)


def body_hash(data: IncidentIn) -> str:
    """A fingerprint of what the sender said, independent of key order and of timestamp offsets.

    Validation has already normalized every time to UTC, and pydantic dumps fields in declaration order.
    """
    return hashlib.sha256(data.__pydantic_serializer__.to_json(data)).hexdigest()


class _RoundTheClock:
    """A rule whose clock runs on the 24x7 calendar, with no pause yet, where due times are plain additions.

    Bulk ingest computes every objective's clock per line; this gives the values compute_clock gives (a test holds
    the two equal) without building its Milestones and Clock objects.
    """

    def __init__(self, rule: Rule, at_risk_fraction: float) -> None:
        self.start = f"{rule.start}_at"
        self.stops = tuple(f"{name}_at" for name in rule.stop_milestones)
        self.at_risk = timedelta(seconds=at_risk_fraction * rule.target_seconds)
        self.target = timedelta(seconds=rule.target_seconds)

    def values(self, data: IncidentIn) -> tuple[Any, ...]:
        """clock_start, at_risk_at, due_at, stopped_at and delay_seconds."""
        fields = data.__dict__
        start = fields[self.start]
        stops = [fields[name] for name in self.stops]
        stopped = None if None in stops else max(stops)
        if start is None:
            return (None, None, None, stopped, None)
        delay = None if stopped is None else max(0.0, (stopped - start).total_seconds())
        return (start, start + self.at_risk, start + self.target, stopped, delay)


def milestones_of(values: Mapping[str, datetime | None]) -> Milestones:
    detected = values["detected"]
    assert detected is not None
    return Milestones(
        detected=detected,
        analysed=values.get("analysed"),
        notified=values.get("notified"),
        acknowledged=values.get("acknowledged"),
        contained=values.get("contained"),
        resolved=values.get("resolved"),
    )


class Clocks:
    """A policy's SLA clocks, every objective's rule and calendar per severity looked up once rather than per row.

    ``Clocks.of(policy)`` shares one per policy object: a service holds one policy for its lifetime, and building
    the rules again for every request would cost more than storing the incident.
    """

    _shared: dict[int, tuple[Policy, Clocks]] = {}  # noqa: RUF012  (a cache, keyed by the policy object)

    @classmethod
    def of(cls, policy: Policy) -> Clocks:
        held = cls._shared.get(id(policy))
        if held is not None and held[0] is policy:
            return held[1]
        if len(cls._shared) >= 8:
            cls._shared.clear()
        clocks = cls(policy)
        clocks.fingerprint  # noqa: B018  (computed once, here, rather than on the first request)
        cls._shared[id(policy)] = (policy, clocks)
        return clocks

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.kpi = policy.kpi_name
        self.objectives = tuple(policy.objectives)
        self._rules: dict[tuple[str, str], tuple[Rule, Calendar]] = {}
        for objective in self.objectives:
            for severity in policy.severities:
                rule = policy.rule(severity, objective)
                self._rules[(objective, severity)] = (rule, policy.calendar_named(rule.calendar))
        self._round_the_clock = {
            key: _RoundTheClock(rule, policy.at_risk_fraction)
            for key, (rule, calendar) in self._rules.items()
            if isinstance(calendar, Always)
        }
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = self.policy.clock_fingerprint()
        return self._fingerprint

    def check_severity(self, severity: str) -> None:
        if severity not in self.policy.severities:
            raise Invalid("severity", f"must be one of {', '.join(self.policy.severities)}")

    def calendar(self, severity: str, objective: str | None = None) -> Calendar | None:
        parts = self._rules.get((objective or self.kpi, severity))
        return None if parts is None else parts[1]

    def clock(
        self,
        severity: str,
        milestones: Mapping[str, datetime | None],
        objective: str | None = None,
        pauses: Sequence[Pause] = (),
    ) -> Clock:
        """One objective's clock (the KPI's by default); a severity the policy no longer knows has none."""
        return self._clock(objective or self.kpi, severity, milestones_of(milestones), pauses)

    def all(
        self, severity: str, milestones: Mapping[str, datetime | None], pauses: Sequence[Pause] = ()
    ) -> dict[str, Clock]:
        """Every objective's clock, by objective name."""
        m = milestones_of(milestones)
        return {objective: self._clock(objective, severity, m, pauses) for objective in self.objectives}

    def _clock(self, objective: str, severity: str, m: Milestones, pauses: Sequence[Pause]) -> Clock:
        parts = self._rules.get((objective, severity))
        if parts is None:
            return _NO_CLOCK
        return compute_clock(m, parts[0], parts[1], self.policy.at_risk_fraction, pauses)

    def clock_values(self, data: IncidentIn) -> tuple[Any, ...]:
        """The KPI clock columns of a new incident: clock_start, at_risk_at, due_at, stopped_at, delay_seconds."""
        return self._values(self.kpi, data)

    def _values(self, objective: str, data: IncidentIn) -> tuple[Any, ...]:
        fast = self._round_the_clock.get((objective, data.severity))
        if fast is not None:
            return fast.values(data)
        m = Milestones(
            data.detected_at, data.analysed_at, data.notified_at, data.acknowledged_at, data.contained_at,
            data.resolved_at,
        )  # fmt: skip
        return clock_values(self._clock(objective, data.severity, m, ()))

    def objective_rows(self, data: IncidentIn) -> list[tuple[Any, ...]]:
        """A new incident's incident_clocks rows (CLOCK_COLUMNS), for the objectives whose clock started or stopped."""
        rows = []
        for objective in self.objectives:
            values = self._values(objective, data)
            if values[0] is not None or values[3] is not None:
                rows.append((objective, *values, 0.0, None))
        return rows

    def insert_args(
        self, data: IncidentIn, actor: str, digest: str | None = None, *, closed_at: datetime | None = None
    ) -> tuple[Any, ...]:
        """The values of one incidents row in the column order of incident_insert, then its objective_rows.

        ``digest`` is body_hash(data), from a caller that keeps it to compare with a row stored under the same key.
        With ``closed_at`` (a history import) the clocks are closed_by_history at that instant.
        """
        self.check_severity(data.severity)
        if closed_at is not None:
            *head, kpi_start, kpi_at_risk, kpi_due, kpi_stopped, kpi_delay, fingerprint, who, rows = self.insert_args(
                data, actor, digest
            )
            kpi = closed_values((kpi_start, kpi_at_risk, kpi_due, kpi_stopped, kpi_delay), closed_at)
            return (*head, *kpi, fingerprint, who, closed_rows(rows, closed_at))
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
            self.objective_rows(data),
        )


def closed_by_history(clock: Clock, at: datetime) -> Clock:
    """A clock as a history import leaves it: closed at ``at`` when it was running past due, with no known delay.

    An old alert with no recorded notification is a miss in its period, not an open clock: it keeps its due time and
    counts as breached (stopped after it), while its delay stays unknown so that no delay figure is made up. A clock
    a milestone stopped, one not started, paused or not yet due at ``at`` (a recent alert) is left as it is.
    """
    if clock.start is None or clock.stopped_at is not None or clock.due_at is None or clock.due_at >= at:
        return clock
    return replace(clock, stopped_at=at, delay_seconds=None, paused_since=None)


def closed_values(values: Sequence[Any], at: datetime) -> tuple[Any, ...]:
    """clock_values (start, at_risk_at, due_at, stopped_at, delay_seconds), closed_by_history at ``at``."""
    start, at_risk_at, due_at, stopped_at, delay = values
    return clock_values(closed_by_history(Clock(start, at_risk_at, due_at, stopped_at, delay), at))


def closed_rows(rows: Iterable[Sequence[Any]], at: datetime) -> list[tuple[Any, ...]]:
    """objective_rows (CLOCK_COLUMNS), closed_by_history at ``at``."""
    out = []
    for objective, start, at_risk_at, due_at, stopped_at, delay, paused_seconds, paused_since in rows:
        clock = Clock(start, at_risk_at, due_at, stopped_at, delay, paused_seconds, paused_since)
        closed = closed_by_history(clock, at)
        out.append((objective, *clock_values(closed), closed.paused_seconds, closed.paused_since))
    return out


def clock_values(clock: Clock) -> tuple[Any, ...]:
    return (clock.start, clock.at_risk_at, clock.due_at, clock.stopped_at, clock.delay_seconds)


def clock_rows(clocks: Mapping[str, Clock]) -> list[tuple[Any, ...]]:
    """incident_clocks rows (CLOCK_COLUMNS) of the clocks that started or stopped."""
    return [
        (objective, *clock_values(clock), clock.paused_seconds, clock.paused_since)
        for objective, clock in clocks.items()
        if clock.start is not None or clock.stopped_at is not None
    ]


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column, as unnest() takes them."""
    out: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index, value in enumerate(row):
            out[index].append(value)
    return out
