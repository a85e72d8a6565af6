"""Limits under a flood: wrong tokens from one address, junk against the token cache, connections trickling headers.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python tests/benchmarks/limits.py --seconds 10

Each wrong token answered 401 cost one database lookup; one answered 429 cost none.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import aiohttp
import asyncpg
from scratch import free_port, scratch_database

from certmon.cli import logs
from certmon.core.settings import Settings
from certmon.store import db, migrations
from certmon.store.tokens import create_token
from certmon.web import appkeys, serving
from certmon.wiring import build_app


async def flood(url: str, seconds: float, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                headers = {"Authorization": f"Bearer certmon_junk_{w}_{n}"}
                async with session.get(f"{url}/api/v1/agencies", headers=headers) as response:
                    statuses[response.status] += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return statuses


async def trickle(port: int, count: int, wait: float) -> int:
    """Open ``count`` connections that send a request line, then a header byte a second; how many are still open."""
    pairs = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        pairs.append((reader, writer))
    for _ in range(int(wait)):
        await asyncio.sleep(1)
        for _, writer in pairs:
            if not writer.is_closing():
                writer.write(b"X")

    async def still_open(reader: asyncio.StreamReader) -> bool:
        try:
            await asyncio.wait_for(reader.read(), 1.0)  # returns at the server's close
        except TimeoutError:
            return True
        except (ConnectionError, OSError):
            pass
        return False

    result = sum(await asyncio.gather(*(still_open(r) for r, _ in pairs)))
    for _, writer in pairs:
        writer.close()
    return result


async def main(seconds: float, connections: int) -> None:
    logs.configure("json", "error")
    async with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await migrations.migrate(conn)
            good = await create_token(conn, db.Queries.load(), "bench", "admin", None)
        finally:
            await conn.close()
        settings = Settings(scheduler_enabled=False, parse_workers=0, log_level="error", header_timeout_seconds=5)
        app = build_app(settings, database_url=url)
        port, stop = free_port(), asyncio.Event()
        task = asyncio.create_task(
            serving.serve(app, host="127.0.0.1", port=port, header_timeout=5, shutdown_grace=5, stop=stop)
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            async with session.get(f"{base}/api/v1/agencies", headers={"Authorization": f"Bearer {good}"}) as r:
                assert r.status == 200
        statuses = await flood(base, seconds, 16)
        total = sum(statuses.values())
        print(f"wrong tokens for {seconds:g} s, concurrency 16: {total} requests")
        print(f"  401 (one lookup each): {statuses[401]}   429 (no lookup): {statuses[429]}")
        print(f"  token cache entries afterwards: {len(app[appkeys.TOKENS])} (the one good token)")
        still = await trickle(port, connections, wait=8)
        print(f"{connections} connections trickling headers, header timeout 5 s: {still} still open after 8 s")
        stop.set()
        await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.connections))
