"""``certmon consume`` against a real NATS JetStream server: stored once, dead letters aside, outages outlived.

Each test has a stream and subjects of its own (CERTMON_NATS_STREAM, CERTMON_NATS_SUBJECTS), deleted after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import nats
import nats.js.errors
import pytest
from test_ingest import NETWORKS, expected_groups, sample
from test_ingest_cli import with_networks

from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import load_mapping
from certmon.store import db
from certmon.stream import service
from certmon.stream.jetstream import REASON_HEADER, SUBJECT_HEADER, JetStream
from certmon.stream.storing import Storer

NATS_URL = "nats://127.0.0.1:4222"
DETECTED = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def nats_reachable() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=2):
            return
    except OSError as exc:
        message = f"no NATS server with JetStream at {NATS_URL} ({exc}); start nats-server -js"
    if os.environ.get("CERTMON_REQUIRE_ALL") == "1":
        pytest.fail(f"CERTMON_REQUIRE_ALL=1 but {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Bus:
    """A stream of this test's own, and a client that publishes to it as a sensor would."""

    settings: Settings
    js: Any

    @property
    def prefix(self) -> str:
        return self.settings.nats_subjects

    async def publish(self, subject: str, body: Any, msg_id: str | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.js.publish(f"{self.prefix}.{subject}", data, headers=headers)

    async def lag(self) -> tuple[int, int]:
        info = await self.js.consumer_info(self.settings.nats_stream, self.settings.nats_consumer)
        return info.num_pending, info.num_ack_pending

    async def dead_letters(self) -> list[tuple[str, str, bytes]]:
        """(subject, reason, body) of every dead letter."""
        name = f"{self.settings.nats_stream}_DEAD"
        try:
            info = await self.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return []
        out: list[tuple[str, str, bytes]] = []
        if not info.state.messages:
            return out
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = await self.js.get_msg(name, seq)
            assert m.subject == m.headers[SUBJECT_HEADER].replace(".", ".dead.", 1)  # names where it came from
            out.append((m.subject, m.headers[REASON_HEADER], m.data))
        return out


@pytest.fixture
async def bus(database_url: str, tmp_path: Path) -> AsyncIterator[Bus]:
    nats_reachable()
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        log_format="json",
        nats_url=NATS_URL,
        nats_stream=f"CERTMON_TEST_{tag}",
        nats_subjects=f"certmon_test_{tag}",
        nats_ack_wait_seconds=2.0,
        consume_port=free_port(),
        consume_batch=200,
        parse_workers=0,  # in this process; the consumer processes the tests start validate in workers
    )
    await (await JetStream.connect(settings)).close()  # the streams and the consumer, as the first replica makes them
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        yield Bus(settings, js)
    finally:
        for name in (settings.nats_stream, f"{settings.nats_stream}_DEAD"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await nc.close()


@pytest.fixture
async def consumer(bus: Bus) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Starts the consumer in this process; it is stopped, as by SIGTERM, at the end of the test."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        policy = load_policy(None)
        tasks.append(asyncio.create_task(service.run(bus.settings, policy, load_mapping(None), stop)))
        await until(lambda: healthz(bus.settings.consume_port), "the consumer answers /healthz")

    yield start
    stop.set()
    for task in tasks:
        await asyncio.wait_for(task, 30)


async def healthz(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def metric(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.2)


def incident(number: int, *, external: bool = True, **fields: Any) -> dict[str, Any]:
    body = {
        "agency": "MOF",
        "title": f"C2 beacon {number}",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": (DETECTED + timedelta(seconds=number)).isoformat(),
        "source": "sensor-net",
    }
    if external:
        body["external_id"] = f"beacon-{number}"
    return body | fields


async def add_agency(conn: asyncpg.Connection, code: str = "MOF") -> None:
    await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')", code)


async def count(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT count(*) FROM incidents")
    return value


async def test_incidents_are_stored_once_with_the_stream_as_their_writer(
    bus: Bus, consumer: Callable[[], Awaitable[None]], conn: asyncpg.Connection
) -> None:
    """Incidents with and without external ids are stored once each, even when a publisher sends one twice."""
    await add_agency(conn)
    await consumer()
    for n in range(30):
        await bus.publish("incidents", incident(n))
    for n in range(30, 40):  # no external_id: the publisher's message id keys them
        await bus.publish("incidents", incident(n, external=False), msg_id=f"sensor-7-{n}")
    for n in range(40, 45):  # neither: the stream sequence keys them
        await bus.publish("incidents", incident(n, external=False))
    for n in range(10):  # sent again under another message id: the external id recognises it
        await bus.publish("incidents", incident(n), msg_id=f"again-{n}")
    await until(lambda: bus_idle(bus), "every message is acknowledged")
    assert await count(conn) == 45
    rows = await conn.fetch("SELECT external_id, created_by FROM incidents WHERE title = 'C2 beacon 31'")
    assert [(r["external_id"], r["created_by"]) for r in rows] == [
        (f"nats:{bus.settings.nats_stream}:id:sensor-7-31", "stream:certmon")
    ]
    assert await bus.dead_letters() == []
    port = bus.settings.consume_port
    assert await metric(port, 'certmon_stream_messages_total{kind="incidents",outcome="stored"}') == 55
    assert await metric(port, 'certmon_incidents_ingested_total{source="stream"}') == 45


async def bus_idle(bus: Bus) -> bool:
    return await bus.lag() == (0, 0)


async def test_a_message_delivered_again_after_its_commit_adds_nothing(bus: Bus, conn: asyncpg.Connection) -> None:
    """Stored but not acknowledged (the process died between): the redelivered batch changes nothing."""
    await add_agency(conn)
    for n in range(20):
        await bus.publish("incidents", incident(n, external=n % 2 == 0))
    storer = Storer(db.Queries.load(), load_policy(None), load_mapping(None), "stream:test")
    lookup = await asyncpg.connect(bus.settings.database_url)
    first = await JetStream.connect(bus.settings)
    batch = await first.fetch(50, 2.0)
    assert len(batch) == 20
    assert (await storer.store(conn, lookup, batch)).dead == {}
    await first.close()  # without acknowledging
    await asyncio.sleep(bus.settings.nats_ack_wait_seconds + 0.5)
    second = await JetStream.connect(bus.settings)
    try:
        again = await second.fetch(50, 2.0)
        assert [m.key for m in again] == [m.key for m in batch]
        assert {m.handle.metadata.num_delivered for m in again} == {2}
        assert (await storer.store(conn, lookup, again)).dead == {}
        await second.ack(again)
    finally:
        await second.close()
        await lookup.close()
    assert await count(conn) == 20
    await until(lambda: bus_idle(bus), "the redelivered messages are acknowledged")


async def test_messages_that_can_never_be_stored_are_dead_lettered_with_a_reason_and_the_rest_go_on(
    bus: Bus, consumer: Callable[[], Awaitable[None]], conn: asyncpg.Connection
) -> None:
    await add_agency(conn)
    await consumer()
    await bus.publish("incidents", b"{not json")
    await bus.publish("incidents", incident(1, agency="NOPE"))
    await bus.publish("incidents", incident(2, severity="apocalyptic"))
    await bus.publish("incidents", incident(3))
    await bus.publish("incidents", incident(3, title="another body under the same key"))
    await bus.publish("alerts.eve", b"[1, 2]")
    await bus.publish("alerts.snort", b"{}")
    await bus.publish("alerts.alertmanager", {"version": "3", "alerts": []})
    await bus.publish("incidents", incident(4))
    await until(lambda: bus_idle(bus), "every message is settled")
    assert await count(conn) == 2
    dead = await bus.dead_letters()
    p = bus.prefix
    reasons = {(subject, reason.split(":")[0]) for subject, reason, _ in dead}
    assert len(dead) == 7
    assert reasons == {
        (f"{p}.dead.incidents", "body is not valid JSON"),
        (f"{p}.dead.incidents", "agency"),
        (f"{p}.dead.incidents", "severity"),
        (f"{p}.dead.incidents", "conflict"),
        (f"{p}.dead.alerts.eve", "invalid"),
        (f"{p}.dead.alerts.snort", "unknown subject '" + f"{p}.alerts.snort'"),
        (f"{p}.dead.alerts.alertmanager", "version"),
    }, dead
    assert any(body == b"{not json" for _, _, body in dead)
    port = bus.settings.consume_port
    assert await metric(port, 'certmon_stream_messages_total{kind="incidents",outcome="dead_lettered"}') == 4
    assert await metric(port, 'certmon_stream_messages_total{kind="other",outcome="dead_lettered"}') == 1
    assert await metric(port, 'certmon_incidents_rejected_total{reason="conflict",source="stream"}') == 1


async def test_sensor_alerts_become_incidents_as_through_the_http_routes(
    bus: Bus, consumer: Callable[[], Awaitable[None]], conn: asyncpg.Connection
) -> None:
    """EVE records one a message, pretty-printed or not; a Wazuh alert; an Alertmanager webhook body."""
    await with_networks(conn)
    records = sample("wrccdc-2018")
    await consumer()
    for number, record in enumerate(records):
        await bus.publish("alerts.eve", json.dumps(record, indent=2 if number % 2 else None).encode())
    wazuh = {
        "timestamp": "2024-06-01T09:00:00.000+0700",
        "rule": {"level": 12, "description": "Multiple authentication failures", "id": "40111", "groups": ["sshd"]},
        "agent": {"id": "001", "name": "web1", "ip": NETWORKS[next(iter(NETWORKS))][0].split("/")[0]},
        "id": "1717207200.1",
    }
    await bus.publish("alerts.wazuh", wazuh)
    hook = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Defaced", "agency": next(iter(NETWORKS)), "severity": "critical"},
                "startsAt": "2024-06-01T02:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "a1b2c3",
            }
        ],
    }
    await bus.publish("alerts.alertmanager", hook)
    await bus.publish("alerts.alertmanager", hook)  # Alertmanager repeats a group's alerts
    await until(lambda: bus_idle(bus), "every message is settled")
    by_source = dict(await conn.fetch("SELECT source, count(*) FROM incidents GROUP BY source"))
    assert by_source == {"suricata": len(expected_groups(records)), "wazuh": 1, "alertmanager": 1}
    assert await bus.dead_letters() == []


async def test_a_database_outage_hands_messages_back_and_they_are_stored_when_it_returns(
    bus: Bus, consumer: Callable[[], Awaitable[None]], conn: asyncpg.Connection, server_url: str
) -> None:
    await add_agency(conn)
    await consumer()
    dbname = urlsplit(bus.settings.database_url or "").path.lstrip("/")
    admin = await asyncpg.connect(server_url)
    port = bus.settings.consume_port
    try:
        await admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            dbname,
        )
        for n in range(50):
            await bus.publish("incidents", incident(n))

        async def handed_back() -> bool:
            return await metric(port, 'certmon_stream_messages_total{kind="incidents",outcome="retried"}') >= 50

        await until(handed_back, "the batch is handed back")
        assert not await healthz(port)
    finally:
        await admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    conn = await asyncpg.connect(bus.settings.database_url)
    try:
        await until(lambda: bus_idle(bus), "the messages are stored after the outage")
        assert await count(conn) == 50
    finally:
        await conn.close()
    assert await bus.dead_letters() == []
    assert await healthz(port)


def start_consumer(bus: Bus, **env: str) -> subprocess.Popen[bytes]:
    s = bus.settings
    variables = {
        **os.environ,
        "CERTMON_DATABASE_URL": s.database_url or "",
        "CERTMON_LOG_FORMAT": "json",
        "CERTMON_NATS_URL": s.nats_url,
        "CERTMON_NATS_STREAM": s.nats_stream,
        "CERTMON_NATS_SUBJECTS": s.nats_subjects,
        "CERTMON_NATS_ACK_WAIT_SECONDS": str(s.nats_ack_wait_seconds),
        "CERTMON_CONSUME_BATCH": str(s.consume_batch),
        "CERTMON_CONSUME_PORT": str(s.consume_port),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "certmon", "consume"],
        env=variables,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def publish_many(bus: Bus, total: int) -> None:
    """Incidents keyed three ways: external ids, publishers' message ids, and stream positions alone."""
    for n in range(total):
        if n % 3 == 0:
            await bus.publish("incidents", incident(n))
        elif n % 3 == 1:
            await bus.publish("incidents", incident(n, external=False), msg_id=f"m-{n}")
        else:
            await bus.publish("incidents", incident(n, external=False))


async def test_sigterm_drains_the_batch_in_hand_and_exits_zero(bus: Bus, conn: asyncpg.Connection) -> None:
    await add_agency(conn)
    await publish_many(bus, 3000)
    process = start_consumer(bus)
    try:

        async def started() -> bool:
            return await count(conn) > 0

        await until(started, "the consumer stores incidents")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(process.communicate, timeout=30)
        assert process.returncode == 0, err.decode()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    pending, ack_pending = await bus.lag()
    assert pending > 0  # it stopped mid-stream
    assert ack_pending == 0  # nothing left in hand unacknowledged
    assert await count(conn) == 3000 - pending


async def test_two_consumers_one_killed_mid_stream_lose_nothing_and_double_nothing(
    bus: Bus, conn: asyncpg.Connection
) -> None:
    total = 3000
    await add_agency(conn)
    await publish_many(bus, total)
    first = start_consumer(bus)
    second = start_consumer(bus, CERTMON_CONSUME_PORT=str(free_port()))
    try:

        async def under_way() -> bool:
            return await count(conn) >= total // 4

        await until(under_way, "a quarter is stored")
        first.kill()
        assert await count(conn) < total  # mid-stream
        first.wait()
        await until(lambda: bus_idle(bus), "every message is acknowledged", seconds=90)
        stored = await conn.fetchrow("SELECT count(*), count(DISTINCT title) FROM incidents")
        assert tuple(stored) == (total, total)
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.communicate, timeout=30)
        assert second.returncode == 0
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == -signal.SIGKILL


def test_settings_name_the_stream_and_refuse_a_subject_with_dots() -> None:
    s = Settings.from_env({"CERTMON_NATS_STREAM": "INGEST", "CERTMON_NATS_SUBJECTS": "cert"})
    assert (s.nats_stream, s.nats_subjects, s.nats_url) == ("INGEST", "cert", NATS_URL)
    with pytest.raises(ValueError, match="CERTMON_NATS_SUBJECTS"):
        Settings.from_env({"CERTMON_NATS_SUBJECTS": "cert.>"})
