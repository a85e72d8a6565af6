from __future__ import annotations

from tests.conftest import Api


async def test_incident_round_trip(api: Api) -> None:
    """An analyst records an incident and reads it back with its SLA clock."""
    status, body = await api.call(
        "POST",
        "/api/v1/incidents",
        "analyst",
        json={
            "agency": "MOF",
            "title": "C2 beacon",
            "severity": "high",
            "category": "malicious-code/c2-server",
            "detected_at": "2021-08-02T09:00:00+07:00",
            "notified_at": "2021-08-02T09:40:00+07:00",
        },
    )
    assert status == 201, body
    assert body["sla"]["state"] == "met"
    status, report = await api.call("GET", "/api/v1/sla?period=FY2564&group_by=agency", "auditor")
    assert status == 200, report
    assert report["met"] == 1 and report["compliance"] == 1.0
