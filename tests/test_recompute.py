"""A policy change: the service is ready at once, says its figures are being recomputed until they are, refuses to
sign exports meanwhile, and ends with the figures a database built under the new policy has.

The recompute is held back deterministically: a transaction of the test locks some stale incidents, which every
batch skips, so the count of incidents left stops at exactly those until the test lets go.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from certmon.core.clocks import Clocks
from certmon.core.policy import Policy, load_policy
from certmon.core.recompute import Progress, recount_every
from certmon.core.settings import Settings
from certmon.jobs import monthly_exports
from certmon.store import db
from certmon.store.tokens import create_token
from certmon.web import appkeys
from certmon.web.console.messages import text
from certmon.wiring import build_app
from tests.conftest import REPO, Api, migrated_database
from tests.console import visitor

NOW = datetime(2024, 4, 15, 5, 0, tzinfo=UTC)  # March 2024 is over and can be exported
START = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
INCIDENTS = 2000
BATCH = 50
HELD = 5  # stale incidents the test keeps locked
SEVERITIES = ("critical", "high", "medium", "low")
GAUGE = re.compile(r"^certmon_recompute_remaining (\S+)$", re.MULTILINE)
CLOCKS = """
SELECT i.external_id, i.clock_start, i.at_risk_at, i.due_at, i.stopped_at, i.delay_seconds, i.policy_hash,
       c.objective, c.clock_start AS c_start, c.at_risk_at AS c_at_risk, c.due_at AS c_due, c.stopped_at AS c_stopped,
       c.delay_seconds AS c_delay, c.paused_seconds, c.paused_since
FROM incidents i JOIN incident_clocks c ON c.incident_id = i.id
ORDER BY i.external_id, c.objective
"""


def two_hour_policy(tmp_path: Path) -> Policy:
    """The shipped policy file with the KPI's target doubled: another clock fingerprint, other figures."""
    shipped = (REPO / "certmon" / "core" / "default_policy.toml").read_text(encoding="utf-8")
    kpi = 'stop = "notified"\ntarget_seconds = 3600\n'
    assert kpi in shipped
    path = tmp_path / "policy.toml"
    path.write_text(shipped.replace(kpi, 'stop = "notified"\ntarget_seconds = 7200\n', 1), encoding="utf-8")
    return load_policy(path)


def ndjson() -> str:
    """Incidents across March 2024, notified from minutes to hours after detection: the KPI's verdict depends on
    its target."""
    lines = []
    for n in range(INCIDENTS):
        detected = START + timedelta(minutes=20 * n)
        line: dict[str, Any] = {
            "agency": ("MOF", "DGA")[n % 2],
            "title": f"alert {n}",
            "severity": SEVERITIES[n % 4],
            "category": "fraud/phishing",
            "source": "recompute-test",
            "external_id": f"{n:05d}",
            "detected_at": detected.isoformat(),
            "notified_at": (detected + timedelta(minutes=15 + 7 * (n % 23))).isoformat(),
        }
        if n % 3:
            line["acknowledged_at"] = (detected + timedelta(minutes=30 + 11 * (n % 17))).isoformat()
        if n % 5 == 0:
            line["contained_at"] = (detected + timedelta(hours=2 + n % 40)).isoformat()
        lines.append(json.dumps(line))
    return "\n".join(lines)


async def bulk(api: Api) -> None:
    status, outcome = await api.call(
        "POST", "/api/v1/incidents/bulk", data=ndjson(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert status == 200 and outcome["accepted"] == INCIDENTS, outcome


@pytest.fixture
async def other_database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    """A second freshly migrated database, for the figures the new policy gives from the start."""
    async with migrated_database(server_url, template_database) as url:
        yield url


@pytest.fixture
def serve(aiohttp_client: Callable[..., Any], settings: Settings) -> Callable[..., Any]:
    """A served certmon on a database, under a policy, with a batch of BATCH; tokens are made for a new database."""

    async def make(url: str, policy: Policy | None = None, tokens: dict[str, str] | None = None) -> Api:
        app = build_app(replace(settings, recompute_batch=BATCH), policy=policy, database_url=url, clock=lambda: NOW)
        client = await aiohttp_client(app)
        if tokens is None:
            tokens = {}
            async with app[appkeys.POOL].acquire() as conn:
                for code in ("MOF", "DGA"):
                    await conn.execute(
                        "INSERT INTO agencies (code, name, sector) VALUES ($1, $2, 'government')",
                        code,
                        f"Agency {code}",
                    )
                for role in ("admin", "metrics"):
                    tokens[role] = await create_token(conn, db.Queries.load(), f"test-{role}", role, None)
        return Api(client, app, tokens, url)

    return make


async def remaining(api: Api) -> float:
    async with api.client.get("/metrics", headers=api.headers("metrics")) as response:
        found = GAUGE.search(await response.text())
    assert found is not None
    return float(found.group(1))


async def until_remaining(api: Api, value: int) -> None:
    """Until the gauge shows value; the recompute is held or finishing, so this is a wait, not a race."""
    for _ in range(1200):
        if await remaining(api) == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"certmon_recompute_remaining never reached {value}; it is {await remaining(api)}")


async def figures(api: Api, policy: Policy) -> list[Any]:
    """Every objective's figures of March, overall and by severity and agency, without the recompute's word."""
    found = []
    for objective in policy.objectives:
        for group_by in ("severity", "agency"):
            status, body = await api.call(
                "GET", f"/api/v1/sla?period=2024-03&objective={objective}&group_by={group_by}"
            )
            assert status == 200, body
            found.append({k: v for k, v in body.items() if k != "recomputing"})
    return found


async def stored_clocks(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(CLOCKS)]
    finally:
        await conn.close()


async def recompute_updates(url: str) -> int:
    """Incident rows written by the background recompute, as the audit trail recorded them."""
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT coalesce(sum(row_count), 0) FROM audit_entries"
            " WHERE actor = 'system:recompute' AND table_name = 'incidents' AND action = 'update'"
        )
        return count
    finally:
        await conn.close()


async def test_after_a_policy_change_the_service_is_ready_at_once_and_says_its_figures_are_being_recomputed(
    serve: Any, database_url: str, other_database_url: str, tmp_path: Path
) -> None:
    """Ready while stale; SLA, fiscal report, gauge and console say so; exports wait; then the new policy's figures."""
    before = await serve(database_url)
    await bulk(before)
    old_figures = await figures(before, load_policy(None))
    new_policy = two_hour_policy(tmp_path)
    holder = await asyncpg.connect(database_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.fetch("SELECT id FROM incidents ORDER BY id DESC LIMIT $1 FOR UPDATE", HELD)

        after = await serve(database_url, new_policy, before.tokens)
        async with after.client.get("/readyz") as response:
            assert response.status == 200
        await until_remaining(after, HELD)  # every incident but the held ones is recomputed; those wait

        status, sla = await after.call("GET", "/api/v1/sla?period=2024-03")
        assert status == 200 and sla["recomputing"] == {"remaining": HELD}
        status, fiscal = await after.call("GET", "/api/v1/reports/fiscal?fy=2567")
        assert status == 200 and fiscal["recomputing"] == {"remaining": HELD}
        async with after.client.post(
            "/api/v1/exports", json={"month": "2024-03"}, headers=after.headers("admin")
        ) as response:
            refused = await response.json(content_type=None)
            assert response.status == 409, refused
            assert response.headers["Retry-After"] == "30"
        assert refused["recomputing"] == {"remaining": HELD}
        assert "being recomputed" in refused["detail"]
        waited = await monthly_exports.run(after.runtime(NOW), NOW)
        assert waited is not None and waited[0] == [] and waited[1] is not None
        assert (await after.call("GET", "/api/v1/exports"))[1]["items"] == []
        async with visitor(after, "admin") as v:
            status, html, _ = await v.get("/sla")
        assert status == 200 and text("th", "sla.recomputing", n=HELD) in html

        await held.rollback()
    finally:
        await holder.close()
    await asyncio.wait_for(after.app[appkeys.RECOMPUTE].wait(), 60)

    assert await remaining(after) == 0
    status, sla = await after.call("GET", "/api/v1/sla?period=2024-03")
    assert status == 200 and sla["recomputing"] is None
    async with visitor(after, "admin") as v:
        _, html, _ = await v.get("/sla")
    assert text("th", "sla.recomputing", n=HELD) not in html
    assert await recompute_updates(database_url) == INCIDENTS

    fresh = await serve(other_database_url, new_policy)
    await bulk(fresh)
    assert await figures(after, new_policy) == await figures(fresh, new_policy)
    assert await figures(after, new_policy) != old_figures
    assert await stored_clocks(database_url) == await stored_clocks(other_database_url)
    status, exported = await after.call("POST", "/api/v1/exports", json={"month": "2024-03"})
    assert status == 201, exported


async def test_two_services_starting_together_recompute_each_incident_once(
    serve: Any, database_url: str, other_database_url: str, tmp_path: Path
) -> None:
    """Two replicas on one database share the batches: every incident is recomputed once, right, by one of them."""
    before = await serve(database_url)
    await bulk(before)
    new_policy = two_hour_policy(tmp_path)
    first, second = [await serve(database_url, new_policy, before.tokens) for _ in range(2)]
    for replica in (first, second):
        async with replica.client.get("/readyz") as response:
            assert response.status == 200
    await asyncio.wait_for(
        asyncio.gather(first.app[appkeys.RECOMPUTE].wait(), second.app[appkeys.RECOMPUTE].wait()), 60
    )
    assert await remaining(first) == await remaining(second) == 0
    assert await recompute_updates(database_url) == INCIDENTS
    fresh = await serve(other_database_url, new_policy)
    await bulk(fresh)
    assert await stored_clocks(database_url) == await stored_clocks(other_database_url)
    assert await figures(first, new_policy) == await figures(fresh, new_policy)


async def test_an_incident_written_under_the_previous_policy_holds_exports_back_until_it_is_recomputed(
    serve: Any, database_url: str, tmp_path: Path
) -> None:
    """A replica not restarted yet writes under the old policy: the export is refused, and that clock recomputed."""
    old = await serve(database_url)
    new = await serve(database_url, two_hour_policy(tmp_path), old.tokens)
    status, created = await old.call(
        "POST",
        "/api/v1/incidents",
        json={
            "agency": "MOF",
            "title": "written by a replica on the previous policy",
            "severity": "high",
            "category": "fraud/phishing",
            "detected_at": "2024-03-04T09:00:00+07:00",
            "notified_at": "2024-03-04T10:30:00+07:00",
        },
    )
    assert status == 201 and created["sla"]["state"] == "breached"
    assert new.app[appkeys.RECOMPUTE].status.remaining == 0  # counted at start, when nothing was stale

    status, refused = await new.call("POST", "/api/v1/exports", json={"month": "2024-03"})
    assert status == 409 and refused["recomputing"] == {"remaining": 1}
    await asyncio.wait_for(new.app[appkeys.RECOMPUTE].wait(), 60)
    status, incident = await new.call("GET", f"/api/v1/incidents/{created['id']}")
    assert status == 200 and incident["sla"]["state"] == "met"
    status, exported = await new.call("POST", "/api/v1/exports", json={"month": "2024-03"})
    assert status == 201, exported


def test_progress_is_told_at_most_every_ten_seconds() -> None:
    progress = Progress(100.0)
    assert [progress.due(t) for t in (101.0, 109.9, 110.0, 115.0, 120.5)] == [False, False, True, False, True]


async def test_certmon_recompute_brings_every_clock_in_line_in_the_foreground(
    serve: Any, database_url: str, tmp_path: Path
) -> None:
    """An operator's ``certmon recompute`` under the new policy file: every clock recomputed, as the operator."""
    before = await serve(database_url)
    await bulk(before)
    fingerprint = Clocks.of(two_hour_policy(tmp_path)).fingerprint  # and tmp_path/policy.toml, its file
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env |= {"CERTMON_DATABASE_URL": database_url, "CERTMON_POLICY": str(tmp_path / "policy.toml")}
    env["CERTMON_LOG_FORMAT"] = "json"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "certmon", "recompute", "--batch", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"recomputed the clocks of {INCIDENTS} incidents in ") and last.endswith("none is stale")
    started = [json.loads(line) for line in done.stderr.splitlines() if "clock recompute started" in line]
    assert [(e["incidents"], e["batch"]) for e in started] == [(INCIDENTS, 300)]
    conn = await asyncpg.connect(database_url)
    try:
        stale = await conn.fetchval("SELECT count(*) FROM incidents WHERE policy_hash <> $1", fingerprint)
        actors = await conn.fetch(
            "SELECT DISTINCT actor FROM audit_entries WHERE table_name = 'incidents' AND action = 'update'"
        )
    finally:
        await conn.close()
    assert stale == 0
    assert [r["actor"] for r in actors] == [f"cli:{getpass.getuser()}"]


def test_a_slow_recount_is_repeated_less_often() -> None:
    """Counting millions of stale incidents takes seconds: it stays a twentieth of the recompute's time at most."""
    assert recount_every(0.01) == 10.0
    assert recount_every(3.0) == 60.0
