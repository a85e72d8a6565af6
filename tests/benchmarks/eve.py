"""EVE import throughput and memory: ``certmon ingest eve`` on generated files against a raw COPY of the same lines.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python tests/benchmarks/eve.py --alerts 1000000 --alerts 100000

For each size: the generated NDJSON file (250 agencies of one /24 each, 300 signatures of skewed frequency, 5 % of
alerts outside every network, one day of traffic) is imported by the real command in a fresh database, in a child
process whose peak RSS is read from the kernel. The raw limit, measured in the same run on the same server, is a
COPY of the same rows: each line parsed and its alert columns (time, addresses, signature, class, severity) copied
in batches into a table without indexes, with no mapping, deduplication or grouping. A COPY of the bare lines into
a one-column table is printed too, as the transport floor. Target: >= 0.3x raw, peak memory flat as files grow.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
from scratch import scratch_database

AGENCIES = 250
SIGNATURES = 300
CLASSES = ("Attempted Information Leak", "Web Application Attack", "A Network Trojan was detected", "Misc Attack")


def generate(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    step = 86400 / count
    weights = [1 / (k + 1) ** 2 for k in range(SIGNATURES)]  # a few noisy rules, a long tail
    sids = rng.choices(range(SIGNATURES), weights, k=count)
    agencies = rng.choices(range(AGENCIES), [1 / (k + 1) ** 0.5 for k in range(AGENCIES)], k=count)
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            at = start + timedelta(seconds=n * step)
            a = agencies[n]
            inside = rng.random() >= 0.05
            dest = (
                f"10.{a // 200}.{a % 200}.{rng.randrange(1, 255)}" if inside else f"198.51.100.{rng.randrange(1, 255)}"
            )
            sid = 2_000_000 + sids[n]
            record = {
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
                "flow_id": rng.getrandbits(50),
                "in_iface": "eth0",
                "event_type": "alert",
                "src_ip": f"203.0.113.{rng.randrange(1, 255)}",
                "src_port": rng.randrange(1024, 65535),
                "dest_ip": dest,
                "dest_port": 443,
                "proto": "TCP",
                "alert": {
                    "action": "allowed",
                    "gid": 1,
                    "signature_id": sid,
                    "rev": 3,
                    "signature": f"ET POLICY generated signature {sid}",
                    "category": CLASSES[sid % len(CLASSES)],
                    "severity": 1 + sid % 3,
                },
                "flow": {"pkts_toserver": 3, "pkts_toclient": 1, "bytes_toserver": 280, "bytes_toclient": 74},
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


async def raw_copy(url: str, path: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE eve_raw (line text)")
        started = time.perf_counter()
        # EVE lines hold neither control character, so each line is one field of one row.
        await conn.copy_to_table("eve_raw", source=path, format="csv", delimiter="\x01", quote="\x02")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def raw_rows(url: str, path: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE eve_rows (at timestamptz, src_ip inet, dest_ip inet, signature_id bigint, signature text,"
            " category text, severity integer)"
        )
        started = time.perf_counter()
        batch: list[tuple[object, ...]] = []
        with path.open("rb") as lines:
            for line in lines:
                r = orjson.loads(line)
                a = r["alert"]
                batch.append(
                    (
                        datetime.fromisoformat(r["timestamp"]),
                        ipaddress.ip_address(r["src_ip"]),
                        ipaddress.ip_address(r["dest_ip"]),
                        a["signature_id"],
                        a["signature"],
                        a["category"],
                        a["severity"],
                    )
                )
                if len(batch) == 20_000:
                    await conn.copy_records_to_table("eve_rows", records=batch)
                    batch = []
        if batch:
            await conn.copy_records_to_table("eve_rows", records=batch)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def prepare(url: str) -> None:
    from certmon.store import migrations

    conn = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        for a in range(AGENCIES):
            code = f"AG{a:03d}"
            await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')", code)
            await conn.execute(
                "INSERT INTO agency_networks VALUES ($1, $2::cidr)", code, f"10.{a // 200}.{a % 200}.0/24"
            )
    finally:
        await conn.close()


def certmon_ingest(url: str, path: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, and the summary of ``certmon ingest eve FILE`` in a child process."""
    env = {**os.environ, "CERTMON_DATABASE_URL": url, "CERTMON_LOG_FORMAT": "json", "CERTMON_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "certmon", "ingest", "eve", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise SystemExit(f"certmon ingest failed ({child.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output


async def measure(server: str, count: int, directory: Path) -> dict[str, float]:
    path = directory / f"eve-{count}.json"
    if not path.exists():
        print(f"generating {count:,} alerts ...", flush=True)
        generate(path, count)
    size = path.stat().st_size
    async with scratch_database(server) as raw_url, scratch_database(server) as url:
        lines = await raw_copy(raw_url, path)
        raw = await raw_rows(raw_url, path)
        await prepare(url)
        elapsed, rss, output = await asyncio.to_thread(certmon_ingest, url, path)
        conn = await asyncpg.connect(url)
        try:
            incidents = await conn.fetchval("SELECT count(*) FROM incidents")
        finally:
            await conn.close()
    print(f"\n{count:,} alerts, {size / 2**20:.0f} MiB, {incidents:,} incidents")
    print(output.rstrip())
    print(f"COPY of the bare lines: {lines:7.2f} s  {count / lines:10,.0f} alerts/s")
    print(f"raw COPY of the rows:   {raw:7.2f} s  {count / raw:10,.0f} alerts/s")
    print(f"certmon ingest eve:     {elapsed:7.2f} s  {count / elapsed:10,.0f} alerts/s  ({raw / elapsed:.2f}x raw)")
    print(f"peak RSS:               {rss:7.0f} MiB")
    return {"alerts": count, "ratio": raw / elapsed, "rss": rss}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, action="append", help="file sizes to measure (default 100000, 1000000)")
    parser.add_argument("--keep", type=Path, help="directory to keep generated files in between runs")
    args = parser.parse_args()
    server = os.environ.get("CERTMON_BENCH_DATABASE_URL") or os.environ.get("CERTMON_TEST_DATABASE_URL")
    if not server:
        raise SystemExit("set CERTMON_TEST_DATABASE_URL (or CERTMON_BENCH_DATABASE_URL) to a PostgreSQL server")
    sizes = sorted(args.alerts or [100_000, 1_000_000])
    with tempfile.TemporaryDirectory(prefix="certmon-eve-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        results = [await measure(server, n, directory) for n in sizes]
    print("\nsize        ratio to raw   peak RSS")
    for r in results:
        print(f"{int(r['alerts']):>10,}  {r['ratio']:>10.2f}x  {r['rss']:>7.0f} MiB")
    if len(results) > 1:
        print(f"peak RSS grew {results[-1]['rss'] / results[0]['rss']:.2f}x for {sizes[-1] / sizes[0]:.0f}x the alerts")


if __name__ == "__main__":
    asyncio.run(main())
