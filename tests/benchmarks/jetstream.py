"""``certmon consume`` from NATS JetStream: nothing lost or doubled when a replica is killed, and throughput.

    CERTMON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python tests/benchmarks/jetstream.py --messages 100000

Needs a NATS server with JetStream at 127.0.0.1:4222 (CERTMON_NATS_URL). Publishes ``--messages`` incident
messages into a stream of the run's own (a third with external ids, a third keyed by the publisher's message id, a
third by their position in the stream alone), then:

1. kill: two ``certmon consume`` processes share the durable consumer; when a third of the incidents are stored
   one is SIGKILLed. Lost and doubled incidents are counted once every message is acknowledged (target 0 and 0).
2. throughput: a second durable consumer reads the same messages again into a fresh database with two
   ``certmon consume`` processes, timed from the moment both answer /healthz until the last incident is stored.
3. raw limit, in the same run: one process fetches the same messages in batches, decodes each, COPYs the rows
   unchecked into the same ``incidents`` table and acknowledges them. Target: certmon >= 0.5x of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig
from scratch import free_port, scratch_database

from certmon.store import migrations

REPO = Path(__file__).resolve().parents[2]
NATS_URL = os.environ.get("CERTMON_NATS_URL") or "nats://127.0.0.1:4222"
AGENCIES = 250
START = datetime(2024, 6, 1, tzinfo=UTC)
ACK_WAIT_SECONDS = 5.0


def message(n: int) -> tuple[bytes, str | None]:
    body: dict[str, Any] = {
        "agency": f"A{n % AGENCIES:03d}",
        "title": f"alert {n}",
        "severity": ("critical", "high", "medium", "low")[n % 4],
        "category": "malicious-code/c2-server",
        "detected_at": (START + timedelta(seconds=n)).isoformat(),
        "notified_at": (START + timedelta(seconds=n + 1800)).isoformat(),
        "source": "sensor-net",
    }
    if n % 3 == 0:
        body["external_id"] = f"flow-{n}"
    return json.dumps(body).encode(), (f"m-{n}" if n % 3 == 1 else None)


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrations.migrate(conn)
        await conn.executemany(
            "INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')",
            [(f"A{k:03d}",) for k in range(AGENCIES)],
        )
    finally:
        await conn.close()


async def publish(js: Any, subject: str, count: int) -> float:
    started = time.perf_counter()
    window = 500  # publishes awaiting the stream's confirmation at once
    for start in range(0, count, window):
        sends = []
        for n in range(start, min(start + window, count)):
            data, msg_id = message(n)
            sends.append(js.publish(subject, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None))
        await asyncio.gather(*sends)
    return time.perf_counter() - started


def consumer_process(url: str, stream: str, prefix: str, durable: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CERTMON_DATABASE_URL": url,
        "CERTMON_LOG_FORMAT": "json",
        "CERTMON_LOG_LEVEL": "warning",
        "CERTMON_NATS_URL": NATS_URL,
        "CERTMON_NATS_STREAM": stream,
        "CERTMON_NATS_SUBJECTS": prefix,
        "CERTMON_NATS_CONSUMER": durable,
        "CERTMON_NATS_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
        "CERTMON_CONSUME_PORT": str(port),
    }
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "certmon", "consume"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err
        )


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 1800.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the consumers did not finish")
        await asyncio.sleep(0.1)


async def healthy(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT count(*), count(DISTINCT title) FROM incidents WHERE source <> 'raw'")
    assert row is not None
    return row[0], row[1]


async def run_consumers(
    url: str, js: Any, stream: str, prefix: str, durable: str, total: int, log: Path, kill: bool
) -> tuple[float, int, int]:
    """Two consumers until every message is acknowledged; seconds, lost, doubled."""
    ports = [free_port(), free_port()]
    processes = [consumer_process(url, stream, prefix, durable, port, log) for port in ports]
    conn = await asyncpg.connect(url)
    try:
        await until(lambda: healthy(ports[0]))
        await until(lambda: healthy(ports[1]))
        started = time.perf_counter()
        if kill:

            async def a_third() -> bool:
                return (await counts(conn))[0] >= total // 3

            await until(a_third)
            processes[0].kill()
            processes[0].wait()
            print(f"  killed one consumer (SIGKILL) with {(await counts(conn))[0]:,} of {total:,} stored")

        async def done() -> bool:
            info = await js.consumer_info(stream, durable)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await until(done)
        seconds = time.perf_counter() - started
        stored, distinct = await counts(conn)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
        await conn.close()
    return seconds, total - distinct, stored - distinct


async def raw(url: str, js: Any, stream: str, total: int, batch: int) -> float:
    """The least a consumer must do: fetch, decode, COPY unchecked, acknowledge."""
    durable = "raw"
    await js.add_consumer(stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    conn = await asyncpg.connect(url)
    columns = (
        "agency_code", "title", "severity", "category", "source", "external_id", "detected_at", "notified_at",
        "policy_hash", "created_by",
    )  # fmt: skip
    done = 0
    started = time.perf_counter()
    try:
        while done < total:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            rows = []
            for m in msgs:
                d = json.loads(m.data)
                rows.append(
                    (d["agency"], d["title"], d["severity"], d["category"], "raw",
                     f"raw-{m.metadata.sequence.stream}", datetime.fromisoformat(d["detected_at"]),
                     datetime.fromisoformat(d["notified_at"]), "raw", "raw")
                )  # fmt: skip
            async with conn.transaction():
                await conn.copy_records_to_table("incidents", records=rows, columns=columns)
            for m in msgs:
                await m.ack()
            done += len(msgs)
        await js._nc.flush()
    finally:
        await conn.close()
    return time.perf_counter() - started


async def main(total: int) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"CERTMON_BENCH_{tag}", f"certmon_bench_{tag}"
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    logs = Path(tempfile.mkdtemp(prefix="certmon-bench-consume-"))
    try:
        await js.add_stream(name=stream, subjects=[f"{prefix}.incidents", f"{prefix}.alerts.>"])
        published = await publish(js, f"{prefix}.incidents", total)
        print(f"{total:,} messages published in {published:.1f} s")
        async with scratch_database() as url:
            await prepare(url)
            seconds, lost, doubled = await run_consumers(
                url, js, stream, prefix, "certmon", total, logs / "kill.log", kill=True
            )
            print(f"kill: 2 consumers, one SIGKILLed: {seconds:.1f} s, lost {lost}, doubled {doubled}")
        async with scratch_database() as url:
            await prepare(url)
            seconds, lost, doubled = await run_consumers(
                url, js, stream, prefix, "again", total, logs / "again.log", kill=False
            )
            rate = total / seconds
            print(f"certmon consume, 2 processes: {seconds:.1f} s ({rate:,.0f}/s), lost {lost}, doubled {doubled}")
            raw_seconds = await raw(url, js, stream, total, 500)
            raw_rate = total / raw_seconds
            print(f"raw fetch + decode + COPY + ack, 1 process: {raw_seconds:.1f} s ({raw_rate:,.0f}/s)")
            print(f"ratio: {rate / raw_rate:.2f}x (target 0.5x)")
    finally:
        for name in (stream, f"{stream}_DEAD"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await nc.close()
        print(f"consumer logs: {logs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().messages))
