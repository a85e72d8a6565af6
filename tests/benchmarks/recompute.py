"""Start-up after a policy change: readiness, the background recompute, and a start with nothing stale.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python tests/benchmarks/recompute.py

A scratch database holds 200,000 incidents, 30,000 of them stored under another policy's fingerprint, spread over
the ids. `certmon serve` runs as a process of its own (scheduler off, metrics public); the run times how long it
takes to answer /readyz, how long until certmon_recompute_remaining is 0, and, started again, how long /readyz
takes when nothing is stale. Without CERTMON_TEST_DATABASE_URL an embedded PostgreSQL is started in a temporary
directory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from scratch import RECOMPUTE_REMAINING, free_port, scratch_database, serve_environment

from certmon.cli import logs
from certmon.core.clocks import Clocks
from certmon.core.policy import load_policy
from certmon.store import migrations


async def fill(url: str, total: int, stale: int) -> None:
    current = Clocks.of(load_policy(None)).fingerprint
    conn = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        await conn.execute("SELECT set_config('certmon.actor', 'benchmark', false)")
        await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry', 'government')")
        await conn.execute(
            "INSERT INTO incidents (agency_code, title, severity, category, source, external_id, detected_at,"
            " notified_at, policy_hash, created_by)"
            " SELECT 'MOF', 'alert', (ARRAY['critical','high','medium','low'])[1 + n % 4], 'fraud/phishing', 'bench',"
            " n::text, timestamptz '2024-03-01' + n * interval '1 minute',"
            " timestamptz '2024-03-01' + n * interval '1 minute' + (n % 120) * interval '1 minute',"
            # stale of every total, evenly spread over the ids
            " CASE WHEN (n::bigint * $2) % $3 < $2 THEN repeat('0', 64) ELSE $1 END, 'benchmark'"
            " FROM generate_series(1, $3) AS n",
            current,
            stale,
            total,
        )
        await conn.execute("VACUUM ANALYZE incidents")
    finally:
        await conn.close()


async def wait_for(session: aiohttp.ClientSession, url: str, check: re.Pattern[str] | None = None) -> float:
    """Seconds until url answers 200 (and, with check, until the gauge it matches reads 0)."""
    started = time.perf_counter()
    while True:
        try:
            async with session.get(url) as response:
                body = await response.text()
                if response.status == 200:
                    found = None if check is None else check.search(body)
                    if check is None or (found is not None and float(found.group(1)) == 0):
                        return time.perf_counter() - started
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)


async def serve(url: str, port: int, log: Path) -> tuple[asyncio.subprocess.Process, float, float]:
    """A certmon serve process logging to log; seconds to /readyz and until the gauge reads 0, from the spawn."""
    env = serve_environment(url, port, PARSE_WORKERS="0", LOG_FORMAT="json")
    with log.open("wb") as written:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "certmon", "serve", env=env, stderr=written
        )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        ready = await wait_for(session, f"{base}/readyz")
        done = ready + await wait_for(session, f"{base}/metrics", RECOMPUTE_REMAINING)
    return process, ready, done


async def finished(log: Path) -> None:
    """Until the service logged the end of its recompute (the gauge reads 0 a moment before)."""
    for _ in range(6000):
        if b"clock recompute finished" in await asyncio.to_thread(log.read_bytes):
            return
        await asyncio.sleep(0.05)


async def main(total: int, stale: int) -> int:
    logs.configure("json", "warning")
    async with scratch_database() as url:
        started = time.perf_counter()
        await fill(url, total, stale)
        print(f"{total} incidents, {stale} under another policy, stored in {time.perf_counter() - started:.1f} s")
        for label in ("after the policy change", "nothing stale"):
            with tempfile.TemporaryDirectory() as directory:
                log = Path(directory) / "serve.log"
                process, ready, done = await serve(url, free_port(), log)
                try:
                    print(f"{label:>24}: /readyz after {ready:.2f} s, every clock in force after {done:.2f} s")
                    if label != "nothing stale":
                        await finished(log)
                finally:
                    process.terminate()
                    await asyncio.wait_for(process.wait(), 60)
                for line in log.read_text().splitlines():
                    if "clock recompute" in line:
                        print(" " * 26 + line)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=200_000)
    parser.add_argument("--stale", type=int, default=30_000)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.incidents, args.stale)))
