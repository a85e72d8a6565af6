"""A period's SLA figures from the rollups (migration 0012): counts per objective, agency, severity, local month
and decided state kept in every write's transaction, plus the running clocks read live.

A period of whole local months reads O(agencies x severities x months) rows whatever the number of incidents.
Counts equal those of a scan of every incident (tests/test_rollups.py holds them equal). Delay quantiles come from
a fine histogram (migration 0012, certmon_delay_bucket): a zero delay in bucket 0, one under a millisecond in bucket
1, and one in [0.001 * 1.01^(k-2), 0.001 * 1.01^(k-1)) seconds in bucket k >= 2, each with its count and sum. A
bucket reads as the mean of its delays, less than 1 % from any delay in it (under a millisecond: within a
millisecond), and exact when its delays are equal, as whole-minute ones often are. percentile_cont interpolates
between two ordered delays with positive weights, so interpolating their buckets' values keeps the same bound.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from certmon.core.periods import BE_OFFSET, FY_FIRST_MONTH, Period
from certmon.core.policy import Policy
from certmon.store.db import Queries

QUANTILES = (0.5, 0.9, 0.95)
RELATIVE_ERROR = 0.01  # of a delay quantile, against percentile_cont over the same delays
ABSOLUTE_ERROR_BELOW_MILLISECOND = 0.001
RUNNING_STATES = ("pending", "at_risk", "paused", "breached")
FIGURE_STATES = ("met", "breached", "pending", "at_risk", "excluded", "no_clock", "paused")


def month_span(period: Period, tz: ZoneInfo) -> tuple[date, date] | None:
    """The first local months in and after a period made of whole local months; None for any other period."""
    bounds = []
    for instant in (period.start, period.end):
        local = instant.astimezone(tz)
        if (local.day, local.hour, local.minute, local.second, local.microsecond) != (1, 0, 0, 0, 0):
            return None
        bounds.append(date(local.year, local.month, 1))
    return bounds[0], bounds[1]


FACTS = ("detected", "detected_excluded", "started", "started_excluded", "excluded", "met", "breached")


def figures(facts: Mapping[str, int], running: Mapping[str, int]) -> dict[str, int]:
    """A group's counts per state from its facts and its running clocks.

    Started clocks count in the period of their start, as decided (met, breached), excluded or running; the
    period's other incidents are those it detected less those whose clock started.
    """
    detected, detected_excluded = facts.get("detected", 0), facts.get("detected_excluded", 0)
    started, started_excluded = facts.get("started", 0), facts.get("started_excluded", 0)
    counts = {
        "met": facts.get("met", 0),
        "breached": facts.get("breached", 0) + running.get("breached", 0),
        "pending": running.get("pending", 0),
        "at_risk": running.get("at_risk", 0),
        "paused": running.get("paused", 0),
        "excluded": facts.get("excluded", 0) + detected_excluded - started_excluded,
        "no_clock": detected - started,
    }
    counts["total"] = sum(counts.values())
    return counts


def fiscal_year_of_span(first: date, after: date) -> int | None:
    """The Thai fiscal year (BE) that the local months [first, after) are exactly, if they are one."""
    if first.month == FY_FIRST_MONTH and after == date(first.year + 1, FY_FIRST_MONTH, 1):
        return first.year + 1 + BE_OFFSET
    return None


def _summed(groups: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for group in groups:
        for k, n in group.items():
            total[k] += n
    return total


async def report_rows(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    period: Period,
    now: datetime,
    *,
    objective: str,
    agency: str | None,
    sector: str | None,
    severity: str | None,
    group_by: str | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The overall row and one row per group (sorted by key), in the shape of sla_figures' rows, or None when the
    period is not whole months. The overall counts are the groups' sums: every incident is in exactly one group.
    """
    span = month_span(period, policy.tz)
    if span is None:
        return None
    first, after = span
    year = fiscal_year_of_span(first, after)
    key = group_by or ""

    async def delays(grouping: str) -> dict[str, Histogram]:
        if year is not None and severity is None and grouping in ("", "agency", "sector"):
            return await _year_delays(conn, q, objective, year, first, after, agency, sector, grouping)
        rows = await conn.fetch(q["rollup_delays"], first, after, objective, agency, sector, grouping, severity)
        return {r["key"]: (r["means"], r["counts"]) for r in rows}

    # The year's counts have no month: a fiscal year by month reads its months.
    counted_year = year if key != "month" else None
    facts = {
        r["key"]: {name: r[name] for name in FACTS}
        for r in await conn.fetch(
            q["rollup_counts"], first, after, objective, agency, sector, key, severity, counted_year
        )
    }
    running: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await conn.fetch(
        q["rollup_running"], period.start, period.end, objective, agency, sector, key, severity, policy.timezone, now
    ):
        running[r["key"]][r["state"]] = r["n"]
    overall_delays = (await delays("")).get("")
    grouped = await delays(key) if group_by else {}
    overall = _row("", _summed(facts.values()), _summed(running.values()), overall_delays)
    if not group_by:
        return overall, []
    groups = [
        _row(k, facts.get(k, {}), running.get(k, {}), grouped.get(k))
        for k in sorted(k for k in {*facts, *running} if k is not None)
    ]
    return overall, [g for g in groups if g["total"]]


# A histogram as read: the means of the buckets in use, in the buckets' order, and their counts.
Histogram = tuple[list[float], list[int]]


async def _year_delays(
    conn: asyncpg.Connection,
    q: Queries,
    objective: str,
    year: int,
    first: date,
    after: date,
    agency: str | None,
    sector: str | None,
    grouping: str,
) -> dict[str, Histogram]:
    """A fiscal year's histograms from its folded rows (one per agency, or the one of all agencies) and the deltas
    not yet folded; only the groups that have deltas are merged, bucket by bucket."""
    national = grouping == "" and agency is None and sector is None

    def wanted(code: str, its_sector: str | None) -> str | None:
        if not national and ((agency is not None and code != agency) or (sector is not None and its_sector != sector)):
            return None
        return {"": "", "agency": code, "sector": its_sector or ""}[grouping]

    parts: dict[str, list[tuple[Sequence[int], Sequence[int], Sequence[float], Sequence[float]]]] = defaultdict(list)
    for r in await conn.fetch(q["rollup_year_delays"], objective, year, national):
        group = "" if national else wanted(r["agency_code"], r["sector"])
        if group is not None:
            parts[group].append((r["buckets"], r["counts"], r["sums"], r["means"]))
    for r in await conn.fetch(q["rollup_delta_delays"], objective, first, after):
        group = "" if national else wanted(r["agency_code"], r["sector"])
        if group is not None:
            parts[group].append(([r["bucket"]], [r["n"]], [r["delay_sum"]], []))
    out: dict[str, Histogram] = {}
    for group, pieces in parts.items():
        if len(pieces) == 1 and pieces[0][3]:
            out[group] = (list(pieces[0][3]), list(pieces[0][1]))
            continue
        merged: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
        for buckets, counts, sums, _ in pieces:
            for bucket, n, total in zip(buckets, counts, sums, strict=True):
                merged[bucket][0] += n
                merged[bucket][1] += total
        used = [(bucket, int(n), total) for bucket, (n, total) in sorted(merged.items()) if n]
        out[group] = ([round(total / n, 6) for _, n, total in used], [n for _, n, _ in used])
    return out


def _row(key: str, facts: Mapping[str, int], running: Mapping[str, int], delays: Histogram | None) -> dict[str, Any]:
    values, counts = delays or ([], [])
    return {
        "key": key,
        **figures(facts, running),
        "delay_percentiles": quantiles(values, counts, QUANTILES),
        "delay_max": values[-1] if values else None,
    }


def quantiles(values: Sequence[float], counts: Sequence[int], fractions: Sequence[float]) -> list[float] | None:
    """percentile_cont(fractions) over ``counts[i]`` delays of ``values[i]`` each, values in ascending order."""
    total = sum(counts)
    if total == 0:
        return None
    ends = list(itertools.accumulate(counts))

    def at(rank: int) -> float:
        return values[bisect.bisect_right(ends, rank)]

    result = []
    for fraction in fractions:
        rank = fraction * (total - 1)
        below = math.floor(rank)
        low, high = at(below), at(min(below + 1, total - 1))
        result.append(low + (rank - below) * (high - low))
    return result


async def window_rows(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    year: Period,
    month: Period,
    now: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """Per objective, agency, severity and state: the incidents of the fiscal year and of the month, as
    (objective, {agency, sector, severity, state, fiscal_year, month})."""
    year_span, month_span_ = month_span(year, policy.tz), month_span(month, policy.tz)
    assert year_span is not None and month_span_ is not None
    fiscal_year = fiscal_year_of_span(*year_span)
    objectives = list(policy.objectives)
    fact_rows = await conn.fetch(q["rollup_window_counts"], fiscal_year, *month_span_, objectives)
    running_rows = await conn.fetch(q["rollup_window_running"], year.start, year.end, objectives, policy.timezone, now)
    current = month_span_[0]
    Cell = tuple[str, str, str]  # agency, sector, severity
    incident_facts: dict[tuple[Cell, bool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    clock_facts: dict[tuple[str, Cell, bool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    running: dict[tuple[str, Cell, bool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in fact_rows:
        cell, in_month = (r["agency"], r["sector"], r["severity"]), r["window"] == "month"
        target = (
            incident_facts[(cell, in_month)] if r["objective"] == "" else clock_facts[(r["objective"], cell, in_month)]
        )
        for name in FACTS:
            target[name] += r[name]
    for r in running_rows:
        cell = (r["agency"], r["sector"], r["severity"])
        for in_month in {False, r["month"] == current}:
            running[(r["objective"], cell, in_month)][r["state"]] += r["n"]
    out: list[tuple[str, dict[str, Any]]] = []
    cells = {cell for cell, _ in incident_facts} | {cell for _, cell, _ in (*clock_facts, *running)}
    for objective in objectives:
        for cell in sorted(cells):
            year_counts = _counts(incident_facts, clock_facts, running, objective, cell, False)
            month_counts = _counts(incident_facts, clock_facts, running, objective, cell, True)
            agency, sector, severity = cell
            for state in FIGURE_STATES:
                if year_counts[state] or month_counts[state]:
                    out.append(
                        (
                            objective,
                            {
                                "agency": agency,
                                "sector": sector,
                                "severity": severity,
                                "state": state,
                                "fiscal_year": year_counts[state],
                                "month": month_counts[state],
                            },
                        )
                    )
    return out


def _counts(
    incident_facts: Mapping[tuple[Any, bool], Mapping[str, int]],
    clock_facts: Mapping[tuple[str, Any, bool], Mapping[str, int]],
    running: Mapping[tuple[str, Any, bool], Mapping[str, int]],
    objective: str,
    cell: Any,
    in_month: bool,
) -> dict[str, int]:
    incident = incident_facts.get((cell, in_month), {})
    clock = clock_facts.get((objective, cell, in_month), {})
    facts = {name: incident.get(name, 0) + clock.get(name, 0) for name in FACTS}
    return figures(facts, running.get((objective, cell, in_month), {}))


async def decided_rows(
    conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime
) -> list[tuple[str, asyncpg.Record]]:
    """Every clock ever decided (met, or breached: stopped late or overdue), per objective, sector, severity and
    state; decisions only accumulate, so these counts behave as counters."""
    rows = await conn.fetch(q["rollup_decided_counts"], now, list(policy.objectives))
    return [(r["objective"], r) for r in rows]


async def delay_rows(
    conn: asyncpg.Connection, q: Queries, policy: Policy, bounds: Sequence[float]
) -> list[tuple[str, dict[str, Any]]]:
    """The cumulative histogram of every stopped clock's delay on the metrics' bounds, per objective and severity:
    (objective, {severity, le, cumulative, total_seconds})."""
    per: dict[tuple[str, str], dict[int, tuple[int, float]]] = defaultdict(dict)
    for r in await conn.fetch(q["rollup_delay_buckets"], list(policy.objectives)):
        per[(r["objective"], r["severity"])][r["le"]] = (r["n"], r["delay_sum"])
    out: list[tuple[str, dict[str, Any]]] = []
    for (objective, severity), counts in sorted(per.items()):
        total_seconds = sum(s for _, s in counts.values())
        cumulative = 0
        for index, bound in enumerate(bounds):
            cumulative += counts.get(index, (0, 0.0))[0]
            out.append(
                (
                    objective,
                    {"severity": severity, "le": bound, "cumulative": cumulative, "total_seconds": total_seconds},
                )
            )
    return out


async def compact(conn: asyncpg.Connection, q: Queries) -> int:
    """Fold the deltas written so far into the rollups; how many were folded."""
    folded: int = await conn.fetchval(q["rollup_compact"])
    return folded


async def follow_timezone(conn: asyncpg.Connection, q: Queries, policy: Policy) -> bool:
    """Rebuild the rollups when the policy's timezone moved the local days; whether it did."""
    async with conn.transaction():
        if await conn.fetchval(q["rollup_timezone"]) == policy.timezone:
            return False
        await conn.execute(q["rollup_set_timezone"], policy.timezone)
        await conn.execute(q["rollup_rebuild"])
    return True
