"""Every objective's clock over HTTP: figures per objective, pauses with a reason, the agency's own side, and
stored clocks brought in line with a changed policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from certmon.core.policy import Policy
from certmon.store import incidents
from certmon.web import appkeys
from tests.conftest import Api

BKK = ZoneInfo("Asia/Bangkok")
NOW = datetime(2024, 3, 15, 7, 0, tzinfo=UTC)  # 14:00 Bangkok, a Friday
T0 = NOW - timedelta(days=2)  # 13 March, 14:00 Bangkok


def at(offset: timedelta) -> str:
    """An instant as answers write it: in Bangkok time."""
    return (T0 + offset).astimezone(BKK).isoformat()


async def record(api: Api, **fields: Any) -> dict[str, Any]:
    body = {
        "agency": "MOF",
        "title": "C2 beacon",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": at(timedelta(0)),
        **fields,
    }
    status, created = await api.call("POST", "/api/v1/incidents", json=body)
    assert status == 201, created
    return dict(created)


async def event(api: Api, incident: int, role: str = "analyst", **body: Any) -> tuple[int, Any]:
    return await api.call("POST", f"/api/v1/incidents/{incident}/events", role=role, json=body)


async def test_every_incident_carries_every_objective_beside_the_kpi_fields(make_api: Any) -> None:
    """The top-level sla block stays the KPI's; objectives holds notify, acknowledge, contain and coordinate."""
    api = await make_api(clock=lambda: NOW)
    created = await record(
        api,
        notified_at=at(timedelta(minutes=20)),
        acknowledged_at=at(timedelta(minutes=50)),
    )
    objectives = created["objectives"]
    assert list(objectives) == ["notify", "acknowledge", "contain", "coordinate"]
    assert objectives["notify"]["state"] == created["sla"]["state"] == "met"
    assert objectives["notify"]["delay_seconds"] == 1200
    assert objectives["notify"]["due_at"] == created["sla"]["due_at"]
    assert objectives["acknowledge"] == {
        "state": "met",
        "clock_start": at(timedelta(minutes=20)),
        "due_at": at(timedelta(minutes=80)),
        "stopped_at": at(timedelta(minutes=50)),
        "delay_seconds": 1800.0,
        "paused_seconds": 0.0,
        "elapsed_seconds": 1800.0,
    }
    # contain started at the notification and, 2 days on, is past its 8-hour target for a high incident
    assert objectives["contain"]["state"] == "breached"
    assert objectives["contain"]["due_at"] == at(timedelta(minutes=20, hours=8))
    # 6 business hours from Wednesday 14:00 Bangkok: 3.5 h that day, 2.5 h from Thursday 08:30
    assert objectives["coordinate"]["state"] == "met"
    assert objectives["coordinate"]["due_at"] == "2024-03-14T11:00:00+07:00"


async def test_sla_figures_per_objective_and_the_default_stays_the_one_hour_kpi(make_api: Any) -> None:
    """?objective=acknowledge counts the agencies' acknowledgements; without it the answer is the notify KPI."""
    api = await make_api(clock=lambda: NOW)
    await record(api, notified_at=at(timedelta(minutes=10)), acknowledged_at=at(timedelta(minutes=40)))
    await record(api, notified_at=at(timedelta(minutes=30)), acknowledged_at=at(timedelta(hours=3)))
    await record(api, notified_at=at(timedelta(hours=2)))  # never acknowledged: breached by now
    await record(api)  # never notified: its acknowledgement clock has not started
    _, kpi = await api.call("GET", "/api/v1/sla?period=2024-03")
    _, notify = await api.call("GET", "/api/v1/sla?period=2024-03&objective=notify")
    _, ack = await api.call("GET", "/api/v1/sla?period=2024-03&objective=acknowledge&group_by=agency")
    assert kpi["objective"] == "notify"
    assert (kpi["met"], kpi["breached"], kpi["compliance"]) == (2, 2, 0.5)
    assert {k: v for k, v in kpi.items() if k != "groups"} == {k: v for k, v in notify.items() if k != "groups"}
    assert ack["objective"] == "acknowledge"
    assert (ack["total"], ack["met"], ack["breached"], ack["no_clock"]) == (4, 1, 2, 1)
    assert ack["latency_seconds"]["max"] == 9000.0
    assert [(g["key"], g["met"], g["breached"]) for g in ack["groups"]] == [("MOF", 1, 2)]


async def test_an_unknown_objective_is_a_422_naming_it(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/sla?period=2024-03&objective=resolve")
    assert status == 422
    assert body["errors"][0]["field"] == "objective"
    assert "notify" in body["errors"][0]["message"]


async def test_a_pause_leaves_the_contain_delay_and_shows_as_paused_seconds(make_api: Any) -> None:
    """Notified, paused an hour later while the agency gathers logs, resumed two hours on, contained at 5 h:
    3 hours count against containment, 2 are paused; the KPI and acknowledge clocks do not pause."""
    moments = iter([T0 + timedelta(hours=4), T0 + timedelta(hours=6)])
    clock_now = {"value": T0 + timedelta(hours=2)}
    api = await make_api(clock=lambda: clock_now["value"])
    created = await record(api, notified_at=at(timedelta(minutes=10)))
    incident = created["id"]
    status, body = await event(api, incident, type="paused", at=at(timedelta(hours=1, minutes=10)))
    assert status == 422 and body["errors"][0]["field"] == "reason"
    status, paused = await event(
        api, incident, type="paused", at=at(timedelta(hours=1, minutes=10)), reason="waiting for the agency's logs"
    )
    assert status == 201, paused
    contain = paused["objectives"]["contain"]
    assert (contain["state"], contain["due_at"]) == ("paused", None)
    assert contain["paused_seconds"] == 50 * 60  # the pause runs until now (2 h after detection)
    assert contain["elapsed_seconds"] == 3600  # frozen at the pause
    assert paused["objectives"]["acknowledge"]["due_at"] == at(timedelta(minutes=70))  # does not pause
    _, figures = await api.call("GET", "/api/v1/sla?period=2024-03&objective=contain")
    assert figures["paused"] == 1
    status, again = await event(api, incident, type="paused", reason="still waiting")
    assert status == 409, again

    clock_now["value"] = next(moments)
    status, resumed = await event(api, incident, type="resumed", at=at(timedelta(hours=3, minutes=10)))
    assert status == 201, resumed
    assert resumed["objectives"]["contain"]["due_at"] == at(timedelta(hours=10, minutes=10))  # 8 h + 2 h paused
    clock_now["value"] = next(moments)
    _, contained = await event(api, incident, type="contained", at=at(timedelta(hours=5, minutes=10)))
    contain = contained["objectives"]["contain"]
    assert (contain["state"], contain["delay_seconds"], contain["paused_seconds"]) == ("met", 3 * 3600.0, 2 * 3600.0)
    timeline = [(e["type"], e["reason"], e["pause"] is not None) for e in contained["timeline"] if e["id"]]
    assert timeline == [
        ("paused", "waiting for the agency's logs", True),
        ("resumed", None, True),
        ("contained", None, False),
    ]


async def test_a_pause_is_corrected_with_a_reason_and_the_clock_follows(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    incident = (await record(api, notified_at=at(timedelta(0))))["id"]
    await event(api, incident, type="paused", at=at(timedelta(hours=1)), reason="agency asked to wait")
    await event(api, incident, type="resumed", at=at(timedelta(hours=2)))
    status, body = await event(api, incident, type="correction", milestone="resumed", at=at(timedelta(hours=4)))
    assert status == 422 and body["errors"][0]["field"] == "reason"
    status, corrected = await event(
        api,
        incident,
        type="correction",
        milestone="resumed",
        at=at(timedelta(hours=4)),
        reason="the agency's logs arrived at 18:00, not 16:00",
    )
    assert status == 201, corrected
    assert corrected["objectives"]["contain"]["due_at"] == at(timedelta(hours=11))
    assert corrected["objectives"]["contain"]["paused_seconds"] == 3 * 3600
    last = corrected["timeline"][-1]
    assert (last["type"], last["milestone"], last["previous_at"]) == ("correction", "resumed", at(timedelta(hours=2)))
    status, body = await event(
        api, incident, type="correction", milestone="paused", pause=999, at=at(timedelta(hours=1)), reason="typo"
    )
    assert status == 422 and body["errors"][0]["field"] == "pause"
    status, _ = await event(api, incident, type="resumed")
    assert status == 409  # not paused


async def test_an_agency_records_its_own_side_with_its_token_as_actor(make_api: Any) -> None:
    """MOF's token acknowledges, contains and comments on MOF's incident; DGA's incident stays invisible, and the
    CERT's own milestones and exclusions are not the agency's to record."""
    api = await make_api(clock=lambda: NOW)
    ours = (await record(api, notified_at=at(timedelta(minutes=5))))["id"]
    theirs = (await record(api, agency="DGA", notified_at=at(timedelta(minutes=5))))["id"]
    status, acked = await event(api, ours, role="agency", type="acknowledged", at=at(timedelta(minutes=25)))
    assert status == 201, acked
    assert acked["acknowledged_at"] == at(timedelta(minutes=25))
    assert acked["objectives"]["acknowledge"]["state"] == "met"
    assert acked["timeline"][-1]["actor"] == "test-agency-mof"
    for body in ({"type": "contained"}, {"type": "comment", "note": "isolated the web server"}, {"type": "resolved"}):
        status, answer = await event(api, ours, role="agency", **body)
        assert status == 201, answer
    status, _ = await event(api, theirs, role="agency", type="acknowledged")
    assert status == 404
    for forbidden in (
        {"type": "notified"},
        {"type": "excluded", "reason": "not us"},
        {"type": "paused", "reason": "x"},
    ):
        status, answer = await event(api, ours, role="agency", **forbidden)
        assert status == 403, answer
    status, _ = await event(api, ours, role="auditor", type="comment", note="read-only role")
    assert status == 403


async def test_bulk_incidents_get_every_objective_clock(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    lines = [
        {
            "agency": "MOF",
            "title": f"alert {n}",
            "severity": "critical",
            "category": "fraud/phishing",
            "source": "bulk-test",
            "external_id": str(n),
            "detected_at": at(timedelta(minutes=n)),
            "notified_at": at(timedelta(minutes=n + 30)),
            "acknowledged_at": at(timedelta(minutes=n + 30 + 20 * n)),
        }
        for n in range(1, 5)
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    status, outcome = await api.call(
        "POST", "/api/v1/incidents/bulk", data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert status == 200 and outcome["accepted"] == 4, outcome
    _, ack = await api.call("GET", "/api/v1/sla?period=2024-03&objective=acknowledge")
    assert (ack["met"], ack["breached"]) == (3, 1)  # 20, 40 min are in time; 60 min is too (<=), 80 is not
    _, page = await api.call("GET", "/api/v1/incidents?limit=10")
    delays = sorted(item["objectives"]["acknowledge"]["delay_seconds"] for item in page["items"])
    assert delays == [1200.0, 2400.0, 3600.0, 4800.0]


async def test_a_changed_policy_recomputes_every_objective_of_stored_incidents(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    incident = (await record(api, notified_at=at(timedelta(0))))["id"]
    data = Policy().model_dump()
    contain = {**data["objectives"]["contain"], "target_seconds": 3600, "severities": {}}
    faster = Policy.model_validate({**data, "objectives": {**data["objectives"], "contain": contain}})
    async with api.app[appkeys.POOL].acquire() as conn:
        q = api.app[appkeys.QUERIES]
        assert await incidents.recompute_stale(conn, q, faster) == 1
        clocks = (await incidents.clocks_for(conn, q, [incident]))[incident]
    assert clocks["contain"]["due_at"] == T0 + timedelta(hours=1)
    assert clocks["notify"]["due_at"] == T0 + timedelta(hours=1)
