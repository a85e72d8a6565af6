"""Does a big monthly export freeze the service? /healthz latency while one runs, against the same with none.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python tests/benchmarks/export_freeze.py --incidents 30000

A month (2021-08) of N incidents of 250 agencies is stored into a fresh database through certmon's own bulk
ingest (10 % notified late, some acknowledged, contained and resolved, so every objective has clocks). Then a real
``certmon serve`` runs in a child process. One client polls ``/healthz`` back to back: first with no export running
(the raw limit: what a round trip to the service costs on this machine), then while ``POST /api/v1/exports``
exports the month. Reported: worst, p99 and p50 latency of each phase, and how long the export took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scratch import free_port, scratch_database, until_ready  # noqa: E402

from certmon.core.policy import Policy  # noqa: E402
from certmon.store import bulk, db, migrations, tokens  # noqa: E402

AGENCIES = 250
MONTH = "2021-08"
BKK = ZoneInfo("Asia/Bangkok")
TARGET_WORST_MS = 250.0


def incident_lines(count: int) -> list[bytes]:
    """The month's incidents as NDJSON lines, spread evenly over August in Bangkok time."""
    start = datetime(2021, 8, 1, tzinfo=BKK)
    step = timedelta(days=31) / count
    lines = []
    for n in range(count):
        detected = start + n * step
        notified = detected + timedelta(minutes=95 if n % 10 == 0 else 5 + n % 50)
        body: dict[str, object] = {
            "agency": f"A{n % AGENCIES:03d}",
            "title": f"Alert {n}",
            "severity": ("critical", "high", "medium", "low")[n % 4],
            "category": "malicious-code/c2-server",
            "source": "bench",
            "external_id": str(n),
            "detected_at": detected.isoformat(),
            "notified_at": notified.isoformat(),
        }
        if n % 3:
            body["acknowledged_at"] = (notified + timedelta(minutes=20 + n % 90)).isoformat()
        if n % 3 == 1:
            body["contained_at"] = (notified + timedelta(hours=2 + n % 40)).isoformat()
            body["resolved_at"] = (notified + timedelta(hours=30 + n % 40)).isoformat()
        lines.append(json.dumps(body).encode())
    return lines


async def seed(url: str, count: int) -> str:
    """Migrate, store the agencies and the month's incidents; returns an admin token."""
    policy, q = Policy(), db.Queries.load()
    conn = await asyncpg.connect(url)
    lookup = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        await conn.executemany(
            "INSERT INTO agencies (code, name, name_th, sector) VALUES ($1, $2, $3, 'government')",
            [(f"A{i:03d}", f"Agency {i}", f"หน่วยงาน {i}") for i in range(AGENCIES)],
        )
        agencies = {f"A{i:03d}" for i in range(AGENCIES)}
        lines = incident_lines(count)
        for start in range(0, count, bulk.MAX_LINES):
            body = lines[start : start + bulk.MAX_LINES]
            outcome = await bulk.ingest(conn, lookup, q, policy, agencies, "bench", body)
            assert not outcome.rejected, outcome.rejected[:3]
        await conn.execute("ANALYZE")
        return await tokens.create_token(conn, q, "bench-admin", "admin", None)
    finally:
        await conn.close()
        await lookup.close()


async def wait_catch_up(log_path: Path) -> None:
    """The start-up catch-up (of last month, which has no incidents here) is not what is measured: let it end."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if b'"monthly export run"' in await asyncio.to_thread(log_path.read_bytes):
            return
        await asyncio.sleep(0.5)
    raise SystemExit("the start-up catch-up did not finish within 300 s")


SLOW_MS = 100.0  # requests slower than this are listed with what the service logged while they waited


async def poll(
    session: aiohttp.ClientSession, base: str, until: asyncio.Future[object] | float, slow: list[tuple[float, float]]
) -> list[float]:
    """Latencies (ms) of back-to-back GET /healthz until the future is done or the monotonic deadline passes; the
    slow ones also go to ``slow`` as (wall-clock start, ms)."""
    latencies = []
    while not (until.done() if isinstance(until, asyncio.Future) else time.monotonic() > until):
        wall, started = time.time(), time.perf_counter()
        async with session.get(f"{base}/healthz") as response:
            await response.read()
            assert response.status == 200
        latencies.append((time.perf_counter() - started) * 1000)
        if latencies[-1] > SLOW_MS:
            slow.append((wall, latencies[-1]))
    return latencies


def logged_during(log: str, start: float, ms: float) -> list[str]:
    """The events the service logged from a second before a slow request until it was answered."""
    events = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
            at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if start - 1.0 <= at <= start + ms / 1000 + 0.1:
            events.append(str(record.get("event")))
    return sorted(set(events))


def summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"  {name:<24} {len(ordered):6d} requests   worst {ordered[-1]:8.1f} ms   p99 {p99:7.1f} ms   "
        f"p50 {statistics.median(ordered):6.2f} ms"
    )


async def measure(url: str, count: int, baseline_seconds: float) -> None:
    started = time.perf_counter()
    token = await seed(url, count)
    print(f"seeded {count} incidents of {MONTH} in {time.perf_counter() - started:.1f} s")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="certmon-bench-") as data_dir:
        env = {
            **os.environ,
            "CERTMON_DATABASE_URL": url,
            "CERTMON_PORT": str(port),
            "CERTMON_DATA_DIR": data_dir,
            "CERTMON_LOG_FORMAT": "json",
            "CERTMON_LOG_LEVEL": "info",
        }
        log_path = Path(data_dir) / "serve.log"
        with log_path.open("wb") as log:
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "certmon", "serve", env=env, stdout=log, stderr=subprocess.STDOUT
            )
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=3600)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await until_ready(session, base, service)
                await wait_catch_up(log_path)
                slow_idle: list[tuple[float, float]] = []
                slow_idle_start = time.time()
                slow_busy: list[tuple[float, float]] = []
                idle = await poll(session, base, time.monotonic() + baseline_seconds, slow_idle)

                async def export() -> tuple[int, object]:
                    async with session.post(f"{base}/api/v1/exports", json={"month": MONTH}, headers=headers) as r:
                        return r.status, await r.json()

                export_started = time.perf_counter()
                running = asyncio.ensure_future(export())
                busy = await poll(session, base, running, slow_busy)
                status, body = await running
                export_s = time.perf_counter() - export_started
        finally:
            service.terminate()
            await asyncio.wait_for(service.wait(), timeout=60)
            log_text = log_path.read_text(errors="replace")
            tail = log_text.strip().splitlines()[-5:]
    print(f"\n{count} incidents in {MONTH}; POST /api/v1/exports -> {status} in {export_s:.1f} s: {body}")
    print(summary("no export (raw limit)", idle))
    print(summary("during the export", busy))
    worst = max(busy)
    print(f"  worst during the export: {worst:.1f} ms (target < {TARGET_WORST_MS:.0f} ms)")
    for name, slow in (("no export", slow_idle), ("during the export", slow_busy)):
        for start, ms in sorted(slow, key=lambda item: -item[1])[:8]:
            around = ", ".join(logged_during(log_text, start, ms)) or "nothing logged"
            print(f"  slow ({name}): {ms:7.1f} ms at +{start - slow_idle_start:6.1f} s; service logged: {around}")
    if status != 201:
        print("service log, last lines:\n  " + "\n  ".join(tail))


async def main(count: int, baseline_seconds: float) -> None:
    async with scratch_database() as url:
        await measure(url, count, baseline_seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=30000, help="incidents in the month (default 30000)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="seconds of polling with no export")
    args = parser.parse_args()
    asyncio.run(main(args.incidents, args.baseline_seconds))
