"""Ten years of a national CERT's incidents, and what the figures people read cost as that history grows.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python tests/benchmarks/history.py --sizes 200000,2000000 [--policy-change]

One scratch database grows through each size in turn: 250 agencies, incidents spread over the fiscal years FY2560
to FY2569 (October 2016 to September 2026), each with its four objectives' clock rows, written in statements of
500,000 rows through the same triggers that keep the rollups for the API (the audit trail's triggers are off while
history loads, as in a restore). At each size the run measures, against the raw limit in the same run:

* ``GET /api/v1/sla?period=FY2569&group_by=agency`` on a real ``certmon serve``, against a naive GROUP BY over the
  same year's incidents (the one table, no clock rows joined: the cheapest scan there is), and checks that every
  agency's counts are equal to it and its p50 within the rollups' 1 %;
* one refresh of the metrics snapshot (every part the service runs, in one read), whose interval is 15 s;
* with --policy-change, after the largest size: a start of ``certmon serve`` under a policy whose KPI target differs,
  so every stored clock is stale: seconds until /readyz answers, and the rate of the recompute going on behind it
  (from its gauge, over 30 s once start-up is 10 s behind).

The clocks are written in SQL, not by certmon's clock code: the 24x7 objectives exactly, the business-hours objective
as if its calendar were 24x7. What the reports cost depends on how many rows there are, not on their values.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from scratch import RECOMPUTE_REMAINING, free_port, scratch_database, serve_environment, until_ready

from certmon import wiring
from certmon.cli import logs
from certmon.core.clocks import Clocks
from certmon.core.policy import DEFAULT_POLICY_PATH, load_policy
from certmon.store import db, migrations
from certmon.store.tokens import create_token
from certmon.telemetry.snapshot import Snapshot

AGENCIES = 250
BATCH = 500_000
# Thai fiscal years FY2560 (from 1 October 2016) to FY2569 (to 30 September 2026), Bangkok time.
START = datetime.fromisoformat("2016-09-30T17:00:00+00:00")
SPAN_SECONDS = int((datetime.fromisoformat("2026-09-30T17:00:00+00:00") - START).total_seconds())
FY_START = datetime.fromisoformat("2025-09-30T17:00:00+00:00")
FY_END = datetime.fromisoformat("2026-09-30T17:00:00+00:00")
# Every 20,000th incident is never notified: its clocks stay open, as a desk's few overdue ones do.
OPEN_EVERY = 20_000
RATE_SECONDS = 30

# u(k): the k-th pseudo-random fraction in [0, 1) of incident n, the same whatever the size it is written at.
U = "((({n} * {m}::bigint + {a}) % 1000003) / 1000003.0)"


def u(k: int, n: str = "n") -> str:
    multipliers = (7919, 104729, 1299709, 15485863, 32452843, 49979687)
    return U.format(n=n, m=multipliers[k], a=k * 7777)


INCIDENTS = f"""
INSERT INTO incidents (id, agency_code, title, severity, category, source, external_id, detected_at,
    notified_at, acknowledged_at, contained_at, resolved_at, excluded, exclusion_reason,
    clock_start, at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by, created_at, updated_at)
SELECT n, agency_code, 'Alert ' || n, severity, category, 'history', n::text, detected_at,
       notified_at, notified_at + ack, notified_at + contain, notified_at + contain + interval '1 day',
       excluded, CASE WHEN excluded THEN 'duplicate report' END,
       detected_at, detected_at + interval '45 minutes', detected_at + interval '1 hour', notified_at,
       extract(epoch FROM notified_at - detected_at), $3, 'history', detected_at, detected_at
FROM (
    SELECT n,
           'A' || lpad((1 + floor({AGENCIES} * {u(0)} * {u(0)}))::int::text, 3, '0') AS agency_code,
           CASE WHEN {u(1)} < 0.05 THEN 'critical' WHEN {u(1)} < 0.25 THEN 'high'
                WHEN {u(1)} < 0.75 THEN 'medium' ELSE 'low' END AS severity,
           (ARRAY['malicious-code/c2-server', 'fraud/phishing', 'availability/ddos',
                  'intrusion-attempts/exploit'])[1 + (n % 4)] AS category,
           timestamptz '{START.isoformat()}' + floor({u(2)} * {SPAN_SECONDS}) * interval '1 second' AS detected_at,
           CASE WHEN n % {OPEN_EVERY} = 0 THEN NULL
                ELSE timestamptz '{START.isoformat()}' + floor({u(2)} * {SPAN_SECONDS}) * interval '1 second'
                     + CASE WHEN {u(3)} < 0.04 THEN 3600 + floor({u(4)} * 7200)
                            ELSE 120 + floor({u(4)} * 3300) END * interval '1 second' END AS notified_at,
           CASE WHEN {u(5)} < 0.1 THEN 3600 + floor({u(4)} * 3600) ELSE 60 + floor({u(3)} * 3000) END
               * interval '1 second' AS ack,
           (1800 + floor({u(5)} * 40000)) * interval '1 second' AS contain,
           {u(3)} > 0.99 AS excluded
    FROM generate_series($1::bigint, $2::bigint) AS n
) AS g
"""

CLOCKS = """
INSERT INTO incident_clocks (incident_id, objective, clock_start, at_risk_at, due_at, stopped_at, delay_seconds)
SELECT i.id, o.objective, s.start, s.start + o.target * 0.75 * interval '1 second',
       s.start + o.target * interval '1 second', s.stop, extract(epoch FROM s.stop - s.start)
FROM incidents i
CROSS JOIN LATERAL (VALUES
    ('notify', 3600),
    ('acknowledge', 3600),
    ('contain', CASE i.severity WHEN 'critical' THEN 14400 WHEN 'high' THEN 28800 WHEN 'low' THEN 259200
                                ELSE 86400 END),
    ('coordinate', 21600)
) AS o (objective, target)
CROSS JOIN LATERAL (SELECT
    CASE WHEN o.objective IN ('notify', 'coordinate') THEN i.detected_at ELSE i.notified_at END AS start,
    CASE o.objective WHEN 'acknowledge' THEN i.acknowledged_at WHEN 'contain' THEN i.contained_at
                     ELSE i.notified_at END AS stop
) AS s
WHERE i.id BETWEEN $1 AND $2
"""

# The naive reading of a fiscal year by agency: one scan of its incidents, their KPI clock on the row itself.
NAIVE = """
SELECT agency_code,
       count(*) FILTER (WHERE NOT excluded AND stopped_at <= due_at) AS met,
       -- an open clock past its due time has breached already
       count(*) FILTER (WHERE NOT excluded AND (stopped_at > due_at OR stopped_at IS NULL AND due_at <= now()))
           AS breached,
       count(*) FILTER (WHERE excluded) AS excluded,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY delay_seconds)
           FILTER (WHERE NOT excluded AND stopped_at IS NOT NULL) AS p50
FROM incidents
WHERE coalesce(clock_start, detected_at) >= $1 AND coalesce(clock_start, detected_at) < $2
GROUP BY agency_code
"""


async def grow(conn: asyncpg.Connection, have: int, size: int, fingerprint: str) -> None:
    """Incidents have+1 to size, with their clock rows, in statements of BATCH; then folded and analysed."""
    await conn.execute("ALTER TABLE incidents DISABLE TRIGGER incidents_audit_insert")
    await conn.execute("ALTER TABLE incident_clocks DISABLE TRIGGER incident_clocks_audit_insert")
    try:
        for first in range(have + 1, size + 1, BATCH):
            last = min(first + BATCH - 1, size)
            async with conn.transaction():
                await conn.execute(INCIDENTS, first, last, fingerprint)
                await conn.execute(CLOCKS, first, last)
            await conn.execute("SELECT certmon_rollup_compact()")
    finally:
        await conn.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_audit_insert")
        await conn.execute("ALTER TABLE incident_clocks ENABLE TRIGGER incident_clocks_audit_insert")
    await conn.execute("SELECT setval(pg_get_serial_sequence('incidents', 'id'), $1)", size)
    await conn.execute("VACUUM ANALYZE incidents")
    await conn.execute("VACUUM ANALYZE incident_clocks")
    await conn.execute("VACUUM ANALYZE sla_rollup_delta")


async def prepare(conn: asyncpg.Connection) -> str:
    await migrations.migrate(conn)
    await conn.execute("SELECT set_config('certmon.actor', 'benchmark', false)")
    await conn.execute(
        "INSERT INTO agencies (code, name, sector) SELECT 'A' || lpad(k::text, 3, '0'), 'Agency ' || k, 'government'"
        " FROM generate_series(1, $1) AS k",
        AGENCIES,
    )
    return await create_token(conn, db.Queries.load(), "history", "admin", None)


def environment(url: str, port: int, policy: Path | None = None) -> dict[str, str]:
    changed = {} if policy is None else {"POLICY": str(policy)}
    return serve_environment(url, port, LOG_LEVEL="warning", **changed)


async def report_by_agency(url: str, token: str, runs: int) -> tuple[list[float], dict[str, Any]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "certmon", "serve", env=environment(url, port))
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as session:
            await until_ready(session, base, process)
            times, answer = [], {}
            for k in range(runs + 3):  # three to warm the connections and their plans
                started = time.perf_counter()
                async with session.get(
                    f"{base}/api/v1/sla", params={"period": "FY2569", "group_by": "agency"}, headers=headers
                ) as response:
                    answer = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"GET /api/v1/sla: {response.status} {answer}")
                if k >= 3:
                    times.append(time.perf_counter() - started)
            return times, answer
    finally:
        process.terminate()
        await process.wait()


async def naive(conn: asyncpg.Connection, runs: int) -> tuple[list[float], list[asyncpg.Record]]:
    rows = await conn.fetch(NAIVE, FY_START, FY_END)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = await conn.fetch(NAIVE, FY_START, FY_END)
        times.append(time.perf_counter() - started)
    return times, rows


def compare(answer: dict[str, Any], rows: list[asyncpg.Record]) -> tuple[int, float]:
    """Agencies whose counts differ from the naive scan's, and the largest relative p50 difference."""
    scanned = {r["agency_code"]: r for r in rows}
    groups = {g["key"]: g for g in answer["groups"]}
    differing, worst = 0, 0.0
    for code in scanned.keys() | groups.keys():
        mine, theirs = groups.get(code), scanned.get(code)
        if mine is None or theirs is None or any(mine[k] != theirs[k] for k in ("met", "breached", "excluded")):
            differing += 1
            continue
        p50 = mine["latency_seconds"]["p50"]
        if theirs["p50"] is not None:
            worst = max(worst, abs(p50 - theirs["p50"]) / theirs["p50"])
    return differing, worst


async def snapshot_refresh(url: str, runs: int) -> list[float]:
    """Seconds of each build of the service's metrics snapshot, every part in one read, as its job runs it."""
    pool = await db.create_pool(url, max_size=2)
    policy, queries = load_policy(None), db.Queries.load()
    snapshot = Snapshot(wiring.snapshot_parts())
    now = datetime(2026, 10, 1, 9, tzinfo=UTC)
    times = []
    try:
        for k in range(runs + 1):
            started = time.perf_counter()
            async with db.connection(pool, 60) as conn:
                failed = await snapshot.build(conn, queries, policy, now)
            if failed:
                raise RuntimeError(f"snapshot parts failed: {failed}")
            if k:
                times.append(time.perf_counter() - started)
    finally:
        await pool.close()
    return times


async def policy_change(url: str) -> None:
    """A start under a policy whose KPI target is 50 minutes: every stored clock is stale."""
    with tempfile.TemporaryDirectory() as directory:
        changed = Path(directory) / "policy.toml"
        source = DEFAULT_POLICY_PATH.read_text()
        changed.write_text(source.replace("target_seconds = 3600", "target_seconds = 3000", 1))
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "certmon", "serve", env=environment(url, port, changed)
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                seconds = await until_ready(session, base, process)
                # The rate between two readings of the gauge, once the start-up's own count is behind.
                await asyncio.sleep(10)
                first, at = await remaining(session, base), time.perf_counter()
                await asyncio.sleep(RATE_SECONDS)
                second = await remaining(session, base)
                rate = (first - second) / (time.perf_counter() - at)
        finally:
            process.terminate()
            await process.wait()
    print(
        f"after a policy change: /readyz after {seconds:.2f} s; then {rate:,.0f} incidents recomputed a second,"
        f" {second:,.0f} still to go"
    )


async def remaining(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        found = RECOMPUTE_REMAINING.search(await response.text())
    if found is None:
        raise RuntimeError("/metrics has no certmon_recompute_remaining")
    return float(found.group(1))


def ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:8.1f} ms   best {min(times) * 1000:8.1f} ms"


async def main(sizes: list[int], runs: int, with_policy_change: bool) -> int:
    logs.configure("console", "warning")
    fingerprint = Clocks.of(load_policy(None)).fingerprint
    medians: list[float] = []
    async with scratch_database() as url:
        conn = await asyncpg.connect(url, command_timeout=None)
        try:
            token = await prepare(conn)
            have = 0
            for size in sizes:
                started = time.perf_counter()
                await grow(conn, have, size, fingerprint)
                have = size
                in_year = await conn.fetchval(
                    "SELECT count(*) FROM incidents WHERE coalesce(clock_start, detected_at) >= $1"
                    " AND coalesce(clock_start, detected_at) < $2",
                    FY_START,
                    FY_END,
                )
                print(f"{size:,} incidents ({in_year:,} in FY2569), written in {time.perf_counter() - started:.0f} s")
                mine, answer = await report_by_agency(url, token, runs)
                theirs, rows = await naive(conn, runs)
                differing, worst = compare(answer, rows)
                medians.append(statistics.median(mine))
                print(f"  FY2569 by agency, certmon : {ms(mine)}")
                print(f"  naive GROUP BY            : {ms(theirs)}")
                print(
                    f"  naive / certmon           : {statistics.median(theirs) / statistics.median(mine):8.1f}x"
                    f"   agencies differing {differing} of {len(rows)}, p50 within {worst:.3%}"
                )
                print(f"  metrics snapshot refresh  : {ms(await snapshot_refresh(url, runs))}")
            if len(medians) > 1:
                print(f"FY2569 by agency from {sizes[0]:,} to {sizes[-1]:,}: x{medians[-1] / medians[0]:.2f}")
            if with_policy_change:
                await policy_change(url)
        finally:
            await conn.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200000,2000000", help="incident counts to grow through, ascending")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--policy-change", action="store_true")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    if sizes != sorted(sizes):
        parser.error("--sizes must be ascending")
    sys.exit(asyncio.run(main(sizes, args.runs, args.policy_change)))
