"""The dashboards and rules against a real Prometheus scraping certmon, in-process at a fixed instant with demo data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from certmon.core.periods import current_month
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.store import db, demo
from certmon.store.tokens import create_token
from certmon.wiring import build_app
from tests.external import require_program
from tests.test_dashboards import PROMETHEUS, dashboards, panels

RULES = PROMETHEUS / "certmon-rules.yaml"
AGENCY = "PROMTEST"  # the agency this test creates; the agency dashboard is checked for it
# What Grafana would put for its built-in interval variables, with a 1 s scrape interval.
BUILT_INS = {"__rate_interval": "30s", "__range": "2m", "__interval": "5s"}
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s*,\s*([a-zA-Z_]\w*)\s*\)")
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
METRIC = re.compile(r"\bcertmon_[a-z0-9_]+")
# The instant certmon works at: 14:00 in Bangkok on 15 March 2024, well inside a Bangkok month and in the past.
NOW = datetime(2024, 3, 15, 7, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(what: str, check: Callable[[], Awaitable[Any]], seconds: float = 40.0) -> Any:
    """Poll check until it returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


class Prometheus:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def api(self, path: str, **params: Any) -> Any:
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        return list(data["result"])

    async def query_range(self, expr: str, seconds: int) -> list[dict[str, Any]]:
        end = time.time()
        data = await self.api("query_range", query=expr, start=end - seconds, end=end, step=1)
        return list(data["result"])

    async def firing(self, alertname: str, agency: str) -> list[dict[str, Any]]:
        alerts = (await self.api("alerts"))["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == alertname and a["labels"].get("agency") == agency and a["state"] == "firing"
        ]


@contextlib.asynccontextmanager
async def process(args: list[str], log: Path) -> AsyncIterator[Path]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        yield log
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """The app, started with its jobs as `certmon serve` starts it, on a free port of 127.0.0.1; its host:port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()


async def ok(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def resolve_variables(prometheus: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Values for the dashboard's variables, as Grafana would pick them (the KPI for `objective`, its default); the
    test agency for `agency`."""
    values = dict(BUILT_INS)
    for variable in board.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable["type"]
        current = variable.get("current", {}).get("value")
        if kind == "datasource":
            continue
        if kind == "custom":
            values[name] = current or variable["query"].split(",")[0].strip()
            continue
        assert kind == "query", f"variable {name}: type {kind} is not substituted by this test"
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = LABEL_VALUES.fullmatch(query.strip())
        assert match, f"variable {name}: only label_values(metric, label) queries are substituted, got {query!r}"
        options = await prometheus.api(f"label/{match[2]}/values", **{"match[]": match[1]})
        assert options, f"variable {name}: {query} has no values"
        if current in ("$__all", ["$__all"]):
            values[name] = variable.get("allValue") or "|".join(options)
        elif name == "agency":
            values[name] = AGENCY
        else:
            values[name] = current if current in options else options[0]
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in values, f"unknown variable ${name} in {expr!r}"
        return values[name]

    return VARIABLE.sub(replace, expr)


def has_value(result: list[dict[str, Any]]) -> bool:
    """Some series holds a number that is not NaN (a panel of NaN shows nothing useful)."""
    for series in result:
        points = series.get("values") or [series["value"]]
        if any(not math.isnan(float(v)) for _, v in points):
            return True
    return False


async def check_dashboard(
    prometheus: Prometheus, board: dict[str, Any], overrides: dict[str, str] | None = None
) -> list[str]:
    """Every panel query, substituted, answered without error and with data; returns the problems."""
    problems = []
    values = await resolve_variables(prometheus, board) | (overrides or {})
    for panel in panels(board):
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], values)
            where = f"{board['title']} / {panel['title']} / {target['refId']} {overrides or ''}: {expr}"
            try:
                if target.get("instant"):
                    result = await prometheus.query(expr)
                else:
                    result = await prometheus.query_range(expr, 120)
            except AssertionError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if not has_value(result):
                problems.append(f"{where}: no data")
    return problems


async def record(session: aiohttp.ClientSession, url: str, token: str, **fields: Any) -> None:
    body = {"agency": AGENCY, "title": "test alert", "category": "fraud/phishing", "source": "test", **fields}
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{url}/api/v1/incidents", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()


async def test_every_dashboard_panel_has_data_and_breached_alert_fires_on_a_real_prometheus(
    database_url: str, conn: asyncpg.Connection, policy: Policy, settings: Settings, tmp_path: Path
) -> None:
    """certmon with the demo data at NOW + Prometheus with the rules: alerts fire for a new breached incident."""
    prometheus_program = require_program("prometheus")
    assert NOW - current_month(NOW, policy.tz).start > timedelta(hours=3)  # the test's incidents fall in NOW's month
    q = db.Queries.load()
    assert await demo.load(conn, q, policy, NOW) > 0  # before the service starts, as `certmon demo` loads it
    admin = await create_token(conn, q, "prometheus-test-admin", "admin", None)
    token_file = tmp_path / "metrics-token"
    token_file.write_text(await create_token(conn, q, "prometheus-test-scraper", "metrics", None) + "\n")
    app = build_app(
        replace(settings, scheduler_enabled=True, metrics_refresh_seconds=1.0),
        policy=policy,
        database_url=database_url,
        clock=lambda: NOW,
    )
    prometheus_port = free_port()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        serving(app) as certmon_address,
    ):
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "certmon",
                    "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                    "static_configs": [{"targets": [certmon_address]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
        prometheus_args = [
            prometheus_program,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ]
        async with process(prometheus_args, tmp_path / "prometheus.log") as prometheus_log:
            prometheus = Prometheus(session, f"http://127.0.0.1:{prometheus_port}")
            try:
                await run_checks(session, f"http://{certmon_address}", prometheus, admin)
            except BaseException:
                text = await asyncio.to_thread(prometheus_log.read_text, errors="replace")
                sys.stderr.write(f"--- {prometheus_log.name}\n{text[-6000:]}\n")
                raise


async def run_checks(session: aiohttp.ClientSession, certmon_url: str, prometheus: Prometheus, admin: str) -> None:
    await until("certmon to answer", lambda: ok(session, f"{certmon_url}/healthz"))
    await until("Prometheus to be ready", lambda: ok(session, f"{prometheus.url}/-/ready"))
    # A first scrape before the new incidents, so that their decisions show as an increase.
    await until(
        "a scrape of the decided-incident counts", lambda: prometheus.query("certmon_sla_decided_incidents_total")
    )

    headers = {"Authorization": f"Bearer {admin}"}
    agency = {"code": AGENCY, "name": "Prometheus test agency", "sector": "public-health"}
    async with session.post(f"{certmon_url}/api/v1/agencies", json=agency, headers=headers) as response:
        assert response.status == 201, await response.text()
    await record(session, certmon_url, admin, severity="critical", detected_at=(NOW - timedelta(hours=2)).isoformat())
    await record(session, certmon_url, admin, severity="high", detected_at=(NOW - timedelta(minutes=50)).isoformat())
    # Every objective's clock of this one stopped in time.
    met, minutes = NOW - timedelta(minutes=30), timedelta(minutes=1)
    await record(
        session, certmon_url, admin, severity="high", detected_at=met.isoformat(),
        notified_at=(met + 12 * minutes).isoformat(), acknowledged_at=(met + 20 * minutes).isoformat(),
        contained_at=(met + 25 * minutes).isoformat(),
    )  # fmt: skip
    # Notified in time, not acknowledged for three hours, its containment at risk.
    waiting = NOW - timedelta(minutes=200)
    await record(
        session, certmon_url, admin, severity="critical", detected_at=waiting.isoformat(),
        notified_at=(waiting + timedelta(minutes=10)).isoformat(),
    )  # fmt: skip

    (breached,) = await until(
        "CertmonIncidentBreached for the test agency", lambda: prometheus.firing("CertmonIncidentBreached", AGENCY)
    )
    assert (breached["labels"]["severity"], breached["labels"]["objective"]) == ("critical", "notify")
    assert breached["annotations"]["summary"] == f"1 critical incident(s) of {AGENCY} breached the SLA"
    (at_risk,) = await until(
        "CertmonIncidentAtRisk for the test agency", lambda: prometheus.firing("CertmonIncidentAtRisk", AGENCY)
    )
    assert at_risk["labels"]["severity"] == "high"
    # The burn-rate series need an increase of decisions between two scrapes.
    await until("the 30-minute error ratio", lambda: prometheus.query("certmon:sla_errors:ratio_rate30m"))
    await until("the sector ratios of this month", lambda: prometheus.query(
        f'certmon:sla_compliance_by_agency:ratio{{agency="{AGENCY}",window="month"}}'
    ))  # fmt: skip

    groups = (await prometheus.api("rules"))["groups"]
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert sum(len(g["rules"]) for g in groups) > 0 and broken == []

    known = set(await prometheus.api("label/__name__/values"))
    objectives = set(await prometheus.api("label/objective/values", **{"match[]": "certmon_sla_objective_info"}))
    assert objectives == {"notify", "acknowledge", "contain", "coordinate"}
    problems: list[str] = []
    checked = []
    for name, board in dashboards().items():
        referenced = set(METRIC.findall(json.dumps(board)))
        if referenced and not referenced & known:
            # Families of a feature this build does not have (yet): nothing to check the dashboard against.
            sys.stderr.write(f"{name}: none of {sorted(referenced)} is exposed; not checked\n")
            continue
        problems += await check_dashboard(prometheus, board)
        checked.append(name)
        if any(v["name"] == "objective" for v in board.get("templating", {}).get("list", [])):
            # The panels must work for every objective the policy has, not only for the KPI they default to.
            for objective in objectives - {"notify"}:
                problems += await check_dashboard(prometheus, board, {"objective": objective})
                checked.append(f"{name} ({objective})")
    assert {"sla-overview.json", "sla-agency.json", "sla-overview.json (acknowledge)"} <= set(checked)
    assert problems == [], "\n".join(problems)

    by_objective = await prometheus.query('certmon:sla_compliance:ratio{window="month"}')
    assert {series["metric"]["objective"] for series in by_objective} == objectives
