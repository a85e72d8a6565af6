"""The Alertmanager webhook: agency by label or network, severity mapping, deduplication, resolution, and a real
Alertmanager posting to certmon."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from conftest import Api

from certmon.web import appkeys
from tests.external import require_program

HOOK = "/api/v1/ingest/alertmanager"


def alert(status: str = "firing", starts: datetime | None = None, **labels: str) -> dict[str, Any]:
    starts = starts or datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
    ends = starts + timedelta(minutes=20) if status == "resolved" else datetime(1, 1, 1, tzinfo=UTC)
    return {
        "status": status,
        "labels": {"alertname": "WebsiteDefaced", **labels},
        "annotations": {"summary": "Defacement on www.mof.go.th", "description": "content hash changed"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends.isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": "a1b2c3d4e5f60718" + labels.get("instance", "")[:4],
    }


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "status": status,
        "receiver": "certmon",
        "groupKey": '{}:{alertname="WebsiteDefaced"}',
        "groupLabels": {"alertname": "WebsiteDefaced"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "truncatedAlerts": 0,
        "alerts": list(alerts),
    }


async def test_firing_alert_becomes_incident_of_the_labelled_agency_with_mapped_severity(api: Api) -> None:
    """The agency label names the agency; severity critical stays critical; startsAt is the detection time."""
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(alert(agency="MOF", severity="critical")))
    assert status == 200, body
    assert (body["created"], body["alerts"][0]["status"], body["alerts"][0]["alert_count"]) == (1, "created", 1)
    status, incident = await api.call("GET", f"/api/v1/incidents/{body['alerts'][0]['incident']}")
    assert (incident["agency"], incident["severity"], incident["source"]) == ("MOF", "critical", "alertmanager")
    assert incident["detected_at"] == "2024-06-01T09:00:00+07:00"
    assert incident["title"] == "Defacement on www.mof.go.th"
    assert incident["category"] == "other/undetermined"


async def test_repeated_notifications_of_one_alert_create_one_incident_and_resolved_sets_the_milestone(
    api: Api,
) -> None:
    """Alertmanager repeats firing alerts; the same fingerprint and startsAt is one incident, resolved at endsAt."""
    firing = alert(agency="MOF", severity="warning")
    for _ in range(3):
        status, body = await api.call("POST", HOOK, "analyst", json=webhook(firing))
    assert (body["created"], body["unchanged"]) == (0, 1)
    resolved = {**alert("resolved", agency="MOF", severity="warning"), "fingerprint": firing["fingerprint"]}
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(resolved))
    assert body["resolved"] == 1
    status, incident = await api.call("GET", f"/api/v1/incidents/{body['alerts'][0]['incident']}")
    assert incident["severity"] == "medium"
    assert incident["resolved_at"] == "2024-06-01T09:20:00+07:00"
    assert [e["type"] for e in incident["timeline"]] == ["detected", "resolved"]
    status, page = await api.call("GET", "/api/v1/incidents?agency=MOF")
    assert (status, len(page["items"])) == (200, 1)


async def test_an_address_label_maps_to_the_agency_through_its_networks(api: Api) -> None:
    """Without an agency label, instance 10.20.30.40:9100 is looked up in the registered networks."""
    await api.call("PATCH", "/api/v1/agencies/DGA", json={"networks": ["10.20.0.0/16"]})
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(alert(instance="10.20.30.40:9100")))
    assert (status, body["alerts"][0]["agency"]) == (200, "DGA")


async def test_alerts_of_no_known_agency_are_reported_unmatched_not_dropped(api: Api) -> None:
    """An unknown agency label and an address outside every network both end up in the unmatched report."""
    status, body = await api.call(
        "POST", HOOK, "analyst", json=webhook(alert(agency="NOPE"), alert(instance="198.51.100.1:9100"))
    )
    assert (status, body["unmatched"], body["created"]) == (200, 2, 0)
    status, report = await api.call("GET", "/api/v1/ingest/unmatched?source=alertmanager")
    assert {(g["reason"], g["alerts"]) for g in report["groups"]} == {("unknown_agency", 1), ("no_network", 1)}
    metrics = api.app[appkeys.METRICS]
    assert metrics.rejected.labels(source="alertmanager", reason="unmatched")._value.get() == 2


async def test_a_body_that_is_not_webhook_version_4_is_refused_naming_the_field(api: Api) -> None:
    """Version 3 bodies are answered 422 with the field named."""
    status, body = await api.call("POST", HOOK, "analyst", json={**webhook(alert(agency="MOF")), "version": "3"})
    assert status == 422
    assert body["errors"][0]["field"] == "version"


async def test_the_webhook_needs_a_writer_token(api: Api) -> None:
    """No token is 401; an agency token is 403."""
    async with api.client.post(HOOK, json=webhook(alert(agency="MOF"))) as response:
        assert response.status == 401
    status, _ = await api.call("POST", HOOK, "agency", json=webhook(alert(agency="MOF")))
    assert status == 403


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for(check: Any, seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.25)


async def test_a_real_alertmanager_posts_firing_and_resolved_alerts_with_its_bearer_token(
    api: Api, tmp_path: Path
) -> None:
    """Alertmanager, authenticating with http_config.authorization, delivers an alert that becomes, then resolves,
    an incident."""
    program = require_program("alertmanager", "prometheus-alertmanager")
    url = f"http://127.0.0.1:{api.client.port}{HOOK}"
    config = {
        "route": {
            "receiver": "certmon",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "certmon",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "max_alerts": 10000,  # as the README advises
                        "http_config": {"authorization": {"type": "Bearer", "credentials": api.tokens["analyst"]}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        program,
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        labels = {
            "alertname": "RansomwareBeacon",
            "agency": "MOF",
            "severity": "critical",
            "category": "malicious-code/c2-server",
        }
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                try:
                    async with session.get(f"{base}/-/ready") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            assert await wait_for(ready), "alertmanager did not start"
            firing = [
                {
                    "labels": labels,
                    "annotations": {"summary": "C2 beacon from a MOF host"},
                    "startsAt": started.isoformat(),
                }
            ]
            async with session.post(f"{base}/api/v2/alerts", json=firing) as r:
                assert r.status == 200, await r.text()

            async def incident() -> Any:
                _, page = await api.call("GET", "/api/v1/incidents?agency=MOF", "auditor")
                return page["items"][0] if page["items"] else None

            found = await wait_for(incident)
            assert found is not None, "alertmanager delivered nothing"
            assert (found["source"], found["severity"], found["category"]) == (
                "alertmanager",
                "critical",
                "malicious-code/c2-server",
            )
            assert datetime.fromisoformat(found["detected_at"]) == started
            assert found["created_by"] == "test-analyst"

            ended = datetime.now(UTC).replace(microsecond=0)
            resolved = [{**firing[0], "endsAt": ended.isoformat()}]
            async with session.post(f"{base}/api/v2/alerts", json=resolved) as r:
                assert r.status == 200

            async def resolved_incident() -> Any:
                got = await incident()
                return got if got and got["resolved_at"] else None

            done = await wait_for(resolved_incident)
            assert done is not None, "the resolved notification did not arrive"
            assert datetime.fromisoformat(done["resolved_at"]) == ended
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_nul_characters_in_labels_are_kept_as_replacement_characters(api: Api) -> None:
    """Labels are whatever the monitored side reports: U+0000, which PostgreSQL cannot store, becomes U+FFFD."""
    firing = alert(agency="MOF", severity="critical", instance="10.0.0.1\u0000")
    firing["annotations"]["summary"] = "Defaced\u0000"
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(firing))
    assert status == 200, body
    assert body["created"] == 1
    _, incident = await api.call("GET", f"/api/v1/incidents/{body['alerts'][0]['incident']}")
    assert incident["title"] == "Defaced\ufffd"
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(alert(agency="MOF\u0000")))
    assert (status, body["unmatched"]) == (200, 1)


async def test_a_notification_of_thousands_of_alerts_above_a_megabyte_is_taken_whole(api: Api) -> None:
    """A big alert group arrives as one body (Alertmanager drops a body refused with 4xx): every alert is handled."""
    alerts = [alert(agency="MOF", instance=f"10.0.{n // 250}.{n % 250}", pod=f"web-{n:05d}" * 20) for n in range(2500)]
    for n, a in enumerate(alerts):
        a["fingerprint"] = f"{n:016x}"
    body = json.dumps(webhook(*alerts)).encode()
    assert len(body) > 1_000_000
    status, result = await api.call("POST", HOOK, "analyst", data=body, headers={"Content-Type": "application/json"})
    assert status == 200, result
    assert (result["received"], result["created"]) == (2500, 2500)


async def test_an_alert_starting_out_of_range_is_rejected_alone(api: Api) -> None:
    """startsAt in year 1 with an offset cannot be represented in UTC: that alert is rejected, the body answered 200."""
    bad = alert(agency="MOF")
    bad["startsAt"] = "0001-01-01T00:00:00+01:00"
    good = alert(agency="MOF", instance="10.0.0.9")
    status, body = await api.call("POST", HOOK, "analyst", json=webhook(bad, good))
    assert status == 200, body
    assert (body["rejected"], body["created"]) == (1, 1)
    assert body["alerts"][0]["error"].startswith("startsAt")
    metrics = api.app[appkeys.METRICS]
    assert metrics.ingested.labels(source="alertmanager")._value.get() == 1
    assert metrics.rejected.labels(source="alertmanager", reason="invalid")._value.get() == 1
