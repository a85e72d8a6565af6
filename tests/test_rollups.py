"""The rollups against a scan of every incident: random writes, corrections, exclusions, pauses, moves between
agencies and a policy change, folded at random moments, and then every period, grouping and objective compared."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from certmon.core.errors import Conflict, Invalid
from certmon.core.models import EventIn, IncidentIn
from certmon.core.periods import fiscal_quarter_period, fiscal_year_period, month_period, range_period
from certmon.core.policy import Policy
from certmon.store import compliance, incidents, rollups
from certmon.store.db import Queries
from certmon.telemetry.conventions import DELAY_BUCKETS

BKK = ZoneInfo("Asia/Bangkok")
AGENCIES = (("MOF", "banking-finance"), ("MOPH", "health"), ("MDES", "government"))
SEVERITIES = ("low", "medium", "high", "critical")
START = datetime(2021, 9, 20, tzinfo=BKK)  # ten days before FY2565, so clocks cross a fiscal year and months
SPAN_SECONDS = 80 * 86400
COUNTS = ("total", "met", "breached", "pending", "at_risk", "excluded", "no_clock", "paused")


async def _agencies(conn: asyncpg.Connection) -> None:
    for code, sector in AGENCIES:
        await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ($1, $1, $2)", code, sector)


def _at(rng: random.Random) -> datetime:
    # Whole minutes mostly, as people type them; some to the microsecond, as sensors send them.
    seconds = rng.randrange(SPAN_SECONDS)
    at = START + timedelta(seconds=seconds - seconds % 60 if rng.random() < 0.7 else seconds)
    return at + timedelta(microseconds=rng.randrange(1_000_000) if rng.random() < 0.2 else 0)


async def _create(conn: asyncpg.Connection, q: Queries, policy: Policy, rng: random.Random, n: int) -> int:
    detected = _at(rng)
    fields: dict[str, Any] = {
        "agency": rng.choice(AGENCIES)[0],
        "title": f"incident {n}",
        "severity": rng.choice(SEVERITIES),
        "category": "intrusions/application-compromise",
        "detected_at": detected,
    }
    at = detected
    for milestone in ("analysed", "notified", "acknowledged", "contained", "resolved"):
        if rng.random() < 0.6:
            at = at + timedelta(seconds=rng.choice((0, 60, 1800, 3599, 3600, 3601, 5400, rng.randrange(200000))))
            fields[f"{milestone}_at"] = at
    row, _, _ = await incidents.create(conn, q, policy, IncidentIn.model_validate(fields), "test")
    return int(row["id"])


async def _event(conn: asyncpg.Connection, q: Queries, policy: Policy, rng: random.Random, ids: list[int]) -> bool:
    incident_id = rng.choice(ids)
    kind = rng.choice(("notified", "acknowledged", "contained", "resolved", "reopened", "excluded", "included",
                       "paused", "resumed", "correction", "correction"))  # fmt: skip
    row = await incidents.get(conn, q, incident_id)
    after = row["detected_at"] + timedelta(seconds=rng.randrange(0, 100000))
    event: dict[str, Any] = {"type": kind, "at": after}
    if kind in ("excluded", "paused"):
        event["reason"] = "a reason"
    if kind == "correction":
        event |= {"milestone": rng.choice(("detected", "notified", "acknowledged", "contained")), "reason": "typo"}
        event["at"] = row["detected_at"] + timedelta(seconds=rng.randrange(-7200, 7200))
    try:
        await incidents.add_event(conn, q, policy, incident_id, EventIn.model_validate(event), "test", after)
    except (Conflict, Invalid):
        return False  # refused as a user's request would be: nothing was written
    return True


async def _move(conn: asyncpg.Connection, rng: random.Random, ids: list[int]) -> None:
    """An operator's fix in SQL: the rollups follow any write, not only certmon's own."""
    await conn.execute(
        "UPDATE incidents SET agency_code = $2, severity = $3 WHERE id = $1",
        rng.choice(ids),
        rng.choice(AGENCIES)[0],
        rng.choice(SEVERITIES),
    )


def _close(rolled: float | None, scanned: float | None) -> bool:
    if rolled is None or scanned is None:
        return rolled is scanned
    bound = max(rollups.RELATIVE_ERROR * abs(scanned), rollups.ABSOLUTE_ERROR_BELOW_MILLISECOND)
    return abs(rolled - scanned) <= bound * (1 + 1e-9)


def _compare(rolled: dict[str, Any], scanned: dict[str, Any], where: str) -> None:
    assert {k: rolled[k] for k in COUNTS} == {k: scanned[k] for k in COUNTS}, where
    for name, value in scanned["latency_seconds"].items():
        assert _close(rolled["latency_seconds"][name], value), (where, name, rolled["latency_seconds"], value)


async def _check_reports(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> int:
    periods = [
        month_period(2021, 9, BKK),
        month_period(2021, 10, BKK),
        month_period(2021, 12, BKK),
        fiscal_quarter_period(2565, 1, BKK),
        fiscal_year_period(2565, BKK),
        fiscal_year_period(2564, BKK),
    ]
    compared = 0
    for objective in policy.objectives:
        for period in periods:
            for group_by in (None, "agency", "sector", "severity", "month"):
                kw: dict[str, Any] = {"objective": objective, "group_by": group_by}
                rolled = await compliance.report(conn, q, policy, period, now, **kw)
                scanned = await compliance.report(conn, q, policy, period, now, exact=True, **kw)
                where = f"{objective} {period.label} {group_by}"
                _compare(rolled, scanned, where)
                assert [g["key"] for g in rolled["groups"]] == [g["key"] for g in scanned["groups"]], where
                for mine, theirs in zip(rolled["groups"], scanned["groups"], strict=True):
                    _compare(mine, theirs, f"{where} {theirs['key']}")
                compared += 1
        filtered = {"agency": "MOF", "severity": "high", "sector": "banking-finance"}
        for name, value in filtered.items():
            period = fiscal_year_period(2565, BKK)
            rolled = await compliance.report(conn, q, policy, period, now, objective=objective, **{name: value})
            scanned = await compliance.report(
                conn, q, policy, period, now, objective=objective, exact=True, **{name: value}
            )
            _compare(rolled, scanned, f"{objective} {name}={value}")
    return compared


SCAN_DECIDED = """
SELECT c.objective, a.sector, i.severity,
       certmon_sla_state(i.excluded, c.clock_start, c.at_risk_at, c.due_at, c.stopped_at, $1) AS state,
       count(*) AS n
FROM incident_clocks c JOIN incidents i ON i.id = c.incident_id JOIN agencies a ON a.code = i.agency_code
WHERE NOT i.excluded AND c.clock_start IS NOT NULL AND (c.stopped_at IS NOT NULL OR c.due_at < $1)
GROUP BY 1, 2, 3, 4
"""
SCAN_DELAYS = """
SELECT c.objective, i.severity, le, count(*) FILTER (WHERE c.delay_seconds <= le) AS cumulative,
       sum(c.delay_seconds) AS total_seconds
FROM incident_clocks c JOIN incidents i ON i.id = c.incident_id CROSS JOIN unnest($1::float8[]) AS le
WHERE c.delay_seconds IS NOT NULL AND c.clock_start IS NOT NULL AND NOT i.excluded
GROUP BY 1, 2, 3
"""


async def _check_metrics(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> None:
    decided = {
        (o, r["sector"], r["severity"], r["state"]): r["n"] for o, r in await rollups.decided_rows(conn, q, policy, now)
    }
    scanned = {
        (r["objective"], r["sector"], r["severity"], r["state"]): r["n"] for r in await conn.fetch(SCAN_DECIDED, now)
    }
    assert decided == scanned
    bounds = [*DELAY_BUCKETS, math.inf]
    delays = {(o, r["severity"], r["le"]): r for o, r in await rollups.delay_rows(conn, q, policy, bounds)}
    scanned_delays = {(r["objective"], r["severity"], r["le"]): r for r in await conn.fetch(SCAN_DELAYS, bounds)}
    assert delays.keys() == scanned_delays.keys()
    for key, r in scanned_delays.items():
        assert delays[key]["cumulative"] == r["cumulative"], key
        assert delays[key]["total_seconds"] == pytest.approx(r["total_seconds"], rel=1e-9, abs=1e-6), key


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_rollups_equal_a_scan_after_random_writes_and_a_policy_change(
    conn: asyncpg.Connection, policy: Policy, seed: int
) -> None:
    rng = random.Random(seed)
    q = Queries.load()
    await _agencies(conn)
    ids: list[int] = []
    accepted = 0
    for step in range(160):
        roll = rng.random()
        if roll < 0.45 or not ids:
            ids.append(await _create(conn, q, policy, rng, step))
        elif roll < 0.9:
            accepted += await _event(conn, q, policy, rng, ids)
        elif roll < 0.95:
            await _move(conn, rng, ids)
        else:
            await rollups.compact(conn, q)
    assert accepted >= 20
    middle = START + timedelta(days=40)  # clocks still running, at risk and overdue
    later = START + timedelta(days=200)
    assert await _check_reports(conn, q, policy, middle) > 0
    await _check_metrics(conn, q, policy, middle)

    # Another target for the one-hour clock: every stored clock is recomputed, and the rollups follow.
    data = policy.model_dump()
    kpi = {**data["objectives"][policy.kpi_name], "target_seconds": 1800, "severities": {}}
    changed = Policy.model_validate({**data, "objectives": {**data["objectives"], policy.kpi_name: kpi}})
    assert changed.clock_fingerprint() != policy.clock_fingerprint()
    assert await incidents.recompute_stale(conn, q, changed, batch=37) == len(ids)
    await _check_reports(conn, q, changed, later)
    await rollups.compact(conn, q)
    await _check_reports(conn, q, changed, later)
    await _check_metrics(conn, q, changed, later)
    assert await conn.fetchval("SELECT count(*) FROM sla_rollup_delta") == 0


async def test_a_period_that_is_not_whole_months_is_read_from_a_scan(conn: asyncpg.Connection, policy: Policy) -> None:
    q = Queries.load()
    await _agencies(conn)
    rng = random.Random(7)
    for n in range(40):
        await _create(conn, q, policy, rng, n)
    period = range_period(datetime(2021, 10, 3).date(), datetime(2021, 11, 17).date(), BKK)
    assert rollups.month_span(period, BKK) is None
    now = START + timedelta(days=100)
    rolled = await compliance.report(conn, q, policy, period, now, group_by="agency")
    scanned = await compliance.report(conn, q, policy, period, now, group_by="agency", exact=True)
    assert rolled == scanned


async def test_rebuilding_gives_back_what_the_triggers_kept(conn: asyncpg.Connection, policy: Policy) -> None:
    q = Queries.load()
    await _agencies(conn)
    rng = random.Random(11)
    ids = [await _create(conn, q, policy, rng, n) for n in range(60)]
    for _ in range(60):
        await _event(conn, q, policy, rng, ids)
    await rollups.compact(conn, q)
    kept = await _tables(conn)
    assert kept["sla_rollup_month"]
    await conn.execute(q["rollup_rebuild"])
    assert await _tables(conn) == kept


async def _tables(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    # Sums of seconds kept by adding and subtracting agree with a fresh sum to far better than a millisecond.
    tables = ("sla_rollup_month", "sla_delay_month", "sla_rollup_total", "sla_delay_total")
    return {
        t: sorted(
            tuple(round(v, 3) if isinstance(v, float) else v for v in r) for r in await conn.fetch(f"SELECT * FROM {t}")
        )
        for t in tables
    }


async def test_delay_quantiles_are_within_one_percent_of_percentile_cont(
    conn: asyncpg.Connection, policy: Policy
) -> None:
    """Many delays, spread over every scale the buckets have, against percentile_cont over the same delays."""
    q = Queries.load()
    await _agencies(conn)
    rng = random.Random(5)
    for n in range(400):
        detected = START + timedelta(days=12, minutes=n)
        delay = rng.choice((0.0, 0.0004, rng.uniform(0, 10), rng.uniform(0, 400000), 3600.0, rng.uniform(1, 7200)))
        fields = {
            "agency": AGENCIES[n % 3][0],
            "title": f"incident {n}",
            "severity": SEVERITIES[n % 4],
            "category": "intrusions/application-compromise",
            "detected_at": detected,
            "notified_at": detected + timedelta(seconds=delay),
        }
        await incidents.create(conn, q, policy, IncidentIn.model_validate(fields), "test")
    now = START + timedelta(days=100)
    for period in (month_period(2021, 10, BKK), fiscal_year_period(2565, BKK)):
        for group_by in (None, "agency", "severity"):
            rolled = await compliance.report(conn, q, policy, period, now, group_by=group_by)
            scanned = await compliance.report(conn, q, policy, period, now, group_by=group_by, exact=True)
            assert scanned["met"] + scanned["breached"] > 100
            for mine, theirs in zip([rolled, *rolled["groups"]], [scanned, *scanned["groups"]], strict=True):
                _compare(mine, theirs, f"{period.label} {group_by} {theirs.get('key')}")


async def test_the_database_buckets_delays_on_the_fine_and_the_metrics_bounds(conn: asyncpg.Connection) -> None:
    samples = [0.0, 1e-5, 0.001, 0.0015, 1.0, 59.999, 60.0, 3600.0, 3600.000001, 86400.0, 1e8]
    got = await conn.fetch(
        "SELECT d, certmon_delay_bucket(d) AS b, certmon_delay_le(d) AS le FROM unnest($1::float8[]) AS d", samples
    )
    bounds = [*DELAY_BUCKETS, math.inf]
    for r in got:
        assert r["d"] <= bounds[r["le"]]
        assert r["le"] == 0 or r["d"] > bounds[r["le"] - 1]
        if r["d"] >= 0.001:  # within the bucket's edges
            low = 0.001 * 1.01 ** (r["b"] - 2)
            assert low * (1 - 1e-12) <= r["d"] < low * 1.01 * (1 + 1e-12)


async def test_start_up_rebuilds_the_rollups_when_local_days_moved(conn: asyncpg.Connection, policy: Policy) -> None:
    """Rollups counted in another timezone (an earlier policy's) are rebuilt in the policy's own, once."""
    q = Queries.load()
    await _agencies(conn)
    await conn.execute("UPDATE sla_rollup_settings SET timezone = 'UTC'")
    await conn.execute(q["rollup_rebuild"])
    rng = random.Random(13)
    for n in range(60):
        await _create(conn, q, policy, rng, n)
    # 2021-10-01 00:30 in Bangkok is still September in UTC: the two counts of October differ.
    fields = {
        "agency": "MOF",
        "title": "just after midnight",
        "severity": "high",
        "category": "intrusions/application-compromise",
        "detected_at": datetime(2021, 10, 1, 0, 30, tzinfo=BKK),
        "notified_at": datetime(2021, 10, 1, 0, 50, tzinfo=BKK),
    }
    await incidents.create(conn, q, policy, IncidentIn.model_validate(fields), "test")
    october = month_period(2021, 10, BKK)
    now = START + timedelta(days=100)
    assert await rollups.follow_timezone(conn, q, policy)
    assert not await rollups.follow_timezone(conn, q, policy)
    rolled = await compliance.report(conn, q, policy, october, now, group_by="agency")
    scanned = await compliance.report(conn, q, policy, october, now, group_by="agency", exact=True)
    _compare(rolled, scanned, "after the rebuild")
