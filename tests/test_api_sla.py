"""Period figures over HTTP: Bangkok period edges, grouping, exclusions, colours, policy choices."""

from __future__ import annotations

from typing import Any

from certmon.core.policy import Policy, SeverityPolicy
from certmon.store import incidents
from certmon.web import appkeys
from tests.conftest import Api


async def record(api: Api, detected: str, notified: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {
        "agency": "MOF",
        "title": "alert",
        "severity": "high",
        "category": "fraud/phishing",
        "detected_at": detected,
        **fields,
    }
    if notified:
        body["notified_at"] = notified
    status, created = await api.call("POST", "/api/v1/incidents", json=body)
    assert status == 201, created
    return dict(created)


async def test_incident_at_bangkok_midnight_of_october_first_belongs_to_the_next_fiscal_year(api: Api) -> None:
    """2021-09-30T17:30Z is 1 October 00:30 in Bangkok: FY2565, not FY2564 (DOMAIN.md's example)."""
    await record(api, "2021-09-30T17:30:00Z", "2021-09-30T17:45:00Z")
    _, fy64 = await api.call("GET", "/api/v1/sla?period=FY2564")
    _, fy65 = await api.call("GET", "/api/v1/sla?period=FY2565")
    _, q1 = await api.call("GET", "/api/v1/sla?period=FY2565-Q1")
    _, october = await api.call("GET", "/api/v1/sla?period=2021-10")
    assert (fy64["total"], fy65["total"], q1["total"], october["total"]) == (0, 1, 1, 1)
    assert fy65["period"] == {
        "label": "FY2565",
        "start": "2021-10-01T00:00:00+07:00",
        "end": "2022-10-01T00:00:00+07:00",
    }


async def test_month_is_cut_at_bangkok_midnight_not_utc(api: Api) -> None:
    """31 July 23:59 Bangkok is July; 1 August 00:00 Bangkok (17:00Z the day before) is August."""
    await record(api, "2021-07-31T16:59:00Z", "2021-07-31T17:10:00Z")
    await record(api, "2021-07-31T17:00:00Z", "2021-07-31T17:10:00Z")
    _, july = await api.call("GET", "/api/v1/sla?period=2021-07")
    _, august = await api.call("GET", "/api/v1/sla?period=2021-08")
    _, q4 = await api.call("GET", "/api/v1/sla?period=FY2564-Q4")
    assert (july["total"], august["total"], q4["total"]) == (1, 1, 2)


async def test_date_range_end_is_exclusive(api: Api) -> None:
    """2021-08-01..2021-08-16 holds the 15th but not the 16th."""
    await record(api, "2021-08-15T23:00:00+07:00", "2021-08-15T23:10:00+07:00")
    await record(api, "2021-08-16T00:00:00+07:00", "2021-08-16T00:10:00+07:00")
    _, body = await api.call("GET", "/api/v1/sla?period=2021-08-01..2021-08-16")
    assert body["total"] == 1


async def test_figures_add_up_and_exclusions_stay_out_of_the_ratio(api: Api) -> None:
    """met / (met + breached), excluded counted apart, pending kept out, colour from the relative shortfall."""
    for minute in range(0, 45, 5):  # nine met
        await record(api, f"2021-08-02T09:{minute:02d}:00+07:00", f"2021-08-02T09:{minute + 10:02d}:00+07:00")
    await record(api, "2021-08-02T09:00:00+07:00", "2021-08-02T11:00:00+07:00")  # one breached
    excluded = await record(api, "2021-08-03T09:00:00+07:00")  # would be breached
    await api.call("POST", f"/api/v1/incidents/{excluded['id']}/events", json={"type": "excluded", "reason": "test"})
    _, body = await api.call("GET", "/api/v1/sla?period=2021-08")
    assert (body["total"], body["met"], body["breached"], body["excluded"]) == (11, 9, 1, 1)
    assert body["compliance"] == 0.9
    assert body["target"] == 0.96
    assert abs(body["shortfall"] - 0.0625) < 1e-9
    assert body["status"] == "yellow"
    assert body["latency_seconds"]["max"] == 7200
    assert body["latency_seconds"]["p50"] == 600


async def test_nothing_decided_gives_null_compliance_and_status(api: Api) -> None:
    """An empty month has no ratio and no colour rather than 0 % red."""
    _, body = await api.call("GET", "/api/v1/sla?period=2021-08")
    assert (body["total"], body["compliance"], body["status"]) == (0, None, None)


async def test_group_by_agency_sector_severity_and_month(api: Api) -> None:
    """Groups split the same figures; their totals add up to the whole."""
    await api.agency("EGAT", sector="energy-utilities", cii=True)
    await record(api, "2021-08-02T09:00:00+07:00", "2021-08-02T09:10:00+07:00")
    await record(api, "2021-09-02T09:00:00+07:00", "2021-09-02T11:10:00+07:00", agency="EGAT", severity="critical")
    await record(api, "2021-09-03T09:00:00+07:00", "2021-09-03T09:10:00+07:00", agency="DGA", severity="low")
    expected = {
        "agency": {"DGA": 1, "EGAT": 1, "MOF": 1},
        "sector": {"energy-utilities": 1, "government": 2},
        "severity": {"critical": 1, "high": 1, "low": 1},
        "month": {"2021-08": 1, "2021-09": 2},
    }
    for group_by, totals in expected.items():
        _, body = await api.call("GET", f"/api/v1/sla?period=FY2564&group_by={group_by}")
        assert {g["key"]: g["total"] for g in body["groups"]} == totals
        assert sum(g["total"] for g in body["groups"]) == body["total"] == 3
    _, energy = await api.call("GET", "/api/v1/sla?period=FY2564&sector=energy-utilities")
    assert (energy["total"], energy["breached"], energy["status"]) == (1, 1, "red")
    _, critical = await api.call("GET", "/api/v1/sla?period=FY2564&severity=critical")
    assert critical["total"] == 1


async def test_bad_period_and_filters_are_422(api: Api) -> None:
    """Each bad query parameter is named in the problem."""
    for query, field in (
        ("", "period"),
        ("period=2021-13", "period"),
        ("period=FY2564-Q5", "period"),
        ("period=2021-08&group_by=planet", "group_by"),
        ("period=2021-08&sector=x", "sector"),
    ):
        status, problem = await api.call("GET", f"/api/v1/sla?{query}")
        assert status == 422, query
        assert problem["errors"][0]["field"] == field


async def test_seed_definition_starts_the_clock_at_analysis(make_api: Any) -> None:
    """Under the seed report's policy (analysed to notified) a late analysis does not count against the hour."""
    defaults = Policy()
    severities = {name: SeverityPolicy(start="analysed") for name in defaults.severities}
    api = await make_api(policy=Policy(severities=severities))
    created = await record(
        api, "2021-08-02T09:00:00+07:00", "2021-08-02T12:30:00+07:00", analysed_at="2021-08-02T12:00:00+07:00"
    )
    assert created["sla"]["state"] == "met"
    assert created["sla"]["clock_start"] == "2021-08-02T12:00:00+07:00"
    unanalysed = await record(api, "2021-08-02T09:00:00+07:00")
    assert unanalysed["sla"]["state"] == "no_clock"
    _, body = await api.call("GET", "/api/v1/sla?period=2021-08")
    assert (body["met"], body["no_clock"], body["compliance"]) == (1, 1, 1.0)


async def test_business_hours_calendar_moves_the_due_time_past_the_weekend(make_api: Any) -> None:
    """A medium alert on Friday 17:00 under a Mon-Fri 08:30-17:30 calendar is due Monday 09:00."""
    severities = {name: SeverityPolicy() for name in Policy().severities}
    severities["medium"] = SeverityPolicy(calendar="business")
    api = await make_api(policy=Policy(severities=severities))
    created = await record(api, "2021-08-06T17:00:00+07:00", "2021-08-09T08:50:00+07:00", severity="medium")
    assert created["sla"]["due_at"] == "2021-08-09T09:00:00+07:00"
    assert created["sla"]["state"] == "met"
    assert created["sla"]["elapsed_seconds"] == 1800 + 20 * 60


async def test_changed_policy_recomputes_stored_clocks(api: Api) -> None:
    """Incidents stored under one policy get their clocks recomputed when the service starts under another."""
    created = await record(api, "2021-08-02T09:00:00+07:00", "2021-08-02T10:30:00+07:00")
    assert created["sla"]["state"] == "breached"
    defaults = Policy()
    two_hours = {name: SeverityPolicy(target_seconds=7200) for name in defaults.severities}
    relaxed = Policy(severities=two_hours)
    async with api.app[appkeys.POOL].acquire() as conn:
        assert await incidents.recompute_stale(conn, api.app[appkeys.QUERIES], relaxed) == 1
        assert await incidents.recompute_stale(conn, api.app[appkeys.QUERIES], relaxed) == 0
        row = await conn.fetchrow("SELECT due_at, policy_hash FROM incidents WHERE id = $1", created["id"])
    assert row["due_at"].isoformat() == "2021-08-02T04:00:00+00:00"
    assert row["policy_hash"] == relaxed.clock_fingerprint()
