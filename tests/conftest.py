"""Real PostgreSQL for every database test: CERTMON_TEST_DATABASE_URL's server, or an embedded one.

Migrations run once into a template database; each test gets its own copy, so tests never see each other's rows
and the application under test can use a real pool with many connections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from certmon.core.clock import Clock, utc_now
from certmon.core.policy import Policy, load_policy
from certmon.core.settings import Settings
from certmon.jobs.runtime import Runtime
from certmon.store import db, migrations
from certmon.store.tokens import create_token
from certmon.web import appkeys
from certmon.wiring import build_app, runtime_of

REPO = Path(__file__).resolve().parent.parent


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    configured = os.environ.get("CERTMON_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    directory = Path(tempfile.mkdtemp(prefix="certmon-test-pg-"))
    try:
        with db.embedded_server(directory) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    name = f"certmon_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def migrated_database(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A freshly migrated database, dropped afterwards."""
    name = f"certmon_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A freshly migrated database of this test's own."""
    async with migrated_database(server_url, template_database) as url:
        yield url


@pytest.fixture
async def empty_database_url(server_url: str) -> AsyncIterator[str]:
    """A database with no migrations applied, of this test's own."""
    name = f"certmon_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        scheduler_enabled=False,
        token_cache_seconds=0,
        parse_workers=0,  # a worker process per test app would cost a second each; one test covers that path
        log_format="json",
        db_timeout_seconds=5.0,
    )


@dataclass
class Api:
    """A client of a running certmon with one token per role (agency tokens for agencies MOF and DGA)."""

    client: TestClient[Any, Any]
    app: web.Application
    tokens: dict[str, str]
    database_url: str

    def runtime(self, now: datetime) -> Runtime:
        """What the scheduler hands the jobs of this app, on a clock stopped at now."""
        return runtime_of(self.app, lambda: now)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            body = await response.json(content_type=None) if response.content_length != 0 else None
            return response.status, body

    async def agency(self, code: str, sector: str = "government", **fields: Any) -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/api/v1/agencies", json={"code": code, "name": f"Agency {code}", "sector": sector, **fields}
        )
        assert status == 201, body
        return dict(body)


@pytest.fixture
def make_api(aiohttp_client: Callable[..., Any], database_url: str, settings: Settings) -> Callable[..., Any]:
    async def make(policy: Policy | None = None, clock: Clock = utc_now, **overrides: Any) -> Api:
        app = build_app(replace(settings, **overrides), policy=policy, database_url=database_url, clock=clock)
        client = await aiohttp_client(app)
        tokens = {}
        async with app[appkeys.POOL].acquire() as conn:
            q = db.Queries.load()
            for code in ("MOF", "DGA"):
                await conn.execute(
                    "INSERT INTO agencies (code, name, sector) VALUES ($1, $2, 'government') ON CONFLICT DO NOTHING",
                    code,
                    f"Agency {code}",
                )
            for role in ("admin", "analyst", "auditor", "metrics"):
                tokens[role] = await create_token(conn, q, f"test-{role}", role, None)
            tokens["agency"] = await create_token(conn, q, "test-agency-mof", "agency", "MOF")
        return Api(client, app, tokens, database_url)

    return make


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> Api:
    result: Api = await make_api()
    return result
