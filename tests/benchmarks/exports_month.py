"""Monthly export cost: certmon's export of one month against the raw limit, in one run on one machine.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python tests/benchmarks/exports_month.py --incidents 3000 --incidents 30000

For each size, one month of incidents of 250 agencies is written straight into a scratch database (10 % notified
late, 1 % excluded). The raw limit is ``COPY (SELECT ... the month's incidents) TO STDOUT WITH CSV``, the least any
export of the incident list must do. certmon is timed for collecting the figures and incident list, rendering CSV
and JSON, rendering XLSX, rendering report.pdf, and the whole stored, signed revision; then for a re-run that finds
the data unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scratch import scratch_database, timings  # noqa: E402

from certmon.core import export_content, signing  # noqa: E402
from certmon.core.periods import month_period  # noqa: E402
from certmon.core.policy import Policy  # noqa: E402
from certmon.core.reports import monthly  # noqa: E402
from certmon.core.tables import to_csv, to_json, to_xlsx  # noqa: E402
from certmon.store import db, exports, migrations  # noqa: E402

AGENCIES = 250
FILL = """
INSERT INTO incidents (agency_code, title, severity, category, source, external_id, detected_at, notified_at,
                       excluded, exclusion_reason, clock_start, at_risk_at, due_at, stopped_at, delay_seconds,
                       policy_hash, created_by)
SELECT 'A' || lpad((n % $4)::text, 3, '0'), 'Alert ' || n, (ARRAY['critical','high','medium','low'])[1 + n % 4],
       'malicious-code/c2-server', 'bench', n::text, d, d + delay,
       n % 100 = 0, CASE WHEN n % 100 = 0 THEN 'false positive' END,
       d, d + interval '45 minutes', d + interval '1 hour', d + delay, extract(epoch FROM delay), $3, 'bench'
FROM generate_series(1, $1) AS n,
     LATERAL (SELECT $2::timestamptz + (n * (30 * 86400.0 / $1)) * interval '1 second' AS d,
                     CASE WHEN n % 10 = 0 THEN interval '95 minutes'
                          ELSE (n % 50 + 5) * interval '1 minute' END AS delay) AS x
"""
RAW = """
SELECT id, agency_code, severity, category, detected_at, analysed_at, notified_at, acknowledged_at, contained_at,
       resolved_at, clock_start, due_at, stopped_at, delay_seconds, exclusion_reason
FROM incidents
WHERE coalesce(clock_start, detected_at) >= $1 AND coalesce(clock_start, detected_at) < $2
ORDER BY id
"""


async def best_of(runs: int, work: Callable[[], Awaitable[Any]]) -> float:
    return min(await timings(runs, work))


async def measure(url: str, size: int, key_dir: Path) -> None:
    policy = Policy()
    q = db.Queries.load()
    month = month_period(2021, 8, ZoneInfo(policy.timezone))
    conn = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        await conn.execute("TRUNCATE incidents, incident_events, agencies CASCADE")
        await conn.executemany(
            "INSERT INTO agencies (code, name, name_th, sector) VALUES ($1, $2, $3, 'government')",
            [(f"A{i:03d}", f"Agency {i}", f"หน่วยงาน {i}") for i in range(AGENCIES)],
        )
        await conn.execute(FILL, size, month.start, policy.fingerprint(), AGENCIES)
        await conn.execute("ANALYZE incidents")
        key = signing.load_or_create_key(key_dir / "key.pem")

        async def raw() -> None:
            await conn.copy_from_query(RAW, month.start, month.end, output=io.BytesIO(), format="csv", header=True)

        content: dict[str, Any] = {}

        async def collect() -> None:
            content.update(await exports.collect(conn, q, policy, month))

        async def csv_json() -> None:
            for table in export_content.tables(content):
                to_csv(table)
            to_json(content)

        async def xlsx() -> None:
            to_xlsx(export_content.tables(content), datetime(2021, 9, 1), "bench")

        async def report_pdf() -> None:
            monthly.render(content)

        now = datetime(2021, 9, 4, 9, 0, tzinfo=ZoneInfo(policy.timezone))  # after the evaluation instant

        async def whole() -> None:
            await conn.execute("ALTER TABLE exports DISABLE TRIGGER exports_immutable")
            await conn.execute("ALTER TABLE export_files DISABLE TRIGGER export_files_immutable")
            await conn.execute("TRUNCATE exports, export_files")
            await exports.export_month(conn, q, policy, key, month, now, "bench")

        async def unchanged() -> None:
            await exports.export_month(conn, q, policy, key, month, now, "bench")

        raw_s = await best_of(5, raw)
        results = {
            "collect (queries)": await best_of(3, collect),
            "render CSV + JSON": await best_of(3, csv_json),
            "render XLSX": await best_of(3, xlsx),
            "render report.pdf": await best_of(3, report_pdf),
            "whole revision (stored, signed)": await best_of(3, whole),
            "re-run, data unchanged": await best_of(3, unchanged),
        }
        print(f"\n{size} incidents in 2021-08 - raw COPY of the incident list: {raw_s * 1000:.1f} ms")
        for name, seconds in results.items():
            print(f"  {name:<34} {seconds * 1000:9.1f} ms  {seconds / raw_s:6.1f}x raw")
    finally:
        await conn.close()


async def main(sizes: list[int]) -> None:
    async with scratch_database() as url:
        with tempfile.TemporaryDirectory() as key_dir:
            for size in sizes:
                await measure(url, size, Path(key_dir))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, action="append", help="incidents in the month (repeatable)")
    args = parser.parse_args()
    asyncio.run(main(args.incidents or [3000, 30000]))
