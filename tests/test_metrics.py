"""/metrics: the database snapshot, its refresh, its failure modes, labels and content negotiation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from certmon.core.periods import current_month
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.core.sla import SLA_STATES
from certmon.jobs import snapshot as snapshot_job
from certmon.store.db import Queries
from certmon.telemetry import snapshot
from certmon.telemetry.conventions import WINDOWS
from certmon.web import appkeys
from certmon.web.app import create_app
from certmon.wiring import build_app, runtime_of, snapshot_parts
from tests.conftest import Api

BKK = ZoneInfo("Asia/Bangkok")
# Every test runs the service at this instant: incidents placed hours back stay in its Bangkok month.
NOW = datetime(2024, 3, 15, 14, 0, tzinfo=BKK)

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)  # what Prometheus 2.42 sends
BOUNDED_LABELS = {
    "objective", "kpi", "agency", "sector", "severity", "state", "window", "le", "part", "version", "service",
}  # fmt: skip
KPI = "notify"  # the built-in policy's KPI objective: the one-hour notification clock
REQUEST_LABELS = {"method", "route", "status", "source", "reason", "channel", "outcome"}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for f in parse_text(text) for s in f.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def scrape(api: Api, accept: str = "") -> tuple[str, str]:
    async with api.client.get(
        "/metrics", headers={**api.headers("metrics"), **({"Accept": accept} if accept else {})}
    ) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


async def record(api: Api, minutes_ago: float, notified_after: float | None = None, **fields: Any) -> int:
    detected = NOW - timedelta(minutes=minutes_ago)
    body = {"agency": "MOF", "title": "alert", "severity": "high", "category": "fraud/phishing", **fields}
    body["detected_at"] = detected.isoformat()
    if notified_after is not None:
        body["notified_at"] = (detected + timedelta(minutes=notified_after)).isoformat()
    status, created = await api.call("POST", "/api/v1/incidents", json=body)
    assert status == 201, created
    return int(created["id"])


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> Api:
    result: Api = await make_api(clock=lambda: NOW)
    return result


async def refresh(app: web.Application) -> bool:
    return await snapshot_job.refresh(runtime_of(app, lambda: NOW), NOW)


async def test_metrics_show_compliance_counts_and_open_clocks_of_the_current_month(api: Api) -> None:
    """Met, breached, at-risk and pending incidents of MOF appear in its counts, ratios and open clocks."""
    await record(api, 100, notified_after=10)  # met
    await record(api, 100, notified_after=30)  # met
    await record(api, 170, notified_after=90, severity="critical")  # breached, notified late
    await record(api, 150, severity="critical")  # breached, still not notified
    await record(api, 50)  # at risk: 45 of its 60 minutes are gone
    await record(api, 5, severity="low")  # pending
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])

    def count(window: str, severity: str, state: str) -> float | None:
        labels = {"window": window, "agency": "MOF", "sector": "government", "severity": severity, "state": state}
        return value(found, "certmon_sla_incidents", objective=KPI, **labels)

    for window in WINDOWS:
        assert (count(window, "high", "met"), count(window, "high", "at_risk")) == (2, 1)
        assert (count(window, "critical", "breached"), count(window, "critical", "met")) == (2, 0)
        assert (count(window, "low", "pending"), count(window, "low", "breached")) == (1, 0)
        assert count(window, "medium", "met") is None  # MOF had no medium incident
        assert count(window, "high", "paused") is None  # the one-hour clock never pauses: no such series
        assert value(found, "certmon_sla_compliance_ratio", objective=KPI, window=window) == 0.5
        agency = {"objective": KPI, "window": window, "agency": "MOF", "sector": "government"}
        assert value(found, "certmon_sla_agency_compliance_ratio", **agency) == 0.5
    assert value(found, "certmon_sla_target_ratio", objective=KPI) == 0.96
    open_clock = {"objective": KPI, "agency": "MOF", "sector": "government"}
    assert value(found, "certmon_sla_open_incidents", **open_clock, severity="critical", state="breached") == 1
    assert value(found, "certmon_sla_open_incidents", **open_clock, severity="high", state="at_risk") == 1
    assert value(found, "certmon_sla_open_incidents", **open_clock, severity="low", state="pending") == 1
    decided = {"objective": KPI, "sector": "government", "severity": "critical"}
    assert value(found, "certmon_sla_decided_incidents_total", **decided, state="breached") == 2
    assert value(found, "certmon_sla_decided_incidents_total", **decided, state="met") == 0


async def test_snapshot_figures_equal_the_sla_api_figures_of_the_month_by_sector(api: Api) -> None:
    """Summing the per-agency counts by sector gives exactly what GET /api/v1/sla reports for the month."""
    await api.agency("HOSP01", sector="public-health")
    for agency, minutes_ago, notified_after in (
        ("MOF", 120, 20), ("MOF", 130, 75), ("DGA", 90, None), ("HOSP01", 40, None), ("HOSP01", 100, 50),
    ):  # fmt: skip
        await record(api, minutes_ago, notified_after, agency=agency)
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])
    period = current_month(NOW, api.app[appkeys.POLICY].tz).label
    _, report = await api.call("GET", f"/api/v1/sla?period={period}&group_by=sector")
    for group in report["groups"]:
        for state in SLA_STATES:
            total = sum(
                v
                for (name, labels), v in found.items()
                if name == "certmon_sla_incidents"
                and {("objective", KPI), ("window", "month"), ("sector", group["key"]), ("state", state)} <= labels
            )
            assert total == group[state], (group["key"], state)
    assert value(found, "certmon_sla_compliance_ratio", objective=KPI, window="month") == report["compliance"]


async def event(api: Api, incident: int, kind: str, at: datetime, **fields: Any) -> None:
    body = {"type": kind, "at": at.isoformat(), **fields}
    status, answer = await api.call("POST", f"/api/v1/incidents/{incident}/events", json=body)
    assert status == 201, answer


async def every_objective_month(api: Api) -> None:
    """Incidents whose objectives' clocks are in every state, one of them started last month, one paused."""
    await api.agency("HOSP01", sector="public-health")
    mof = await record(api, 300, notified_after=10)  # every objective met
    await event(api, mof, "acknowledged", NOW - timedelta(minutes=260))
    await event(api, mof, "contained", NOW - timedelta(minutes=170))
    await record(api, 300, notified_after=90, agency="DGA", severity="critical")  # notified late, not acknowledged
    await record(api, 40, agency="HOSP01", severity="low")  # not notified yet
    paused = await record(api, 120, notified_after=15, severity="medium")
    await event(api, paused, "paused", NOW - timedelta(minutes=75), reason="waiting for the agency's firewall logs")
    # Detected on the last evening of February, notified on 1 March: its acknowledgement clock starts in March.
    february = datetime(2024, 2, 29, 23, 0, tzinfo=BKK)
    await record(api, (NOW - february).total_seconds() / 60, notified_after=11 * 60, agency="DGA")


async def test_every_objective_is_labelled_and_the_kpi_is_marked(api: Api) -> None:
    """Each objective of the policy has its info series (kpi="true" only for notify) and its target."""
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])
    policy = api.app[appkeys.POLICY]
    assert set(policy.objectives) == {"notify", "acknowledge", "contain", "coordinate"}
    for name in policy.objectives:
        kpi = "true" if name == KPI else "false"
        assert value(found, "certmon_sla_objective_info", objective=name, kpi=kpi) == 1
        assert value(found, "certmon_sla_target_ratio", objective=name) == 0.96


async def test_objectives_count_their_own_clocks_open_paused_and_decided(api: Api) -> None:
    """acknowledge and contain run from the notification: DGA's critical one is unacknowledged past its hour and
    its containment at risk; MOF's paused incident is paused for contain, which pauses, and breached for acknowledge,
    which does not; February's incident counts in March only for the objectives whose clock started in March."""
    await every_objective_month(api)
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])

    def opened(objective: str, agency: str, severity: str, state: str) -> float | None:
        sector = "government"
        labels = {"objective": objective, "agency": agency, "sector": sector, "severity": severity, "state": state}
        return value(found, "certmon_sla_open_incidents", **labels)

    assert opened("acknowledge", "DGA", "critical", "breached") == 1  # notified at 10:30, due 11:30
    assert opened("contain", "DGA", "critical", "at_risk") == 1  # 3.5 of its 4 hours gone
    assert opened("contain", "MOF", "medium", "paused") == 1
    assert opened("acknowledge", "MOF", "medium", "breached") == 1
    assert opened("acknowledge", "MOF", "medium", "paused") is None  # acknowledge never pauses: no such series
    assert opened(KPI, "DGA", "critical", "breached") is None  # notified late, but notified: its clock stopped

    def month(objective: str, agency: str, severity: str, state: str) -> float | None:
        labels = {"window": "month", "agency": agency, "sector": "government", "severity": severity}
        return value(found, "certmon_sla_incidents", objective=objective, **labels, state=state)

    assert month("acknowledge", "MOF", "high", "met") == 1
    assert month("acknowledge", "DGA", "high", "breached") == 1  # the February incident, acknowledged never
    assert month(KPI, "DGA", "high", "breached") is None  # its notification clock is February's
    assert month("contain", "MOF", "medium", "paused") == 1
    assert month("coordinate", "DGA", "high", "met") is None  # detection to notification: February's clock
    decided = {"objective": "acknowledge", "sector": "government", "severity": "critical", "state": "breached"}
    assert value(found, "certmon_sla_decided_incidents_total", **decided) == 1


async def test_every_objectives_figures_equal_the_sla_api_figures_by_sector_in_both_windows(api: Api) -> None:
    """For each objective, the per-agency counts summed by sector are what GET /api/v1/sla?objective= reports."""
    await every_objective_month(api)
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])
    policy = api.app[appkeys.POLICY]
    periods = {"month": current_month(NOW, policy.tz).label, "fiscal_year": "FY2567"}
    for objective in policy.objectives:
        for window, period in periods.items():
            status, report = await api.call("GET", f"/api/v1/sla?period={period}&group_by=sector&objective={objective}")
            assert status == 200 and report["objective"] == objective
            assert report["total"] > 0
            for group in report["groups"]:
                scope = {("objective", objective), ("window", window), ("sector", group["key"])}
                for state in SLA_STATES:
                    total = sum(
                        v
                        for (name, labels), v in found.items()
                        if name == "certmon_sla_incidents" and scope | {("state", state)} <= labels
                    )
                    assert total == group[state], (objective, window, group["key"], state)
            ratio = value(found, "certmon_sla_compliance_ratio", objective=objective, window=window)
            assert ratio == report["compliance"], (objective, window)


async def test_delay_of_a_paused_objective_leaves_the_pause_out(api: Api) -> None:
    """Contained three hours after notification with two of them paused: contain's delay is one hour."""
    incident = await record(api, 600, notified_after=20)
    notified = NOW - timedelta(minutes=580)
    await event(api, incident, "paused", notified + timedelta(minutes=30), reason="waiting for the agency's logs")
    await event(api, incident, "resumed", notified + timedelta(minutes=150))
    await event(api, incident, "contained", notified + timedelta(minutes=180))
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])

    def count(objective: str, le: str) -> float | None:
        return value(found, "certmon_sla_delay_seconds_bucket", objective=objective, severity="high", le=le)

    assert (count("contain", "2700.0"), count("contain", "3600.0")) == (0, 1)
    assert value(found, "certmon_sla_delay_seconds_sum", objective="contain", severity="high") == 3600
    assert value(found, "certmon_sla_delay_seconds_sum", objective=KPI, severity="high") == 20 * 60
    assert value(found, "certmon_sla_delay_seconds_count", objective="acknowledge", severity="high") == 0


async def test_delay_histogram_counts_stopped_clocks_in_cumulative_buckets(api: Api) -> None:
    """Delays of 10, 60 (exactly the target) and 70 minutes land in le=900, le=3600 and le=5400, cumulatively."""
    for minutes in (10, 60, 70):
        await record(api, 600, notified_after=minutes)
    await record(api, 30)  # running clock: not observed
    assert await refresh(api.app)
    found = samples((await scrape(api))[1])

    def bucket(le: str) -> float | None:
        return value(found, "certmon_sla_delay_seconds_bucket", objective=KPI, severity="high", le=le)

    assert [bucket(le) for le in ("300.0", "900.0", "1800.0", "3600.0", "5400.0", "86400.0", "+Inf")] == [
        0, 1, 1, 2, 3, 3, 3,
    ]  # fmt: skip
    assert value(found, "certmon_sla_delay_seconds_count", objective=KPI, severity="high") == 3
    assert value(found, "certmon_sla_delay_seconds_sum", objective=KPI, severity="high") == pytest.approx(140 * 60)
    assert value(found, "certmon_sla_delay_seconds_count", objective=KPI, severity="medium") == 0


async def test_scrapes_answer_from_the_last_snapshot_while_the_database_is_down(api: Api) -> None:
    """With the pool closed, /metrics still answers with the old figures and counts the failed refresh."""
    await record(api, 100, notified_after=10)
    assert await refresh(api.app)
    before = samples((await scrape(api))[1])
    await api.app[appkeys.POOL].close()
    assert not await refresh(api.app)
    after = samples((await scrape(api))[1])
    assert value(after, "certmon_snapshot_refresh_failures_total", part="database") == 1
    assert value(after, "certmon_sla_compliance_ratio", objective=KPI, window="fiscal_year") == 1.0
    last_success = "certmon_snapshot_last_success_timestamp_seconds"
    assert value(after, last_success) == value(before, last_success)
    age = value(after, "certmon_snapshot_age_seconds")
    assert age is not None and age >= 0


async def test_failing_part_keeps_its_figures_while_the_others_refresh(
    api: Api, aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    """A part whose SQL fails is counted and does not stop the SLA figures from updating."""
    broken = {"now": False}

    async def survey_like(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[snapshot.Family]:
        if broken["now"]:
            await conn.fetch("SELECT * FROM no_such_table")
        return [snapshot.Family("certmon_test_answers", "answers", ("survey",), [(("s1",), 7.0)])]

    parts = (*snapshot_parts(), ("survey_like", snapshot.gauges(survey_like)))
    app = create_app(settings, database_url=api.database_url, snapshot=snapshot.Snapshot(parts), clock=lambda: NOW)
    client = await aiohttp_client(app)
    await refresh(app)
    broken["now"] = True
    await record(api, 100, notified_after=10)
    assert not await refresh(app)
    async with client.get("/metrics", headers=api.headers("metrics")) as response:
        found = samples(await response.text())
    assert value(found, "certmon_snapshot_refresh_failures_total", part="survey_like") == 1
    assert value(found, "certmon_test_answers", survey="s1") == 7.0
    assert value(found, "certmon_sla_compliance_ratio", objective=KPI, window="fiscal_year") == 1.0


async def test_family_with_wrong_number_of_label_values_is_refused() -> None:
    """A part's family must give one value per label; otherwise it is rejected, not exposed broken."""
    with pytest.raises(ValueError, match="label values"):
        snapshot.gauge(snapshot.Family("certmon_x", "x", ("a", "b"), [(("only-one",), 1.0)]))
    with pytest.raises(ValueError, match="label name"):
        snapshot.gauge(snapshot.Family("certmon_x", "x", ("bad-label",), []))


async def test_prometheus_gets_openmetrics_and_plain_clients_get_text_format(api: Api) -> None:
    """Prometheus's Accept header gets valid OpenMetrics ending in # EOF; no Accept gets text format 0.0.4."""
    await record(api, 100, notified_after=10)
    assert await refresh(api.app)
    content_type, body = await scrape(api, PROMETHEUS_ACCEPT)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(body)}
    assert families["certmon_sla_delay_seconds"].type == "histogram"
    assert families["certmon_sla_decided_incidents"].type == "counter"
    assert families["certmon_sla_incidents"].type == "gauge"
    content_type, body = await scrape(api)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert {f.name for f in parse_text(body)} >= {"certmon_sla_incidents", "certmon_build_info", "process_cpu_seconds"}


async def test_prerendered_snapshot_is_byte_identical_to_prometheus_client_rendering(api: Api) -> None:
    """The fast renderer of the snapshot writes exactly what prometheus_client's encoders write."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    await record(api, 100, notified_after=10)
    await record(api, 20, agency="DGA", severity="low")
    assert await refresh(api.app)
    snap = api.app[appkeys.METRICS].snapshot
    text, openmetrics = snapshot.render(snap.metrics)

    class Fixed:
        def collect(self) -> list[Any]:
            return snap.metrics

    assert text == generate_latest(Fixed())  # type: ignore[arg-type]
    assert openmetrics + b"# EOF\n" == generate_openmetrics(Fixed())


async def test_every_label_is_bounded(api: Api) -> None:
    """certmon families carry only bounded labels (objective, codes, sector, severity, state, window...), no ids."""
    await record(api, 100, notified_after=10)
    await api.call("POST", "/api/v1/incidents/bulk", data=b'{"not": "an incident"}\n')
    assert await refresh(api.app)
    for family in parse_text((await scrape(api))[1]):
        if family.name.startswith("certmon_"):
            for sample in family.samples:
                assert set(sample.labels) <= BOUNDED_LABELS | REQUEST_LABELS, sample


async def test_ingested_and_rejected_incidents_are_counted_by_source(api: Api) -> None:
    """One incident by the API and a bulk file with one bad line show in the ingest counters."""
    await record(api, 100, notified_after=10, source="suricata", external_id="a-1")
    good = b'{"agency": "MOF", "title": "x", "severity": "low", "category": "fraud/phishing", "detected_at": "2021-08-01T00:00:00Z"}'  # noqa: E501
    await api.call("POST", "/api/v1/incidents/bulk", data=good + b"\n{}\n")
    found = samples((await scrape(api))[1])
    assert value(found, "certmon_incidents_ingested_total", source="suricata") == 1
    assert value(found, "certmon_incidents_ingested_total", source="bulk") == 1
    assert value(found, "certmon_incidents_rejected_total", source="bulk", reason="invalid") == 1


async def test_every_replica_exposes_the_same_snapshot(
    api: Api, aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    """Two processes on the same database render byte-identical figures, so a dashboard may read either."""
    await record(api, 100, notified_after=10)
    await record(api, 170, notified_after=90, agency="DGA")
    other: web.Application = build_app(settings, database_url=api.database_url, clock=lambda: NOW)
    await aiohttp_client(other)
    assert await refresh(api.app)
    assert await refresh(other)
    assert api.app[appkeys.METRICS].snapshot.text == other[appkeys.METRICS].snapshot.text


async def test_refresh_job_fills_the_snapshot_at_start_up(make_api: Callable[..., Any]) -> None:
    """With the scheduler on, the first refresh runs at start-up without waiting a whole interval."""
    api: Api = await make_api(scheduler_enabled=True, metrics_refresh_seconds=3600.0, clock=lambda: NOW)
    snap = api.app[appkeys.METRICS].snapshot
    for _ in range(100):
        if snap.last_success is not None:
            break
        await asyncio.sleep(0.05)
    found = samples((await scrape(api))[1])
    assert value(found, "certmon_sla_target_ratio", objective=KPI) == 0.96
    assert value(found, "certmon_snapshot_refresh_interval_seconds") == 3600.0
