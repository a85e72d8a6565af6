"""Limits: wrong tokens per address, requests per token, the token cache, slow headers, slow bodies and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from certmon.core.ratelimit import MAX_KEYS, RateLimit, address_key, client_address
from certmon.core.settings import Settings, SettingsError
from certmon.store import db
from certmon.store.tokens import TokenCache, create_token
from certmon.web import appkeys, serving
from certmon.wiring import build_app
from tests.conftest import Api

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The app's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_rate_limit_spends_a_minutes_units_then_says_when_the_next_comes_back() -> None:
    """Three a minute: three pass at once, the fourth waits 20 s, and after 20 s one more passes."""
    limit = RateLimit(3)
    assert [limit.spend("a", 0.0) for _ in range(3)] == [None, None, None]
    assert limit.spend("a", 0.0) == 20
    assert limit.spend("a", 5.0) == 15
    assert limit.spend("b", 5.0) is None  # another key has its own bucket
    assert limit.spend("a", 20.0) is None
    assert limit.spend("a", 20.0) == 20
    assert limit.retry_after("a", -100.0) == 20  # a clock stepping back gives nothing back
    limit.refund("a", 20.0)
    assert limit.spend("a", 20.0) is None


def test_rate_limit_memory_is_bounded_however_many_keys_come() -> None:
    """A flood of distinct keys evicts the least recently seen; the store never passes its bound."""
    limit = RateLimit(1, max_keys=1000)
    for n in range(20_000):
        limit.spend(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limit) == 1000
    assert limit.spend("10.0.78.31", 0.0) == 60  # among the most recent: still remembered
    assert MAX_KEYS <= 100_000


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    """The peer is the client unless it is a trusted proxy; then the nearest hop it did not add, never a spoofed one."""
    trusted = ("10.0.0.0/8",)
    assert client_address("198.51.100.7", "203.0.113.1", trusted) == "198.51.100.7"
    assert client_address("10.1.1.1", "203.0.113.1", ()) == "10.1.1.1"
    assert client_address("10.1.1.1", "203.0.113.1", trusted) == "203.0.113.1"
    # The client wrote the first entry itself; the proxy appended the address it saw.
    assert client_address("10.1.1.1", "192.0.2.99, 203.0.113.1", trusted) == "203.0.113.1"
    assert client_address("10.1.1.1", "203.0.113.1, 10.2.2.2", trusted) == "203.0.113.1"
    assert client_address("10.1.1.1", "garbage", trusted) == "10.1.1.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_limit_settings_are_read_and_checked() -> None:
    """The new variables are read; a bad one stops start-up naming it."""
    settings = Settings.from_env(
        {
            "CERTMON_AUTH_FAILURES_PER_MINUTE": "5",
            "CERTMON_TOKEN_REQUESTS_PER_MINUTE": "600",
            "CERTMON_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
            "CERTMON_METRICS_PUBLIC": "true",
            "CERTMON_HEADER_TIMEOUT_SECONDS": "3",
            "CERTMON_BODY_TIMEOUT_SECONDS": "20",
            "CERTMON_SHUTDOWN_GRACE_SECONDS": "8",
        }
    )
    assert (settings.auth_failures_per_minute, settings.token_requests_per_minute) == (5, 600)
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1/32")
    assert settings.metrics_public
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds, settings.shutdown_grace_seconds) == (
        3.0,
        20.0,
        8.0,
    )
    defaults = Settings.from_env({})
    assert (defaults.auth_failures_per_minute, defaults.token_requests_per_minute) == (20, 0)
    with pytest.raises(SettingsError, match="CERTMON_TRUSTED_PROXIES"):
        Settings.from_env({"CERTMON_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})
    with pytest.raises(SettingsError, match="CERTMON_AUTH_FAILURES_PER_MINUTE"):
        Settings.from_env({"CERTMON_AUTH_FAILURES_PER_MINUTE": "0"})


async def call(api: Api, token: str, path: str = "/api/v1/agencies", **headers: str) -> tuple[int, Any, Any]:
    async with api.client.get(path, headers={"Authorization": f"Bearer {token}", **headers}) as response:
        body = await response.json(content_type=None) if response.content_type.endswith("json") else None
        return response.status, response.headers.get("Retry-After"), body


async def test_wrong_tokens_from_one_address_are_answered_429_without_a_lookup(make_api: Callable[..., Any]) -> None:
    """After three wrong tokens a minute, the address gets 429 with Retry-After and a problem body, even with the
    database gone; a minute on, it is answered 401 again."""
    clock = Clock()
    api: Api = await make_api(clock=clock, auth_failures_per_minute=3)
    for n in range(3):
        assert (await call(api, f"certmon_wrong{n}"))[:2] == (401, None)
    status, retry_after, body = await call(api, "certmon_wrong3")
    assert (status, retry_after) == (429, "20")
    assert body["status"] == 429 and body["retry_after"] == 20 and "failed authentications" in body["detail"]
    assert (await call(api, api.tokens["admin"]))[0] == 429  # no lookup from here, not even for a good token
    await api.app[appkeys.POOL].close()
    assert (await call(api, "certmon_wrong4"))[0] == 429  # answered without the database
    clock.now += timedelta(seconds=20)
    assert (await call(api, "certmon_wrong5"))[0] == 503  # one lookup allowed again: the database is gone


async def test_concurrent_wrong_tokens_get_no_more_lookups_than_the_limit(make_api: Callable[..., Any]) -> None:
    """Thirty wrong tokens at once, with three a minute allowed: three are looked up (401), the rest are 429; a good
    token gives its unit back."""
    api: Api = await make_api(clock=Clock(), auth_failures_per_minute=3)
    for _ in range(5):
        assert (await call(api, api.tokens["admin"]))[0] == 200
    statuses = await asyncio.gather(*(call(api, f"certmon_wrong{n}") for n in range(30)))
    assert sorted(status for status, _, _ in statuses) == [401] * 3 + [429] * 27


async def test_many_connections_opened_at_once_with_a_valid_token_are_all_served(
    make_api: Callable[..., Any],
) -> None:
    """A sensor opening forty connections at once with its own token, never seen before or with its cache entry
    expired, is served on all of them: the limit counts wrong tokens, not lookups of a good one."""
    api: Api = await make_api(clock=Clock(), auth_failures_per_minute=3, token_cache_seconds=0)
    for _ in range(3):
        statuses = await asyncio.gather(*(call(api, api.tokens["analyst"]) for _ in range(40)))
        assert sorted(status for status, _, _ in statuses) == [200] * 40
    assert (await call(api, "certmon_wrong"))[0] == 401


async def test_blocked_address_does_not_block_others_behind_a_trusted_proxy(make_api: Callable[..., Any]) -> None:
    """Behind a trusted proxy each client is limited on its own; without that setting X-Forwarded-For is ignored."""
    trusting: Api = await make_api(clock=Clock(), auth_failures_per_minute=1, trusted_proxies=("127.0.0.0/8",))
    assert (await call(trusting, "certmon_bad", **{"X-Forwarded-For": "203.0.113.1"}))[0] == 401
    assert (await call(trusting, "certmon_bad", **{"X-Forwarded-For": "203.0.113.1"}))[0] == 429
    assert (await call(trusting, trusting.tokens["admin"], **{"X-Forwarded-For": "203.0.113.2"}))[0] == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(make_api: Callable[..., Any]) -> None:
    """A client cannot escape the limit by naming another address in X-Forwarded-For."""
    plain: Api = await make_api(clock=Clock(), auth_failures_per_minute=1, trusted_proxies=("192.0.2.0/24",))
    assert (await call(plain, "certmon_bad", **{"X-Forwarded-For": "203.0.113.1"}))[0] == 401
    assert (await call(plain, "certmon_bad", **{"X-Forwarded-For": "203.0.113.9"}))[0] == 429


async def test_token_cache_keeps_valid_tokens_only_so_junk_cannot_flush_it(make_api: Callable[..., Any]) -> None:
    """Thousands of junk tokens leave the cache holding just the token in use, which keeps working without lookups."""
    api: Api = await make_api(clock=Clock(), token_cache_seconds=60, auth_failures_per_minute=100_000)
    assert (await call(api, api.tokens["admin"]))[0] == 200
    for n in range(2000):
        assert (await call(api, f"certmon_junk{n}"))[0] == 401
    cache = api.app[appkeys.TOKENS]
    assert len(cache) == 1
    assert cache.cached(api.tokens["admin"]) is not None


async def test_token_cache_is_bounded_in_size(conn: asyncpg.Connection, database_url: str) -> None:
    """More valid tokens than the cache holds: the least recently used leave, the newest stay."""
    q = db.Queries.load()
    tokens = [await create_token(conn, q, f"bound-{n}", "auditor", None) for n in range(5)]
    pool = await db.create_pool(database_url, min_size=1, max_size=2, timeout=5)
    try:
        cache = TokenCache(60, max_entries=3)
        for token in tokens:
            assert await cache.resolve(pool, q, token, 5) is not None
        assert len(cache) == 3
        assert cache.cached(tokens[0]) is None and cache.cached(tokens[-1]) is not None
    finally:
        await pool.close()


async def test_per_token_request_rate_is_off_by_default(api: Api) -> None:
    """With no setting a token is not limited."""
    for _ in range(30):
        assert (await call(api, api.tokens["admin"]))[0] == 200


async def test_per_token_request_rate_answers_429_with_retry_after(make_api: Callable[..., Any]) -> None:
    """With two a minute the third request of a token waits 30 s; other tokens are not held back."""
    clock = Clock()
    limited: Api = await make_api(clock=clock, token_requests_per_minute=2)
    assert [(await call(limited, limited.tokens["admin"]))[0] for _ in range(2)] == [200, 200]
    status, retry_after, body = await call(limited, limited.tokens["admin"])
    assert (status, retry_after, body["retry_after"]) == (429, "30", 30)
    assert (await call(limited, limited.tokens["analyst"]))[0] == 200
    clock.now += timedelta(seconds=30)
    assert (await call(limited, limited.tokens["admin"]))[0] == 200


# Real sockets from here on: a server as `certmon serve` runs it.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def served(settings: Settings, database_url: str, port: int, stop: asyncio.Event) -> None:
    app = build_app(settings, database_url=database_url)
    await serving.serve(
        app,
        host="127.0.0.1",
        port=port,
        header_timeout=settings.header_timeout_seconds,
        shutdown_grace=settings.shutdown_grace_seconds,
        stop=stop,
    )


async def healthz(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def until_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await healthz(port)).startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "certmon did not start"
        await asyncio.sleep(0.2)


async def trickle_headers(port: int, gap: float, limit: float) -> tuple[float, bytes]:
    """Send a request line, then a header byte every ``gap`` seconds; how long until the server closed, and what it
    sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    received = b""
    try:
        while time.monotonic() - started < limit:
            writer.write(b"X")
            await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(1024), gap)
            except TimeoutError:
                continue
            received += chunk
            if not chunk:
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, received


@pytest.fixture
async def server(database_url: str, settings: Settings) -> AsyncIterator[tuple[int, Settings]]:
    limits = replace(settings, header_timeout_seconds=1.0, body_timeout_seconds=1.5, shutdown_grace_seconds=30.0)
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(served(limits, database_url, port, stop))
    try:
        await until_up(port)
        yield port, limits
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_connections_trickling_headers_are_closed_at_the_deadline_while_others_are_served(
    server: tuple[int, Settings],
) -> None:
    """120 clients sending a header byte every 0.2 s are answered 408 and closed after the 1 s header deadline;
    meanwhile a normal client is served."""
    port, _ = server
    tricklers = [asyncio.create_task(trickle_headers(port, 0.2, limit=20)) for _ in range(120)]
    await asyncio.sleep(0.3)
    assert (await healthz(port)).startswith(b"HTTP/1.1 200")
    results = await asyncio.gather(*tricklers)
    assert max(seconds for seconds, _ in results) < 8  # the deadline, with room for a loaded machine
    assert all(received.startswith(b"HTTP/1.1 408") for _, received in results)
    assert (await healthz(port)).startswith(b"HTTP/1.1 200")


async def test_an_idle_connection_is_closed_at_the_header_deadline(server: tuple[int, Settings]) -> None:
    """A client that connects and sends nothing does not keep the connection."""
    port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert 0.9 <= time.monotonic() - started < 8
    writer.close()


async def slow_upload(port: int, token: str, gap: float, limit: float) -> tuple[float, bytes]:
    """POST a 10,000-byte body one byte every ``gap`` seconds; how long until the server answered, and what."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(
        b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: 10000\r\n\r\n{{".encode()
    )
    received = b""
    try:
        while time.monotonic() - started < limit and not received:
            writer.write(b" ")
            await writer.drain()
            try:
                received = await asyncio.wait_for(reader.read(4096), gap)
            except TimeoutError:
                continue
            if not received:
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, received


async def test_a_slow_body_is_answered_408_after_the_body_timeout(
    server: tuple[int, Settings], conn: asyncpg.Connection
) -> None:
    """A body sent a byte every 0.2 s is cut 1.5 s after its headers, with a 408 problem body."""
    port, _ = server
    token = await create_token(conn, db.Queries.load(), "slow-uploader", "analyst", None)
    seconds, received = await slow_upload(port, token, 0.2, limit=20)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"application/problem+json" in received and b"1.5 seconds" in received
    assert 1.4 <= seconds < 8


async def test_sigterm_shuts_down_within_the_bound_while_slow_clients_are_connected(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """`certmon serve` with a 30 s grace and a 60 s body timeout: on SIGTERM a slow upload is answered 503 at once,
    header tricklers are dropped, and the process exits 0 in seconds, not after the grace."""
    token = await create_token(conn, db.Queries.load(), "shutdown-uploader", "analyst", None)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env.update(
        CERTMON_DATABASE_URL=database_url,
        CERTMON_DATA_DIR=str(tmp_path / "data"),
        CERTMON_PORT=str(port),
        CERTMON_SCHEDULER="false",
        CERTMON_PARSE_WORKERS="0",
        CERTMON_LOG_FORMAT="json",
        CERTMON_SHUTDOWN_GRACE_SECONDS="30",
        CERTMON_BODY_TIMEOUT_SECONDS="60",
        CERTMON_HEADER_TIMEOUT_SECONDS="60",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "certmon", "serve", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        await until_up(port)
        upload = asyncio.create_task(slow_upload(port, token, 0.2, limit=45))
        tricklers = [asyncio.create_task(trickle_headers(port, 0.2, limit=45)) for _ in range(20)]
        await asyncio.sleep(1.0)
        assert not upload.done()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        took = time.monotonic() - started
        assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
        assert took < 10, f"shutdown took {took:.1f} s"
        _, answer = await upload
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"Retry-After" in answer
        for seconds, _ in await asyncio.gather(*tricklers):
            assert seconds < 15
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
