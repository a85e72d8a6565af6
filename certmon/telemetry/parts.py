"""The parts of the metrics snapshot: each reads the database in the snapshot's transaction and returns families."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from certmon.core.periods import current_month, fiscal_year_to_date, month_period
from certmon.core.policy import SCALE_POINTS, Policy
from certmon.core.sla import SLA_STATES
from certmon.store import rollups
from certmon.store.db import Queries
from certmon.telemetry.conventions import (
    DECIDED_STATES,
    DELAY_BUCKETS,
    EXPORT_LAST_MONTH_END,
    EXPORT_LAST_SUCCESS,
    OPEN_STATES,
    PAUSED_STATE,
    SATISFACTION_LABELS,
    SATISFACTION_RATIO,
    SATISFACTION_RESPONSES,
    SATISFACTION_TARGET,
    SATISFACTION_TARGET_LABELS,
    SLA_AGENCY_COMPLIANCE,
    SLA_AGENCY_COMPLIANCE_LABELS,
    SLA_COMPLIANCE,
    SLA_COMPLIANCE_LABELS,
    SLA_DECIDED,
    SLA_DECIDED_LABELS,
    SLA_DELAY,
    SLA_DELAY_LABELS,
    SLA_INCIDENTS,
    SLA_INCIDENTS_LABELS,
    SLA_OBJECTIVE_INFO,
    SLA_OBJECTIVE_INFO_LABELS,
    SLA_OPEN_INCIDENTS,
    SLA_OPEN_INCIDENTS_LABELS,
    SLA_TARGET,
    SLA_TARGET_LABELS,
    WINDOWS,
)
from certmon.telemetry.snapshot import Family


async def survey_families(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Family]:
    """Satisfaction ratio (mean / 5) and responses per service for this month and fiscal year, and each target.

    A service without answers in a window has no ratio sample rather than a misleading 0.
    """
    services = policy.surveys.services
    ratio: list[tuple[tuple[str, ...], float]] = []
    responses: list[tuple[tuple[str, ...], float]] = []
    for window, period in zip(
        WINDOWS, (current_month(now, policy.tz), fiscal_year_to_date(now, policy.tz)), strict=True
    ):
        rows = {r["service"]: r for r in await conn.fetch(q["survey_service_totals"], period.start, period.end)}
        for name in services:
            row = rows.get(name)
            responses.append(((name, window), float(row["responses"]) if row else 0.0))
            if row and row["answers"]:
                ratio.append(((name, window), int(row["score_sum"]) / int(row["answers"]) / SCALE_POINTS))
    return [
        Family(
            SATISFACTION_RATIO,
            "satisfaction: mean answer / 5, by survey service and window (month, fiscal_year to date; Bangkok time)",
            SATISFACTION_LABELS,
            ratio,
        ),
        Family(
            SATISFACTION_RESPONSES,
            "survey responses submitted, by survey service and window (month, fiscal_year to date; Bangkok time)",
            SATISFACTION_LABELS,
            responses,
        ),
        Family(
            SATISFACTION_TARGET,
            "satisfaction target of the policy, by survey service",
            SATISFACTION_TARGET_LABELS,
            [((name,), service.target) for name, service in services.items()],
        ),
    ]


async def export_families(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Family]:
    """When the last export succeeded, and the end of the newest exported month; no sample before the first."""
    row = await conn.fetchrow(q["export_last_success"])
    last, month = (row["generated_at"], row["month"]) if row is not None else (None, None)
    success: list[tuple[tuple[str, ...], float]] = [] if last is None else [((), last.timestamp())]
    month_end: list[tuple[tuple[str, ...], float]] = (
        [((), month_period(int(month[:4]), int(month[5:]), policy.tz).end.timestamp())] if month else []
    )
    return [
        Family(
            EXPORT_LAST_SUCCESS,
            "when the newest monthly SLA export revision was stored (Unix time)",
            (),
            success,
        ),
        Family(
            EXPORT_LAST_MONTH_END,
            "end of the newest exported month, Bangkok midnight (Unix time); alert when older than ~32 days",
            (),
            month_end,
        ),
    ]


async def _per_objective(
    conn: asyncpg.Connection, q: Queries, policy: Policy, name: str, *args: Any
) -> list[tuple[str, asyncpg.Record]]:
    """The rows of ``metrics_<name>`` for the KPI (read off the incidents row, as before objectives existed) and of
    ``metrics_objective_<name>`` for every other objective of the policy (from incident_clocks), by objective."""
    kpi = policy.kpi_name
    found = [(kpi, row) for row in await conn.fetch(q[f"metrics_{name}"], *args)]
    others = [objective for objective in policy.objectives if objective != kpi]
    if others:
        rows = await conn.fetch(q[f"metrics_objective_{name}"], *args, others)
        found += [(row["objective"], row) for row in rows]
    return found


def _states(policy: Policy, objective: str, states: tuple[str, ...]) -> tuple[str, ...]:
    """The states an objective's clock can be in: only a clock that pauses is ever paused."""
    if policy.objectives[objective].pauses:
        return states
    return tuple(state for state in states if state != PAUSED_STATE)


def _count(states: dict[str, int], state: str, n: int) -> None:
    states[state] = states.get(state, 0) + n


async def sla_families(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Family]:
    """Per objective: compliance, counts per agency, severity and state for both windows, open clocks, the target."""
    month, fiscal_year = current_month(now, policy.tz), fiscal_year_to_date(now, policy.tz)
    rows = await rollups.window_rows(conn, q, policy, fiscal_year, month, now)
    # Every state of an (objective, agency, severity) that has incidents in a window is written, zeros included,
    # so that a ratio such as met / (met + breached) exists (and is 0) for an agency without a single met incident.
    counts: dict[tuple[str, str, str, str, str], dict[str, int]] = {}
    for objective, row in rows:
        for window in WINDOWS:
            if row[window]:
                key = (objective, window, row["agency"], row["sector"], row["severity"])
                states = counts.setdefault(key, dict.fromkeys(_states(policy, objective, SLA_STATES), 0))
                _count(states, row["state"], row[window])
    incidents: list[tuple[tuple[str, ...], float]] = [
        ((*key, state), float(n)) for key, states in sorted(counts.items()) for state, n in states.items()
    ]

    national: dict[tuple[str, str], list[int]] = {(o, w): [0, 0] for o in policy.objectives for w in WINDOWS}
    agencies: dict[tuple[str, str, str, str], list[int]] = {}
    for (objective, window, agency, sector, _), states in counts.items():
        for total in (national[(objective, window)], agencies.setdefault((objective, window, agency, sector), [0, 0])):
            total[0] += states["met"]
            total[1] += states["met"] + states["breached"]

    open_counts: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for objective, counted in await _per_objective(conn, q, policy, "open_counts", now):
        clock = (objective, counted["agency"], counted["sector"], counted["severity"])
        _count(
            open_counts.setdefault(clock, dict.fromkeys(_states(policy, objective, OPEN_STATES), 0)),
            counted["state"],
            counted["n"],
        )

    return [
        Family(
            SLA_OBJECTIVE_INFO,
            'the policy\'s SLA objectives, always 1; kpi="true" marks the one the compliance target speaks of',
            SLA_OBJECTIVE_INFO_LABELS,
            [((name, "true" if name == policy.kpi_name else "false"), 1.0) for name in policy.objectives],
        ),
        Family(
            SLA_TARGET,
            "share of decided incidents that must meet their SLA (policy compliance_target), by objective",
            SLA_TARGET_LABELS,
            [((name,), policy.compliance_target) for name in policy.objectives],
        ),
        Family(
            SLA_COMPLIANCE,
            "met / (met + breached) of incidents whose objective's clock started in the window; absent while none "
            "is decided",
            SLA_COMPLIANCE_LABELS,
            [(key, met / decided) for key, (met, decided) in national.items() if decided],
        ),
        Family(
            SLA_AGENCY_COMPLIANCE,
            "met / (met + breached) of an agency's incidents whose objective's clock started in the window",
            SLA_AGENCY_COMPLIANCE_LABELS,
            [(key, met / decided) for key, (met, decided) in sorted(agencies.items()) if decided],
        ),
        Family(
            SLA_INCIDENTS,
            "incidents whose objective's clock started in the window, by agency, severity and SLA state now",
            SLA_INCIDENTS_LABELS,
            incidents,
        ),
        Family(
            SLA_OPEN_INCIDENTS,
            "incidents whose objective's clock started and has not stopped, by agency, severity and state "
            "(pending, at_risk, paused, breached)",
            SLA_OPEN_INCIDENTS_LABELS,
            [((*key, state), float(n)) for key, states in sorted(open_counts.items()) for state, n in states.items()],
        ),
    ]


async def sla_history(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Metric]:
    """All-time decisions and the delay histogram per objective, recounted from the database: a restart never
    zeroes them."""
    decided = CounterMetricFamily(
        SLA_DECIDED,
        "incidents ever decided (met, or breached: stopped late or overdue), by objective, sector, severity and state",
        labels=list(SLA_DECIDED_LABELS),
    )
    found: dict[tuple[str, str, str], dict[str, int]] = {}
    for objective, row in await rollups.decided_rows(conn, q, policy, now):
        key = (objective, row["sector"], row["severity"])
        _count(found.setdefault(key, dict.fromkeys(DECIDED_STATES, 0)), row["state"], row["n"])
    for key, states in sorted(found.items()):
        for state, n in states.items():
            decided.add_metric([*key, state], n)

    histogram = HistogramMetricFamily(
        SLA_DELAY,
        "SLA delay of every stopped clock (start milestone to stop milestone, seconds on the objective's calendar, "
        "paused time left out), by objective and severity",
        labels=list(SLA_DELAY_LABELS),
    )
    bounds = [*DELAY_BUCKETS, float("inf")]
    keys = [(objective, severity) for objective in policy.objectives for severity in policy.severities]
    buckets: dict[tuple[str, str], list[float]] = {key: [0.0] * len(bounds) for key in keys}
    sums: dict[tuple[str, str], float] = dict.fromkeys(keys, 0.0)
    for objective, bucket in await rollups.delay_rows(conn, q, policy, bounds):
        series = (objective, bucket["severity"])
        if series in buckets:
            buckets[series][bounds.index(bucket["le"])] = bucket["cumulative"]
            sums[series] = bucket["total_seconds"]
    for series, counts in buckets.items():
        labelled = [(_le(bound), count) for bound, count in zip(bounds, counts, strict=True)]
        histogram.add_metric(list(series), labelled, sums[series])
    return [decided, histogram]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
