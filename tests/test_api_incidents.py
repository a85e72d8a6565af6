"""Incidents over HTTP: validation, idempotency, timelines, corrections, exclusions, listing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certmon.web import appkeys
from tests.conftest import Api

DETECTED = "2021-08-02T09:00:00+07:00"


def incident(**fields: Any) -> dict[str, Any]:
    return {
        "agency": "MOF",
        "title": "C2 beacon from finance workstation",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": DETECTED,
        **fields,
    }


async def test_incident_notified_within_the_hour_is_met(api: Api) -> None:
    """An incident notified 40 minutes after detection is stored with a met SLA and a 40-minute delay."""
    status, body = await api.call(
        "POST", "/api/v1/incidents", "analyst", json=incident(notified_at="2021-08-02T09:40:00+07:00", tlp="TLP:AMBER")
    )
    assert status == 201, body
    assert body["sla"]["state"] == "met"
    assert body["sla"]["elapsed_seconds"] == 2400
    assert datetime.fromisoformat(body["sla"]["due_at"]) == datetime.fromisoformat("2021-08-02T10:00:00+07:00")
    assert body["created_by"] == "test-analyst"


async def test_incident_never_notified_is_breached_after_its_due_time(api: Api) -> None:
    """An old incident without notification is breached; a fresh one is pending."""
    _, old = await api.call("POST", "/api/v1/incidents", json=incident())
    assert old["sla"]["state"] == "breached"
    fresh_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    _, fresh = await api.call("POST", "/api/v1/incidents", json=incident(detected_at=fresh_at))
    assert fresh["sla"]["state"] == "pending"
    risky_at = (datetime.now(UTC) - timedelta(minutes=50)).isoformat()
    _, risky = await api.call("POST", "/api/v1/incidents", json=incident(detected_at=risky_at))
    assert risky["sla"]["state"] == "at_risk"


async def test_same_source_and_external_id_returns_the_existing_incident(api: Api) -> None:
    """Posting the same alert twice gives 201 then 200 with the same id, and one row."""
    body = incident(source="suricata", external_id="flow-1")
    first_status, first = await api.call("POST", "/api/v1/incidents", json=body)
    second_status, second = await api.call("POST", "/api/v1/incidents", json=body)
    assert (first_status, second_status) == (201, 200)
    assert first["id"] == second["id"]
    _, page = await api.call("GET", "/api/v1/incidents")
    assert len(page["items"]) == 1


async def test_same_key_with_a_different_body_is_a_conflict(api: Api) -> None:
    """A second body under an existing key is refused with 409, not merged, naming the key and the stored incident."""
    _, stored = await api.call("POST", "/api/v1/incidents", json=incident(source="suricata", external_id="flow-1"))
    status, body = await api.call(
        "POST", "/api/v1/incidents", json=incident(source="suricata", external_id="flow-1", title="other")
    )
    assert status == 409
    assert "different body" in body["detail"]
    assert body["detail"] == "source 'suricata' external_id 'flow-1' exists with a different body"
    assert body["incident_id"] == stored["id"]


async def test_same_instant_in_another_offset_is_the_same_body(api: Api) -> None:
    """09:00+07:00 and 02:00Z are one instant, so the repeat is idempotent rather than a conflict."""
    await api.call("POST", "/api/v1/incidents", json=incident(external_id="x"))
    status, _ = await api.call(
        "POST", "/api/v1/incidents", json=incident(external_id="x", detected_at="2021-08-02T02:00:00Z")
    )
    assert status == 200


async def test_invalid_fields_get_422_naming_the_field(api: Api) -> None:
    """Each kind of bad input names its field in a JSON problem body."""
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    cases = {
        "detected_at": incident(detected_at="2021-08-02T09:00:00"),
        "notified_at": incident(notified_at="2021-08-02T08:00:00+07:00"),
        "agency": incident(agency="NOPE"),
        "severity": incident(severity="apocalyptic"),
        "category": incident(category="malware/virus"),
        "tlp": incident(tlp="TLP:WHITE"),
        "title": incident(title=""),
    }
    cases["detected_at_future"] = incident(detected_at=future)
    for field, body in cases.items():
        status, problem = await api.call("POST", "/api/v1/incidents", json=body)
        assert status == 422, (field, problem)
        assert problem["errors"][0]["field"] == field.removesuffix("_future"), problem
        assert problem["status"] == 422


async def test_malformed_json_is_400(api: Api) -> None:
    """A body that is not JSON is a 400 problem, not a 500."""
    status, problem = await api.call("POST", "/api/v1/incidents", data=b"{not json")
    assert status == 400
    assert "not valid JSON" in problem["detail"]


async def test_events_set_milestones_and_keep_who_and_when(api: Api) -> None:
    """Milestone events fill the timeline with the token name and the server's time beside the event time."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident())
    iid = created["id"]
    status, body = await api.call(
        "POST",
        f"/api/v1/incidents/{iid}/events",
        "analyst",
        json={"type": "notified", "at": "2021-08-02T09:30:00+07:00", "note": "phoned CISO"},
    )
    assert status == 201, body
    assert body["sla"]["state"] == "met"
    assert body["notified_at"] == "2021-08-02T09:30:00+07:00"
    last = body["timeline"][-1]
    assert (last["type"], last["actor"], last["note"]) == ("notified", "test-analyst", "phoned CISO")
    assert datetime.fromisoformat(last["recorded_at"]) > datetime.fromisoformat(last["at"])
    assert [e["type"] for e in body["timeline"]] == ["detected", "notified"]


async def test_second_milestone_event_needs_a_correction(api: Api) -> None:
    """A milestone cannot be silently overwritten; the answer is 409 pointing at corrections."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident(notified_at="2021-08-02T09:30:00+07:00"))
    status, body = await api.call(
        "POST",
        f"/api/v1/incidents/{created['id']}/events",
        json={"type": "notified", "at": "2021-08-02T09:50:00+07:00"},
    )
    assert status == 409
    assert "correction" in body["detail"]


async def test_correction_changes_the_milestone_and_keeps_the_old_time(api: Api) -> None:
    """A late-entered correction turns met into breached; both times and the reason stay in the timeline."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident(notified_at="2021-08-02T09:30:00+07:00"))
    status, body = await api.call(
        "POST",
        f"/api/v1/incidents/{created['id']}/events",
        json={
            "type": "correction",
            "milestone": "notified",
            "at": "2021-08-02T10:30:00+07:00",
            "reason": "the call log shows the agency was reached at 10:30",
        },
    )
    assert status == 201, body
    assert body["sla"]["state"] == "breached"
    notified = [e for e in body["timeline"] if e["milestone"] == "notified"]
    assert [e["at"] for e in notified] == ["2021-08-02T09:30:00+07:00", "2021-08-02T10:30:00+07:00"]
    assert notified[-1]["reason"].startswith("the call log")


async def test_correction_without_reason_is_422(api: Api) -> None:
    """Corrections and exclusions must say why."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident())
    for event in ({"type": "correction", "milestone": "notified", "at": DETECTED}, {"type": "excluded"}):
        status, problem = await api.call("POST", f"/api/v1/incidents/{created['id']}/events", json=event)
        assert status == 422
        assert problem["errors"][0]["field"] == "reason"


async def test_event_before_detection_is_422(api: Api) -> None:
    """A milestone cannot precede detection, through events either."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident())
    status, problem = await api.call(
        "POST",
        f"/api/v1/incidents/{created['id']}/events",
        json={"type": "analysed", "at": "2021-08-02T08:00:00+07:00"},
    )
    assert status == 422
    assert problem["errors"][0]["field"] == "at"


async def test_exclusion_and_inclusion_toggle_the_sla_state(api: Api) -> None:
    """Excluded incidents show state excluded with the reason; included puts them back."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident())
    path = f"/api/v1/incidents/{created['id']}/events"
    _, excluded = await api.call("POST", path, json={"type": "excluded", "reason": "false positive"})
    assert (excluded["sla"]["state"], excluded["exclusion_reason"]) == ("excluded", "false positive")
    _, included = await api.call("POST", path, json={"type": "included", "reason": "was real after all"})
    assert (included["sla"]["state"], included["exclusion_reason"]) == ("breached", None)


async def test_reopened_clears_resolution(api: Api) -> None:
    """Reopening a resolved incident makes it open again; reopening an open one is a conflict."""
    _, created = await api.call("POST", "/api/v1/incidents", json=incident(resolved_at="2021-08-03T09:00:00+07:00"))
    path = f"/api/v1/incidents/{created['id']}/events"
    _, body = await api.call("POST", path, json={"type": "reopened", "note": "reinfected"})
    assert body["resolved_at"] is None
    status, _ = await api.call("POST", path, json={"type": "reopened"})
    assert status == 409


async def test_unknown_incident_is_404(api: Api) -> None:
    """Reading or appending to an incident that does not exist is 404."""
    assert (await api.call("GET", "/api/v1/incidents/999999"))[0] == 404
    assert (await api.call("GET", "/api/v1/incidents/abc"))[0] == 404
    assert (await api.call("POST", "/api/v1/incidents/999999/events", json={"type": "comment"}))[0] == 404


async def test_list_filters_and_keyset_pagination(api: Api) -> None:
    """Pages follow next_cursor without gaps or repeats; filters narrow by agency, severity and SLA state."""
    ids = []
    for n in range(7):
        body = incident(
            external_id=f"e{n}",
            severity="critical" if n % 2 else "low",
            notified_at="2021-08-02T09:10:00+07:00" if n < 4 else None,
        )
        ids.append((await api.call("POST", "/api/v1/incidents", json=body))[1]["id"])
    await api.call("POST", "/api/v1/incidents", json=incident(agency="DGA"))
    seen: list[int] = []
    cursor = None
    while True:
        path = "/api/v1/incidents?agency=MOF&limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page = await api.call("GET", path)
        assert status == 200
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    _, met = await api.call("GET", "/api/v1/incidents?sla=met")
    assert {i["id"] for i in met["items"]} == set(ids[:4])
    _, critical = await api.call("GET", "/api/v1/incidents?severity=critical&agency=MOF")
    assert {i["severity"] for i in critical["items"]} == {"critical"}
    _, still_open = await api.call("GET", "/api/v1/incidents?state=open")
    assert len(still_open["items"]) == 8
    for bad in ("sla=late", "limit=0", "since=2021-08-01", "cursor=zzz", "severity=x"):
        status, problem = await api.call("GET", f"/api/v1/incidents?{bad}")
        assert status == 422, bad
        assert problem["errors"][0]["field"] == bad.split("=")[0]


async def test_bulk_ndjson_accounts_for_every_line(api: Api) -> None:
    """Valid lines are stored, repeats counted as duplicates, bad lines reported by number with the reason."""
    lines = [
        json.dumps(incident(external_id="b1")),
        json.dumps(incident(external_id="b2", notified_at="2021-08-02T09:20:00+07:00")),
        "",
        json.dumps(incident(external_id="b1")),  # the same alert again
        json.dumps(incident(external_id="b3", severity="nope")),
        "{broken",
        json.dumps(incident(external_id="b2", title="changed")),  # same key, different body
        json.dumps(incident(agency="NOPE", external_id="b4")),
        json.dumps(incident()),  # no key: always new
    ]
    await api.call("POST", "/api/v1/incidents", json=incident(external_id="b0"))
    lines.append(json.dumps(incident(external_id="b0")))
    status, result = await api.call(
        "POST",
        "/api/v1/incidents/bulk",
        "analyst",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert status == 200, result
    assert result["accepted"] == 3
    assert result["duplicates"] == 2
    rejected = {r["line"]: r["error"] for r in result["rejected"]}
    assert set(rejected) == {5, 6, 7, 8}
    assert rejected[5].startswith("severity")
    assert rejected[7].startswith("conflict")
    assert rejected[8].startswith("agency")
    _, page = await api.call("GET", "/api/v1/incidents?limit=100")
    assert len(page["items"]) == 4
    stored = {i["external_id"]: i for i in page["items"]}
    assert stored["b2"]["sla"]["state"] == "met"
    _, detail = await api.call("GET", f"/api/v1/incidents/{stored['b2']['id']}")
    assert [e["type"] for e in detail["timeline"]] == ["detected", "notified"]


@pytest.mark.parametrize("parse_workers", [0, 1])
async def test_bulk_stores_every_field_exactly_as_a_single_post_does(make_api: Any, parse_workers: int) -> None:
    """Thai text, every milestone to the microsecond in any offset, TLP, the SLA clock: bulk and POST agree."""
    api: Api = await make_api(parse_workers=parse_workers)
    full = incident(
        title='มัลแวร์เรียกกลับ C2 จากเครื่องกระทรวง "quoted" \\ back',
        description="บรรทัดแรก\nsecond line\ttab ✓",
        tlp="TLP:AMBER+STRICT",
        severity="critical",
        detected_at="2021-08-02T09:00:00.123456+07:00",
        analysed_at="2021-08-02T02:10:00.5Z",
        notified_at="2021-08-02T09:59:59.999999+07:00",
        acknowledged_at="2021-08-02T10:30:00+07:00",
        contained_at="2021-08-02T05:00:00+02:00",
        resolved_at="2021-08-03T12:00:00+07:00",
    )
    status, single = await api.call("POST", "/api/v1/incidents", json={**full, "external_id": "single"})
    assert status == 201, single
    body = "\n".join(json.dumps({**full, "external_id": f"bulk-{n}"}) for n in range(3)).encode()
    status, result = await api.call("POST", "/api/v1/incidents/bulk", data=body)
    assert (status, result["accepted"]) == (200, 3), result
    _, page = await api.call("GET", "/api/v1/incidents?limit=10")
    bulk = next(i for i in page["items"] if i["external_id"] == "bulk-1")
    volatile = {"id", "external_id", "created_at"}
    assert {k: v for k, v in bulk.items() if k not in volatile} == {
        k: v for k, v in single.items() if k not in volatile | {"timeline"}
    }
    assert bulk["sla"]["state"] == "met"
    assert bulk["sla"]["elapsed_seconds"] == pytest.approx(3599.876543)


async def test_bulk_over_the_line_limit_is_413(api: Api) -> None:
    """More than 10,000 lines is refused whole, with a problem body, so the sender splits the file."""
    body = ("\n".join(json.dumps(incident(external_id=str(n))) for n in range(10_001))).encode()
    status, problem = await api.call("POST", "/api/v1/incidents/bulk", data=body)
    assert status == 413
    assert "10000" in problem["detail"]


async def test_bulk_validated_in_a_worker_process_keeps_line_numbers_across_chunks(make_api: Any) -> None:
    """With validation in a worker process, a body of several chunks reports bad lines by their real numbers."""
    api: Api = await make_api(parse_workers=1)
    lines = [json.dumps(incident(external_id=f"w{n}")) for n in range(2500)]
    lines[1500] = json.dumps(incident(external_id="bad", severity="nope"))
    lines[2499] = lines[0]
    body = "\n".join(lines).encode()
    status, result = await api.call("POST", "/api/v1/incidents/bulk", data=body)
    assert status == 200, result
    assert (result["accepted"], result["duplicates"]) == (2498, 1)
    assert [r["line"] for r in result["rejected"]] == [1501]


async def metric_value(api: Api, name: str, **labels: str) -> float:
    async with api.client.get("/metrics", headers=api.headers("metrics")) as response:
        text = await response.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_ingest_counters_count_accepted_invalid_and_conflicting_records(api: Api) -> None:
    """Prometheus sees stored, invalid and conflicting records by source, with unknown sources folded into other."""
    await api.call("POST", "/api/v1/incidents", json=incident(source="suricata", external_id="k"))
    await api.call("POST", "/api/v1/incidents", json=incident(source="suricata", external_id="k", title="x"))
    await api.call("POST", "/api/v1/incidents", json=incident(severity="nope"))
    await api.call("POST", "/api/v1/incidents", json=incident(source="my-own-sensor-7"))
    lines = [json.dumps(incident(external_id="k", source="suricata", title="y")), "{", json.dumps(incident())]
    await api.call("POST", "/api/v1/incidents/bulk", data="\n".join(lines).encode())
    assert await metric_value(api, "certmon_incidents_ingested_total", source="suricata") == 1
    assert await metric_value(api, "certmon_incidents_ingested_total", source="other") == 1
    assert await metric_value(api, "certmon_incidents_ingested_total", source="bulk") == 1
    assert await metric_value(api, "certmon_incidents_rejected_total", source="suricata", reason="conflict") == 1
    assert await metric_value(api, "certmon_incidents_rejected_total", source="api", reason="invalid") == 1
    assert await metric_value(api, "certmon_incidents_rejected_total", source="bulk", reason="invalid") == 1
    assert await metric_value(api, "certmon_incidents_rejected_total", source="bulk", reason="conflict") == 1


@pytest.mark.parametrize("parse_workers", [0, 1])
async def test_concurrent_bulk_bodies_with_the_same_alerts_store_each_once(make_api: Any, parse_workers: int) -> None:
    """Two uploads of the same alerts racing each other store every alert once; the other sees duplicates."""
    api: Api = await make_api(parse_workers=parse_workers)
    body = "\n".join(json.dumps(incident(external_id=f"race-{n}")) for n in range(3000)).encode()
    results = await asyncio.gather(*(api.call("POST", "/api/v1/incidents/bulk", data=body) for _ in range(2)))
    assert [status for status, _ in results] == [200, 200]
    outcomes = [result for _, result in results]
    assert sum(o["accepted"] for o in outcomes) == 3000
    assert sum(o["duplicates"] for o in outcomes) == 3000
    assert all(o["rejected"] == [] for o in outcomes)
    async with api.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM incidents WHERE source = 'api'") == 3000


async def test_nul_characters_are_refused_by_field_before_the_database(api: Api) -> None:
    """PostgreSQL cannot store U+0000: a body, a bulk line or a filter carrying one gets a 4xx naming it, never 500."""
    status, problem = await api.call("POST", "/api/v1/incidents", json=incident(title="beacon\u0000"))
    assert (status, problem["errors"][0]["field"]) == (422, "title")
    assert "NUL" in problem["detail"]
    lines = [json.dumps(incident(external_id="n1")), json.dumps(incident(external_id="n2", description="x\u0000"))]
    status, result = await api.call("POST", "/api/v1/incidents/bulk", data="\n".join(lines).encode())
    assert status == 200, result
    assert result["accepted"] == 1
    assert [(r["line"], r["error"].split(":")[0]) for r in result["rejected"]] == [(2, "description")]
    status, problem = await api.call("GET", "/api/v1/incidents?agency=MOF%00")
    assert (status, problem["errors"][0]["field"]) == (422, "agency")
    status, _ = await api.call("GET", "/api/v1/agencies/MOF%00")
    assert status == 404
    status, problem = await api.call("POST", "/api/v1/agencies", "admin", json={"code": "NUL", "name": "a\u0000"})
    assert (status, problem["errors"][0]["field"]) == (422, "name")


async def test_times_before_1970_or_beyond_representation_are_refused_by_field(api: Api) -> None:
    """0001-01-01T00:00+01:00 is in year 0 once in UTC: a 422 naming the field, never a 500."""
    for detected, reason in (("0001-01-01T00:00:00+01:00", "out of range"), ("1969-12-31T23:59:59Z", "before 1970")):
        status, problem = await api.call("POST", "/api/v1/incidents", json=incident(detected_at=detected))
        assert (status, problem["errors"][0]["field"]) == (422, "detected_at"), problem
        assert reason in problem["detail"]
    status, problem = await api.call(
        "POST", "/api/v1/incidents", json=incident(notified_at="9999-12-31T23:59:59-05:00")
    )
    assert (status, problem["errors"][0]["field"]) == (422, "notified_at"), problem
    lines = [
        json.dumps(incident(external_id="ok")),
        json.dumps(incident(external_id="old", detected_at="1900-01-01T00:00:00Z")),
    ]
    status, result = await api.call("POST", "/api/v1/incidents/bulk", data="\n".join(lines).encode())
    assert (status, result["accepted"]) == (200, 1), result
    assert [(r["line"], r["error"].split(":")[0]) for r in result["rejected"]] == [(2, "detected_at")]
    status, problem = await api.call("GET", "/api/v1/incidents?since=0001-01-01T00:00:00%2B01:00")
    assert (status, problem["errors"][0]["field"]) == (422, "since"), problem
    _, created = await api.call("POST", "/api/v1/incidents", json=incident())
    status, problem = await api.call(
        "POST",
        f"/api/v1/incidents/{created['id']}/events",
        json={"type": "notified", "at": "0001-01-01T00:00:00+01:00"},
    )
    assert (status, problem["errors"][0]["field"]) == (422, "at"), problem
