"""Ingest throughput: certmon against the raw limit, in one run on one machine.

    python tests/benchmarks/ingest.py [--requests 3000] [--concurrency 16]

Single POSTs are compared with a bare aiohttp + asyncpg handler doing one INSERT per request into the same table;
bulk NDJSON with a raw asyncpg COPY of the same rows. Targets: both ratios >= 0.5. certmon runs twice, with its audit
triggers and with them disabled, to show what the audit trail costs (the raw limits run without them); then the
entries written are sealed. Uses CERTMON_TEST_DATABASE_URL's server (or an embedded one), in a scratch database that
is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scratch import free_port, scratch_database  # noqa: E402

from certmon.core.clocks import Clocks  # noqa: E402
from certmon.core.policy import load_policy  # noqa: E402
from certmon.store import audit, db, migrations  # noqa: E402
from certmon.store.bulk import INCIDENT_COLUMNS  # noqa: E402
from certmon.store.tokens import create_token  # noqa: E402

# The bare rows carry the policy in force's fingerprint: rows under another policy would make the next certmon
# recompute them in the background, and the benchmark would time the POSTs against that.
FINGERPRINT = Clocks.of(load_policy(None)).fingerprint

BARE_INSERT = """
INSERT INTO incidents (agency_code, title, severity, category, source, external_id, detected_at, notified_at,
                       policy_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'bare')
RETURNING id
"""


def incident(n: int, tag: str) -> dict[str, Any]:
    detected = datetime(2021, 8, 1, tzinfo=UTC) + timedelta(minutes=n)
    return {
        "agency": "MOF",
        "title": f"Beacon {n}",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "source": "bench",
        "external_id": f"{tag}-{n}",
        "detected_at": detected.isoformat(),
        "notified_at": (detected + timedelta(minutes=20)).isoformat(),
    }


def bare_app(url: str) -> web.Application:
    """The raw limit: parse JSON, one INSERT, answer 201."""

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app["pool"] = await asyncpg.create_pool(url, min_size=1, max_size=10)
        yield
        await app["pool"].close()

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        row_id = await request.app["pool"].fetchval(
            BARE_INSERT,
            body["agency"],
            body["title"],
            body["severity"],
            body["category"],
            body["source"],
            body["external_id"],
            datetime.fromisoformat(body["detected_at"]),
            datetime.fromisoformat(body["notified_at"]),
            FINGERPRINT,
        )
        return web.json_response({"id": row_id, **body}, status=201)

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/api/v1/incidents", create)
    return app


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], port: int) -> Any:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # certmon listens before it is ready (it binds its port first): wait for /readyz, which the bare server
        # does not have (404).
        while _ready(port) is False:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"server {args} did not start")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(30)


async def post_many(port: int, token: str, count: int, concurrency: int, tag: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(count))
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in queue:
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/api/v1/incidents", json=incident(n, tag)) as r:
                await r.read()
                assert r.status == 201, r.status
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


async def audit_triggers(conn: asyncpg.Connection, enabled: bool) -> None:
    """Switch the audit trail's capture triggers (and only those) on or off."""
    rows = await conn.fetch(
        "SELECT tgrelid::regclass::text AS tbl, tgname FROM pg_trigger WHERE tgname LIKE '%\\_audit\\_%' ESCAPE '\\'"
    )
    for row in rows:
        await conn.execute(f'ALTER TABLE {row["tbl"]} {"ENABLE" if enabled else "DISABLE"} TRIGGER "{row["tgname"]}"')


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bulk-lines", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()

    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        await migrations.migrate(conn)
        await conn.execute(
            "INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry of Finance', 'banking-finance')"
        )
        token = await create_token(conn, db.Queries.load(), "bench", "analyst", None)
        env = {
            **os.environ,
            "CERTMON_DATABASE_URL": url,
            "CERTMON_SCHEDULER": "off",
            "CERTMON_LOG_LEVEL": "warning",
        }

        # certmon with and without its audit triggers on one server, round by round in turn, so that the load of
        # the machine falls on both alike; the bare handler writes without them.
        results: dict[str, tuple[float, float]] = {}
        body = "\n".join(json.dumps(incident(n, "bulk")) for n in range(opts.bulk_lines)).encode()
        bulk: dict[str, list[float]] = {"certmon": [], "no-audit": []}
        for name in ("bare", "certmon"):
            await audit_triggers(conn, False)
            port = free_port()
            command = (
                [sys.executable, __file__, "--bare-server", str(port), url]
                if name == "bare"
                else [sys.executable, "-m", "certmon", "serve", "--port", str(port)]
            )
            modes = ("bare",) if name == "bare" else ("certmon", "no-audit")
            with server(command, env, port):
                await post_many(port, token, 300, opts.concurrency, f"{name}-warm")
                best = dict.fromkeys(modes, (0.0, 0.0))
                for r in range(opts.rounds):
                    for mode in modes:
                        await audit_triggers(conn, mode == "certmon")
                        elapsed, latencies = await post_many(
                            port, token, opts.requests, opts.concurrency, f"{mode}-{r}"
                        )
                        rate = opts.requests / elapsed
                        if rate > best[mode][0]:
                            best[mode] = (rate, p99(latencies) * 1000)
                if name == "certmon":
                    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
                        for r in range(opts.rounds):
                            for mode, bulk_times in bulk.items():
                                await audit_triggers(conn, mode == "certmon")
                                round_body = body.replace(b'"bulk-', f'"{mode}{r}-'.encode())
                                started = time.perf_counter()
                                target = f"http://127.0.0.1:{port}/api/v1/incidents/bulk"
                                async with session.post(target, data=round_body) as resp:
                                    outcome = await resp.json()
                                bulk_times.append(time.perf_counter() - started)
                                assert outcome["accepted"] == opts.bulk_lines, outcome
            results.update(best)
        entries = await conn.fetchval("SELECT count(*) FROM audit_entries")
        started = time.perf_counter()
        sealed = await audit.seal(conn, db.Queries.load(), wait=True)
        seal_seconds = time.perf_counter() - started
        assert sealed is not None
        await audit_triggers(conn, False)  # the raw limits below write without them

        # The raw limit: the same rows, already shaped, COPYed straight into the table.
        from certmon.core.clocks import CLOCK_COLUMNS
        from certmon.core.policy import load_policy
        from certmon.store.bulk import BulkOutcome, parse_lines, reserve_ids
        from certmon.store.db import Queries

        copy_times = []
        decode_copy_times = []
        for r in range(opts.rounds):
            lines = body.replace(b'"bulk-', f'"copy{r}-'.encode()).splitlines()
            parsed = parse_lines(lines, load_policy(None), {"MOF"}, "bench", BulkOutcome())
            ids = await reserve_ids(conn, Queries.load(), len(parsed))
            rows = [(i, *row[1:-1]) for i, row in zip(ids, parsed, strict=True)]
            clocks = [(i, *c) for i, row in zip(ids, parsed, strict=True) for c in row[-1]]
            started = time.perf_counter()
            # The same two tables certmon writes: the incidents and their objectives' clocks.
            await conn.copy_records_to_table("incidents", records=rows, columns=("id", *INCIDENT_COLUMNS))
            await conn.copy_records_to_table("incident_clocks", records=clocks, columns=("incident_id", *CLOCK_COLUMNS))
            copy_times.append(time.perf_counter() - started)
            # The least any NDJSON endpoint must do: decode each line and COPY what it says, unchecked.
            lines = body.replace(b'"bulk-', f'"json{r}-'.encode()).splitlines()
            started = time.perf_counter()
            decoded = [json.loads(line) for line in lines]
            await conn.copy_records_to_table(
                "incidents",
                records=[
                    (d["agency"], d["title"], d["severity"], d["category"], d["source"], d["external_id"],
                     datetime.fromisoformat(d["detected_at"]), datetime.fromisoformat(d["notified_at"]), "raw",
                     "raw")
                    for d in decoded
                ],
                columns=("agency_code", "title", "severity", "category", "source", "external_id", "detected_at",
                         "notified_at", "policy_hash", "created_by"),
            )  # fmt: skip
            decode_copy_times.append(time.perf_counter() - started)
        await conn.close()

    bare_rate, bare_p99 = results["bare"]
    rate, latency_p99 = results["certmon"]
    plain_rate, plain_p99 = results["no-audit"]
    bulk_rate = opts.bulk_lines / min(bulk["certmon"])
    plain_bulk_rate = opts.bulk_lines / min(bulk["no-audit"])
    copy_rate = opts.bulk_lines / min(copy_times)
    decode_copy_rate = opts.bulk_lines / min(decode_copy_times)
    print(f"single POST, {opts.requests} requests x {opts.rounds} rounds, concurrency {opts.concurrency} (best round)")
    print(f"  bare aiohttp+asyncpg INSERT : {bare_rate:8.0f} req/s   p99 {bare_p99:6.1f} ms")
    print(f"  certmon POST /incidents     : {rate:8.0f} req/s   p99 {latency_p99:6.1f} ms")
    print(f"  ratio                       : {rate / bare_rate:8.2f}   (target >= 0.50)")
    print(f"  certmon, audit triggers off : {plain_rate:8.0f} req/s   p99 {plain_p99:6.1f} ms")
    print(f"  with audit / without        : {rate / plain_rate:8.2f}")
    print(f"bulk NDJSON, {opts.bulk_lines} lines (best of {opts.rounds})")
    print(f"  raw asyncpg COPY            : {copy_rate:8.0f} rows/s")
    print(f"  certmon POST /incidents/bulk: {bulk_rate:8.0f} rows/s")
    print(f"  ratio                       : {bulk_rate / copy_rate:8.2f}   (target >= 0.50)")
    print(f"  certmon, audit triggers off : {plain_bulk_rate:8.0f} rows/s")
    print(f"  with audit / without        : {bulk_rate / plain_bulk_rate:8.2f}")
    print(f"  raw json.loads + COPY       : {decode_copy_rate:8.0f} rows/s   (decode only, nothing checked)")
    print(f"  ratio                       : {bulk_rate / decode_copy_rate:8.2f}")
    print(f"audit sealing: {sealed.count} of {entries} entries in {seal_seconds:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bare-server":
        web.run_app(bare_app(sys.argv[3]), host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
    else:
        asyncio.run(main())
