"""The certmon command as an operator runs it: tokens, migrations, configuration errors, serve and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from certmon.core.models import IncidentIn
from certmon.core.policy import Policy
from certmon.core.settings import Settings, SettingsError
from certmon.store import incidents
from certmon.store.db import Queries


def certmon(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certmon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env.update(values)
    env["CERTMON_LOG_FORMAT"] = "json"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_token_create_list_revoke(database_url: str) -> None:
    """A token printed on the last line works for listing, and revoking it marks it revoked."""
    env = environment(CERTMON_DATABASE_URL=database_url)
    created = certmon("token", "create", "--role", "auditor", "--name", "oversight", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("certmon_") and len(token) > 40
    listed = certmon("token", "list", env=env)
    assert "oversight" in listed.stdout and "auditor" in listed.stdout
    assert token not in listed.stdout, "tokens are stored hashed and never shown again"
    assert certmon("token", "revoke", "oversight", env=env).returncode == 0
    again = certmon("token", "revoke", "oversight", env=env)
    assert again.returncode == 1 and "no active token" in again.stderr
    duplicate = certmon("token", "create", "--role", "admin", "--name", "oversight", env=env)
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr


def test_agency_token_needs_a_known_agency(database_url: str) -> None:
    """--role agency without --agency, or with an unknown one, is refused with a clear message."""
    env = environment(CERTMON_DATABASE_URL=database_url)
    missing = certmon("token", "create", "--role", "agency", env=env)
    assert missing.returncode == 1 and "agency" in missing.stderr
    unknown = certmon("token", "create", "--role", "agency", "--agency", "NOPE", env=env)
    assert unknown.returncode == 1 and "unknown agency" in unknown.stderr


def test_bad_setting_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    """A bad CERTMON_* value stops the command with a message that names the variable."""
    for name, value in (
        ("CERTMON_PORT", "eighty"),
        ("CERTMON_DATABASE_URL", "mysql://x"),
        ("CERTMON_POLICY", "/nope.toml"),
    ):
        result = certmon("migrate", env=environment(**{name: value}))
        assert result.returncode == 2
        assert name in result.stderr


def test_bad_policy_file_names_the_key(tmp_path: Path) -> None:
    """A policy TOML with a bad value stops start-up and names the key."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[severities.high]\ntarget_seconds = -5\n")
    result = certmon("migrate", env=environment(CERTMON_POLICY=str(policy)))
    assert result.returncode == 2
    assert "severities.high.target_seconds" in result.stderr


def test_settings_read_from_the_environment() -> None:
    """Every variable is parsed into its typed field; errors name the variable."""
    settings = Settings.from_env({"CERTMON_PORT": "9000", "CERTMON_SCHEDULER": "off", "CERTMON_DB_POOL_MAX": "4"})
    assert (settings.port, settings.scheduler_enabled, settings.pool_max) == (9000, False, 4)
    with pytest.raises(SettingsError, match="CERTMON_METRICS_REFRESH_SECONDS"):
        Settings.from_env({"CERTMON_METRICS_REFRESH_SECONDS": "0"})


@pytest.mark.parametrize(("raw", "reason"), [("soon", "could not convert"), ("-1", "must not be negative")])
def test_a_bad_token_cache_time_is_a_settings_error_naming_the_variable(raw: str, reason: str) -> None:
    """CERTMON_TOKEN_CACHE_SECONDS must be a number of seconds, zero (no cache) or more."""
    with pytest.raises(SettingsError, match=f"CERTMON_TOKEN_CACHE_SECONDS='{raw}': {reason}"):
        Settings.from_env({"CERTMON_TOKEN_CACHE_SECONDS": raw})
    assert Settings.from_env({"CERTMON_TOKEN_CACHE_SECONDS": "0"}).token_cache_seconds == 0


def test_a_negative_token_cache_time_stops_start_up() -> None:
    """The command refuses to start with exit 2 and a message naming the variable."""
    result = certmon("migrate", env=environment(CERTMON_TOKEN_CACHE_SECONDS="-1"))
    assert result.returncode == 2
    assert "configuration error: CERTMON_TOKEN_CACHE_SECONDS='-1': must not be negative" in result.stderr


def test_serve_on_the_embedded_database_while_tokens_are_created(tmp_path: Path) -> None:
    """With no database URL, serve starts an embedded PostgreSQL; the CLI joins it; SIGTERM exits 0 and stops it."""
    env = environment(CERTMON_DATA_DIR=str(tmp_path / "data"), CERTMON_SCHEDULER="off")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "certmon", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.5)
        created = certmon("token", "create", "--role", "admin", "--name", "ops", env=env)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        status, body = get(f"http://127.0.0.1:{port}/api/v1/agencies", token)
        assert (status, body) == (200, {"items": []})
        assert get(f"http://127.0.0.1:{port}/api/v1/agencies")[0] == 401
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200, "the CLI leaving must not stop the server's database"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    request_lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{") and '"request"' in line]
    assert any(
        line["route"] == "/api/v1/agencies" and line["token"] == "ops" and line["status"] == 200
        for line in request_lines
    )
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists(), "the embedded database stopped with the service"


def test_a_bad_ingest_mapping_stops_start_up(tmp_path: Path) -> None:
    """A mapping TOML with a bad value stops start-up with exit 2 and names the key."""
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[eve.severities]\n"1" = "urgent"\n')
    result = certmon("serve", env=environment(CERTMON_INGEST_MAPPING=str(mapping)))
    assert result.returncode == 2
    assert "configuration error: ingest mapping eve.severities.1: 'urgent'" in result.stderr


def test_queue_lists_open_clocks_soonest_due_first(database_url: str) -> None:
    """The night shift's terminal view: the breached clock on top with negative minutes, the fresh one later."""
    at = datetime(2024, 3, 15, 7, 0, tzinfo=UTC)

    async def fill() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            q = Queries.load()
            await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Finance', 'government')")
            for minutes, title in ((10, "fresh alert"), (90, "late alert")):
                data = IncidentIn(
                    agency="MOF",
                    title=title,
                    severity="high",
                    category="fraud/phishing",
                    detected_at=at - timedelta(minutes=minutes),
                )
                await incidents.create(conn, q, Policy(), data, "test")
        finally:
            await conn.close()

    asyncio.run(fill())
    env = environment(CERTMON_DATABASE_URL=database_url, COLUMNS="200")
    result = certmon("queue", "--objective", "notify", "--at", at.isoformat(), env=env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "alert" in line]
    assert ["late alert" in lines[0], "fresh alert" in lines[1]] == [True, True]
    assert " -30 " in lines[0] and "breached" in lines[0]
    assert " 50 " in lines[1] and "pending" in lines[1]
