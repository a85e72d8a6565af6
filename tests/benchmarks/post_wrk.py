"""Single POST throughput under wrk, a C client: certmon against a bare aiohttp + asyncpg INSERT handler.

    python tests/benchmarks/post_wrk.py [--seconds 10] [--connections 32] [--rounds 3] [--log-level info]

Both servers run as processes of their own on the same database, one at a time, logging at the same level, and are
loaded by the same wrk script: every request carries a new external id, so every one of them is a real insert.
Target: certmon's rate >= 0.6 of the bare handler's. Needs `wrk` (Debian package wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ingest import server  # noqa: E402
from scratch import free_port, scratch_database  # noqa: E402

from certmon.store import db, migrations  # noqa: E402
from certmon.store.tokens import create_token  # noqa: E402

# Every request is a new incident: the thread number and a counter make the external id unique across rounds.
SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local minute = counter % 50000
  local body = string.format(
    '{"agency":"MOF","title":"Beacon %d","severity":"high","category":"malicious-code/c2-server",' ..
    '"source":"bench","external_id":"%s-%d-%d","detected_at":"2021-08-01T%02d:%02d:00+07:00",' ..
    '"notified_at":"2021-08-01T%02d:%02d:30+07:00"}',
    counter, ROUND, tid, counter, math.floor(minute / 60) % 24, minute % 60, math.floor(minute / 60) % 24, minute % 60)
  return wrk.format("POST", "/api/v1/incidents",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. TOKEN}, body)
end
local failures = 0
function response(status, headers, body)
  if status ~= 201 then failures = failures + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(port: int, token: str, round_tag: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'TOKEN = "{token}"\nROUND = "{round_tag}"\n{SCRIPT}')
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result at port {port}:\n{out}")
    requests, duration_us, errors, timeouts, p50_us, p99_us = (int(v) for v in line.split()[1:])
    if errors:
        raise RuntimeError(f"{errors} failed requests at port {port}:\n{out}")
    return {
        "rate": requests / (duration_us / 1e6),
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
        "timeouts": timeouts,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-level", default="info")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        await migrations.migrate(conn)
        await conn.execute(
            "INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Ministry of Finance', 'banking-finance')"
        )
        token = await create_token(conn, db.Queries.load(), "bench", "analyst", None)
        await conn.close()
        env = {
            **os.environ,
            "CERTMON_DATABASE_URL": url,
            "CERTMON_SCHEDULER": "off",
            "CERTMON_LOG_LEVEL": opts.log_level,
            "CERTMON_LOG_FORMAT": "json",
        }
        bare = [sys.executable, str(Path(__file__).with_name("ingest.py")), "--bare-server"]
        results: dict[str, list[dict[str, float]]] = {"bare": [], "certmon": []}
        # Interleaved rounds, so a change in the machine's speed during the run falls on both sides alike.
        for r in range(opts.rounds):
            for name in ("bare", "certmon"):
                port = free_port()
                command = (
                    [*bare, str(port), url]
                    if name == "bare"
                    else [sys.executable, "-m", "certmon", "serve", "--port", str(port)]
                )
                with server(command, env, port):
                    run_wrk(port, token, f"{name}w{r}", 2, opts.connections)
                    results[name].append(run_wrk(port, token, f"{name}{r}", opts.seconds, opts.connections))

    best = {name: max(runs, key=lambda x: x["rate"]) for name, runs in results.items()}
    ratios = [c["rate"] / b["rate"] for b, c in zip(results["bare"], results["certmon"], strict=True)]
    print(f"single POST under wrk -t2 -c{opts.connections} -d{opts.seconds}s, log level {opts.log_level}")
    for name in ("bare", "certmon"):
        b = best[name]
        print(
            f"  {name:8}: {b['rate']:8.0f} req/s   p50 {b['p50_ms']:6.2f} ms   p99 {b['p99_ms']:6.2f} ms   "
            f"timeouts {b['timeouts']} (best round)"
        )
    print(f"  ratio per round : {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"  ratio (best)    : {best['certmon']['rate'] / best['bare']['rate']:.2f}   (target >= 0.60)")
    print(json.dumps({"ratios": ratios}))


if __name__ == "__main__":
    asyncio.run(main())
