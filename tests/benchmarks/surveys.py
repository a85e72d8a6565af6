"""Survey import and summaries: certmon against the raw limit, in one run on one machine.

    python tests/benchmarks/surveys.py [--responses 50000]

CSV import (read, validate, COPY, account for every row) is compared with a raw asyncpg COPY of the same rows;
each summary with the bare aggregate query over the same responses. Uses CERTMON_TEST_DATABASE_URL's server (or an
embedded one) in a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scratch import scratch_database, timings  # noqa: E402

from certmon.cli.surveys import import_csv  # noqa: E402
from certmon.core.periods import parse_period  # noqa: E402
from certmon.core.policy import Policy  # noqa: E402
from certmon.store import db, migrations, surveys  # noqa: E402

SERVICE = "security-services"
AGENCIES = 250
RAW_TOTALS = """
SELECT count(*), sum(answer_count), sum(score_sum), sum(top2_count)
FROM survey_responses WHERE submitted_at >= $1 AND submitted_at < $2
"""
RAW_AGENCIES = """
SELECT agency_code, count(*), sum(answer_count), sum(score_sum), sum(top2_count)
FROM survey_responses WHERE submitted_at >= $1 AND submitted_at < $2
GROUP BY 1
"""
RAW_QUESTIONS = """
SELECT a.key, count(*), sum(a.value::integer)
FROM survey_responses r CROSS JOIN LATERAL jsonb_each_text(r.answers) AS a
WHERE r.submitted_at >= $1 AND r.submitted_at < $2
GROUP BY 1
"""


def write_csv(path: Path, n: int, policy: Policy) -> None:
    rng = random.Random(2564)
    questions = policy.surveys.services[SERVICE].question_ids()
    start = parse_period("FY2564", policy.tz).start
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submitted_at", "agency", *questions, "comment"])
        for i in range(n):
            at = start + timedelta(seconds=rng.uniform(0, 365 * 86400))
            scores = [min(5, max(1, round(rng.gauss(4.3, 0.7)))) for _ in questions]
            writer.writerow([at.isoformat(), f"A{i % AGENCIES:03d}", *scores, "ok" if i % 7 else ""])


async def best_of(runs: int, work: Callable[[], Awaitable[Any]]) -> float:
    times = await timings(runs, work)
    return min(times) if runs < 3 else statistics.median(times)


async def main(responses: int) -> None:
    policy = Policy()
    q = db.Queries.load()
    fy = parse_period("FY2564", policy.tz)
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await migrations.migrate(conn)
            await conn.executemany(
                "INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')",
                [(f"A{i:03d}",) for i in range(AGENCIES)],
            )
            # One incident per agency and day, every 20th late, so that sla_outcome has breaches to find.
            await conn.execute(
                """
                INSERT INTO incidents (agency_code, title, severity, category, detected_at, notified_at, clock_start,
                                       at_risk_at, due_at, stopped_at, delay_seconds, policy_hash, created_by)
                SELECT 'A' || lpad((n % $3)::text, 3, '0'), 'bench', 'high', 'fraud/phishing', t, t + d, t,
                       t + interval '45 minutes', t + interval '1 hour', t + d, extract(epoch FROM d), 'bench', 'bench'
                FROM generate_series(0, $3 * 365 - 1) AS n,
                     LATERAL (SELECT $1::timestamptz + n * ($2::interval / ($3 * 365)) AS t,
                                     CASE WHEN n % 20 = 0 THEN interval '2 hours' ELSE interval '20 minutes' END AS d) x
                """,
                fy.start,
                timedelta(days=365),
                AGENCIES,
            )
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.csv"
                write_csv(path, responses, policy)
                quiet = Console(file=io.StringIO())
                started = time.perf_counter()
                result = await import_csv(conn, q, policy, path, SERVICE, console=quiet)
                imported = time.perf_counter() - started
                assert result.outcome.accepted == responses, result.outcome.rejected[:3]
                rows = [
                    (f"raw-{r['external_id']}", *list(r.values())[1:])
                    for r in await conn.fetch(
                        "SELECT external_id, service, agency_code, submitted_at, answers, answer_count, score_sum,"
                        " top2_count, comment, channel, body_hash, created_by FROM survey_responses"
                    )
                ]
                columns = (
                    "external_id", "service", "agency_code", "submitted_at", "answers", "answer_count", "score_sum",
                    "top2_count", "comment", "channel", "body_hash", "created_by",
                )  # fmt: skip
                started = time.perf_counter()
                await conn.copy_records_to_table("survey_responses", records=rows, columns=columns)
                raw_copy = time.perf_counter() - started
                await conn.execute("DELETE FROM survey_responses WHERE external_id LIKE 'raw-%'")
                await conn.execute("VACUUM ANALYZE survey_responses")
            print(f"{responses} responses, {AGENCIES} agencies, {AGENCIES * 365} incidents")
            print(
                f"csv import   {responses / imported:>10,.0f} rows/s   raw COPY {responses / raw_copy:>10,.0f} rows/s"
                f"   ratio {raw_copy / imported:.2f}"
            )
            raw = await best_of(5, lambda: conn.fetch(RAW_TOTALS, fy.start, fy.end))
            raw_a = await best_of(5, lambda: conn.fetch(RAW_AGENCIES, fy.start, fy.end))
            raw_q = await best_of(5, lambda: conn.fetch(RAW_QUESTIONS, fy.start, fy.end))
            for group_by, limit in ((None, raw), ("agency", raw_a), ("sla_outcome", raw_a), ("question", raw_q)):

                async def run(group_by: str | None = group_by) -> dict[str, Any]:
                    return await surveys.summary(conn, q, policy, fy, group_by=group_by)

                took = await best_of(5, run)
                print(
                    f"summary FY2564 group_by={group_by or '-':<12} {took * 1000:8.1f} ms"
                    f"   raw {limit * 1000:8.1f} ms   ratio {limit / took:.2f}"
                )
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().responses))
