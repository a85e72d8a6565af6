"""The audit trail's cost in the database itself, without HTTP around it, and how fast its chain is sealed and verified.

    python tests/benchmarks/audit.py [--incidents 2000] [--concurrency 8] [--bulk 10000] [--rounds 3]

Writes incidents with the store's own statement (the incident and its clocks in one round trip), from several
connections at once, with the audit triggers on and off in turn; COPYs a bulk upload's rows the same way; then seals
and verifies the entries written. Uses CERTMON_TEST_DATABASE_URL's server (or an embedded one), in a scratch database
that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ingest import audit_triggers  # noqa: E402
from scratch import scratch_database  # noqa: E402

from certmon.core.audit import Actor  # noqa: E402
from certmon.core.models import IncidentIn  # noqa: E402
from certmon.core.policy import load_policy  # noqa: E402
from certmon.store import audit, bulk, db, incidents, migrations  # noqa: E402


def incident(n: int, tag: str) -> IncidentIn:
    detected = datetime(2021, 8, 1, tzinfo=UTC) + timedelta(minutes=n)
    return IncidentIn.model_validate(
        {
            "agency": "MOF",
            "title": f"Beacon {n}",
            "severity": "high",
            "category": "malicious-code/c2-server",
            "source": "bench",
            "external_id": f"{tag}-{n}",
            "detected_at": detected.isoformat(),
            "notified_at": (detected + timedelta(minutes=20)).isoformat(),
        }
    )


async def singles(pool: asyncpg.Pool, count: int, concurrency: int, tag: str) -> float:
    """Incidents per second, each written as a POST writes it, from ``concurrency`` connections."""
    q, policy = db.Queries.load(), load_policy(None)
    todo = iter(range(count))

    async def worker() -> None:
        async with db.connection(pool, actor=Actor("token:bench", "analyst")) as conn:
            for n in todo:
                await incidents.create(conn, q, policy, incident(n, tag), "bench")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def copy_rows(conn: asyncpg.Connection, count: int, tag: str) -> float:
    """Rows per second of a bulk upload's COPY (the incidents and their clocks), validation left out."""
    q, policy = db.Queries.load(), load_policy(None)
    parsed = bulk.parse_lines(
        [incident(n, tag).model_dump_json().encode() for n in range(count)],
        policy,
        {"MOF"},
        "bench",
        bulk.BulkOutcome(),
    )
    started = time.perf_counter()
    await bulk.store(conn, q, parsed, bulk.BulkOutcome())
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        await migrations.migrate(conn)
        await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Finance', 'banking-finance')")
        pool = await db.create_pool(url, max_size=opts.concurrency + 1)
        single: dict[str, list[float]] = {"on": [], "off": []}
        copied: dict[str, list[float]] = {"on": [], "off": []}
        await singles(pool, 200, opts.concurrency, "warm")
        for r in range(opts.rounds):
            for mode in ("on", "off"):  # in turn, so that the machine's load falls on both alike
                await audit_triggers(conn, mode == "on")
                single[mode].append(await singles(pool, opts.incidents, opts.concurrency, f"{mode}{r}"))
                copied[mode].append(await copy_rows(conn, opts.bulk, f"bulk-{mode}{r}"))
        await audit_triggers(conn, True)
        entries = await conn.fetchval("SELECT count(*) FROM audit_entries")
        started = time.perf_counter()
        sealed = await audit.seal(conn, db.Queries.load(), wait=True)
        seal_seconds = time.perf_counter() - started
        started = time.perf_counter()
        verified = await audit.verify(conn, db.Queries.load())
        verify_seconds = time.perf_counter() - started
        await pool.close()
        await conn.close()
    assert sealed is not None and verified.ok, verified.problem
    on, off = max(single["on"]), max(single["off"])
    print(f"single incidents, {opts.incidents} x {opts.rounds} rounds from {opts.concurrency} connections (best)")
    print(f"  audit triggers on   : {on:8.0f} incidents/s")
    print(f"  audit triggers off  : {off:8.0f} incidents/s")
    print(f"  on / off            : {on / off:8.2f}")
    on, off = max(copied["on"]), max(copied["off"])
    print(f"bulk COPY of {opts.bulk} incidents and their clocks (best of {opts.rounds})")
    print(f"  audit triggers on   : {on:8.0f} rows/s")
    print(f"  audit triggers off  : {off:8.0f} rows/s")
    print(f"  on / off            : {on / off:8.2f}")
    print(f"sealing: {sealed.count} of {entries} entries in {seal_seconds:.2f} s ({sealed.count / seal_seconds:.0f}/s)")
    print(f"verify : {verified.length} entries in {verify_seconds:.2f} s ({verified.length / verify_seconds:.0f}/s)")


if __name__ == "__main__":
    asyncio.run(main())
