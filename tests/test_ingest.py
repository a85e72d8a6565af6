"""Suricata EVE and Wazuh alerts: agency by network, grouping, idempotent re-import, unmatched and rejected."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from conftest import Api

from certmon.core.sources import eve as eve_source
from certmon.core.sources import key_prefix
from certmon.core.sources.mapping import IngestMapping, MappingError, load_mapping
from certmon.jobs.forget import install_forget
from certmon.store import grouping
from certmon.web import appkeys

SAMPLES = Path(__file__).parent / "data" / "suricata"
NETWORKS = json.loads((Path(__file__).parent / "fixtures" / "suricata-networks.json").read_text())
WINDOW = timedelta(minutes=30)
BKK = ZoneInfo("Asia/Bangkok")


def sample(name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads((SAMPLES / f"{name}.alerts.json").read_bytes())
    return records


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


async def with_networks(api: Api) -> None:
    for code, networks in NETWORKS.items():
        status, body = await api.call("PATCH", f"/api/v1/agencies/{code}", json={"networks": networks})
        assert status == 200, body


async def post(api: Api, path: str, body: bytes, role: str = "analyst") -> dict[str, Any]:
    status, result = await api.call("POST", path, role, data=body, headers={"Content-Type": "application/x-ndjson"})
    assert status == 200, result
    return dict(result)


def agency_of(addresses: list[str]) -> str | None:
    """A reference longest-prefix match over the fixture networks."""
    for raw in addresses:
        address = ipaddress.ip_address(raw)
        best: tuple[int, str] | None = None
        for code, networks in NETWORKS.items():
            for net in map(ipaddress.ip_network, networks):
                if address in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, code)
        if best is not None:
            return best[1]
    return None


def expected_groups(records: list[dict[str, Any]]) -> dict[tuple[str, str, datetime], int]:
    """A reference grouping: per agency and signature, a group opens at an alert and takes alerts for 30 minutes."""
    by_key: dict[tuple[str, str], list[datetime]] = {}
    for r in records:
        agency = agency_of([r["dest_ip"], r["src_ip"]])
        if agency is not None:
            by_key.setdefault((agency, f"1:{r['alert']['signature_id']}"), []).append(
                datetime.fromisoformat(r["timestamp"])
            )
    groups: dict[tuple[str, str, datetime], int] = {}
    for (agency, signature), times in by_key.items():
        first: datetime | None = None
        for at in sorted(times):
            if first is None or at >= first + WINDOW:
                first = at
            groups[(agency, signature, first)] = groups.get((agency, signature, first), 0) + 1
    return groups


async def alert_incidents(api: Api, source: str = "suricata") -> list[Any]:
    async with api.app[appkeys.POOL].acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT i.*, g.signature FROM incidents i JOIN alert_groups g ON g.incident_id = i.id"
                " WHERE i.source = $1 ORDER BY i.id",
                source,
            )
        )


@pytest.mark.parametrize("name", ["first-org-conf-2015", "wrccdc-2018"])
async def test_real_suricata_alerts_group_by_signature_and_agency_within_30_minutes(api: Api, name: str) -> None:
    """Each real sample's alerts become exactly the incidents a reference grouping predicts, counts included."""
    records = sample(name)
    await with_networks(api)
    result = await post(api, "/api/v1/ingest/eve", ndjson(records))
    expected = expected_groups(records)
    rows = await alert_incidents(api)
    got = {(r["agency_code"], r["signature"], r["detected_at"]): r["alert_count"] for r in rows}
    assert got == expected
    unmatched = sum(1 for r in records if agency_of([r["dest_ip"], r["src_ip"]]) is None)
    assert result["unmatched"] == unmatched
    assert unmatched > 0 or name == "first-org-conf-2015"  # that sensor watched one /24, which the fixture holds
    assert result["alerts"] == len(records)
    assert result["incidents_created"] == len(expected)
    assert result["alerts_added"] + result["unmatched"] == len(records)


async def test_reimporting_the_same_eve_file_creates_no_duplicates(api: Api) -> None:
    """The second import of a file finds every alert taken in before and changes no incident."""
    body = ndjson(sample("wrccdc-2018"))
    await with_networks(api)
    first = await post(api, "/api/v1/ingest/eve", body)
    before = [(r["id"], r["alert_count"]) for r in await alert_incidents(api)]
    second = await post(api, "/api/v1/ingest/eve", body)
    assert second["incidents_created"] == 0
    assert second["alerts_added"] == 0
    assert second["duplicates"] == first["alerts_added"]
    assert [(r["id"], r["alert_count"]) for r in await alert_incidents(api)] == before


async def test_json_array_and_ndjson_of_the_same_alerts_give_the_same_incidents(make_api: Any) -> None:
    """A JSON array body is read as the same alerts as its NDJSON form, so the second finds only duplicates."""
    api = await make_api()
    records = sample("first-org-conf-2015")
    await with_networks(api)
    array = await post(api, "/api/v1/ingest/eve", json.dumps(records, indent=1).encode())
    lines = await post(api, "/api/v1/ingest/eve", ndjson(records))
    assert array["incidents_created"] == len(expected_groups(records))
    assert lines["incidents_created"] == 0
    assert lines["duplicates"] == array["alerts_added"]


def eve(at: datetime, signature_id: int = 2001219, dest: str = "10.47.8.150", **alert: Any) -> dict[str, Any]:
    return {
        "timestamp": at.isoformat(),
        "flow_id": int(at.timestamp() * 1000),
        "event_type": "alert",
        "src_ip": "203.0.113.9",
        "src_port": 40000,
        "dest_ip": dest,
        "dest_port": 22,
        "proto": "TCP",
        "alert": {
            "gid": 1,
            "signature_id": signature_id,
            "rev": 1,
            "signature": "ET SCAN Potential SSH Scan",
            "category": "Attempted Information Leak",
            "severity": 2,
            **alert,
        },
    }


async def test_a_group_goes_on_across_requests_and_closes_30_minutes_after_its_first_alert(api: Api) -> None:
    """Alerts up to 29:59 after the first join its group even when sent separately; one at 30:00 opens another."""
    await with_networks(api)
    start = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    await post(api, "/api/v1/ingest/eve", ndjson([eve(start), eve(start + timedelta(minutes=10))]))
    result = await post(
        api,
        "/api/v1/ingest/eve",
        ndjson([eve(start + timedelta(minutes=29, seconds=59)), eve(start + timedelta(minutes=30))]),
    )
    rows = await alert_incidents(api)
    assert [(r["detected_at"], r["alert_count"]) for r in rows] == [(start, 3), (start + timedelta(minutes=30), 1)]
    assert result["incidents_created"] == 1
    assert {i["id"]: i["alert_count"] for i in result["incidents"]} == {rows[0]["id"]: 3, rows[1]["id"]: 1}
    assert rows[0]["agency_code"] == "MOF"
    assert rows[0]["category"] == "information-gathering/scanner"
    assert rows[0]["severity"] == "medium"


async def test_eve_severity_and_class_map_to_policy_severity_and_rsit_or_other(api: Api) -> None:
    """Severity 1 is high, 3 is low; a class RSIT has no type for, on a rule of no known family, is other."""
    await with_networks(api)
    at = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    body = ndjson(
        [
            eve(at, 1, severity=1, category="A Network Trojan was detected"),
            eve(at, 2, severity=3, category="Potential Corporate Privacy Violation", signature="LOCAL rule 2"),
        ]
    )
    await post(api, "/api/v1/ingest/eve", body)
    rows = {r["signature"]: r for r in await alert_incidents(api)}
    assert (rows["1:1"]["severity"], rows["1:1"]["category"]) == ("high", "malicious-code/infected-system")
    assert (rows["1:2"]["severity"], rows["1:2"]["category"]) == ("low", "other/undetermined")


async def test_longest_prefix_decides_and_src_ip_is_tried_after_dest_ip(api: Api) -> None:
    """10.47.8.x is MOF's /24 inside DGA's /16; an outside dest_ip falls back to the src_ip's agency."""
    await with_networks(api)
    at = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    inbound = eve(at, 10, dest="10.47.1.1")
    nested = eve(at, 11, dest="10.47.8.1")
    outbound = {**eve(at, 12, dest="198.51.100.7"), "src_ip": "192.168.0.4"}
    await post(api, "/api/v1/ingest/eve", ndjson([inbound, nested, outbound]))
    rows = {r["signature"]: r["agency_code"] for r in await alert_incidents(api)}
    assert rows == {"1:10": "DGA", "1:11": "MOF", "1:12": "MOF"}


async def test_alerts_outside_every_network_are_counted_and_listed_as_unmatched(api: Api) -> None:
    """Nothing matches before networks are registered: every alert is reported unmatched, with samples and a metric."""
    records = sample("first-org-conf-2015")
    result = await post(api, "/api/v1/ingest/eve", ndjson(records))
    assert result["unmatched"] == len(records)
    assert result["incidents_created"] == 0
    assert result["unmatched_samples"][0]["addresses"] == [records[0]["dest_ip"], records[0]["src_ip"]]
    status, report = await api.call("GET", "/api/v1/ingest/unmatched?source=suricata&limit=5", "auditor")
    assert status == 200
    assert report["groups"] == [
        {
            "source": "suricata",
            "reason": "no_network",
            "alerts": len(records),
            "first_at": min(datetime.fromisoformat(r["timestamp"]) for r in records).astimezone(BKK).isoformat(),
            "last_at": max(datetime.fromisoformat(r["timestamp"]) for r in records).astimezone(BKK).isoformat(),
        }
    ]
    assert len(report["samples"]) == 5
    async with api.client.get("/metrics", headers=api.headers("metrics")) as response:
        text = await response.text()
    assert f'certmon_incidents_rejected_total{{reason="unmatched",source="suricata"}} {len(records)}.0' in text
    await with_networks(api)
    again = await post(api, "/api/v1/ingest/eve", ndjson(records))
    assert again["incidents_created"] == len(expected_groups(records))


async def test_broken_lines_are_rejected_by_line_number_and_the_others_imported(api: Api) -> None:
    """A line that is not JSON, one without a timestamp and one in the future are refused; flow events are skipped."""
    await with_networks(api)
    at = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    future = eve(datetime.now(UTC) + timedelta(hours=2), 5)
    no_time = {k: v for k, v in eve(at, 6).items() if k != "timestamp"}
    flow = {"timestamp": at.isoformat(), "event_type": "flow", "src_ip": "10.47.1.1", "dest_ip": "10.47.1.2"}
    body = ndjson([eve(at, 1)]) + b"{not json\n" + ndjson([no_time, future, flow, eve(at, 2)])
    result = await post(api, "/api/v1/ingest/eve", body)
    assert [(r["line"], r["reason"]) for r in result["rejected"]] == [(2, "invalid"), (3, "invalid"), (4, "invalid")]
    assert "timestamp" in result["rejected"][1]["error"]
    assert "future" in result["rejected"][2]["error"]
    assert result["skipped"] == {"flow": 1}
    assert result["incidents_created"] == 2


async def test_agency_tokens_and_auditors_cannot_send_alerts(api: Api) -> None:
    """Only admin and analyst tokens may ingest."""
    for role in ("agency", "auditor"):
        status, _ = await api.call("POST", "/api/v1/ingest/eve", role, data=b"")
        assert status == 403


def wazuh(at: datetime, level: int, rule_id: str = "5716", agent_ip: str = "10.47.2.2", **rule: Any) -> dict[str, Any]:
    return {
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "rule": {"level": level, "description": "sshd: authentication failed.", "id": rule_id, **rule},
        "agent": {"id": "001", "name": "web01", "ip": agent_ip},
        "manager": {"name": "wazuh-manager"},
        "id": f"{at.timestamp()}.{level}",
        "full_log": "Failed password for root from 203.0.113.5",
        "location": "/var/log/auth.log",
    }


async def test_wazuh_levels_map_to_severity_bands_and_agent_address_to_agency(api: Api) -> None:
    """Levels 12+, 9-11, 6-8 and 0-5 are critical, high, medium and low; groups choose the RSIT type."""
    await with_networks(api)
    at = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    body = ndjson(
        [
            wazuh(at, 13, "1", groups=["syslog", "authentication_failed"]),
            wazuh(at, 10, "2", agent_ip="192.168.0.5"),
            wazuh(at, 6, "3"),
            wazuh(at, 2, "4"),
            wazuh(at, 2, "4", agent_ip="any"),
        ]
    )
    result = await post(api, "/api/v1/ingest/wazuh", body)
    rows = {r["signature"]: r for r in await alert_incidents(api, "wazuh")}
    assert {k: (r["severity"], r["agency_code"]) for k, r in rows.items()} == {
        "rule:1": ("critical", "DGA"),
        "rule:2": ("high", "MOF"),
        "rule:3": ("medium", "DGA"),
        "rule:4": ("low", "DGA"),
    }
    assert rows["rule:1"]["category"] == "intrusion-attempts/brute-force"
    assert rows["rule:2"]["category"] == "other/undetermined"
    assert result["unmatched"] == 1
    again = await post(api, "/api/v1/ingest/wazuh", body)
    assert (again["incidents_created"], again["duplicates"]) == (0, 4)


async def test_sensor_strings_with_nul_characters_are_kept_with_a_replacement(api: Api) -> None:
    """A sensor's text is evidence: U+0000, which PostgreSQL cannot store, becomes U+FFFD and the alert is kept."""
    records = sample("wrccdc-2018")[:20]
    for record in records:
        record["alert"]["signature"] += "\u0000"
    await with_networks(api)
    result = await post(api, "/api/v1/ingest/eve", ndjson(records))
    assert result["alerts"] == 20
    assert result["alerts_added"] + result["unmatched"] == 20
    rows = await alert_incidents(api)
    assert rows and all(r["title"].endswith("\ufffd") for r in rows)
    assert all(s["title"].endswith("\ufffd") for s in result["unmatched_samples"])


async def test_an_alert_time_out_of_range_rejects_that_record_only(api: Api) -> None:
    """A sensor clock gone wrong (year 1 with an offset, or 1969) is reported by line; the rest is imported."""
    records = sample("wrccdc-2018")[:10]
    records[3]["timestamp"] = "0001-01-01T00:00:00.000000+0100"
    records[6]["timestamp"] = "1969-12-31T23:00:00.000000+0000"
    await with_networks(api)
    result = await post(api, "/api/v1/ingest/eve", ndjson(records))
    assert [(r["line"], "timestamp" in r["error"]) for r in result["rejected"]] == [(4, True), (7, True)]
    assert result["alerts"] == 8


def matched_records(count: int) -> list[dict[str, Any]]:
    records = [r for r in sample("wrccdc-2018") if agency_of([r["dest_ip"], r["src_ip"]]) is not None]
    return records[:count]


def dated(record: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {**record, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")}


async def test_remembered_alerts_are_forgotten_after_remember_days_and_older_ones_refused(
    make_api: Any, tmp_path: Path
) -> None:
    """With remember_days, old keys go and alerts that old are refused: nothing can be counted twice."""
    now = datetime.now(UTC)
    records = matched_records(4)
    old = [dated(records[0], now - timedelta(days=100)), dated(records[1], now - timedelta(days=95))]
    recent = [dated(records[2], now - timedelta(days=2)), dated(records[3], now - timedelta(days=1))]
    body = ndjson(old + recent)

    mapping = tmp_path / "mapping.toml"
    mapping.write_text("remember_days = 30\n")
    api: Api = await make_api(ingest_mapping=mapping)
    await with_networks(api)
    pool, q = api.app[appkeys.POOL], api.app[appkeys.QUERIES]
    async with pool.acquire() as conn:
        # Imported earlier, under a mapping that remembered every alert.
        convert = eve_source.converter(IngestMapping().eve)
        earlier = grouping.Pipeline(
            conn, q, api.app[appkeys.POLICY], source=eve_source.SOURCE, convert=convert, window=WINDOW, actor="earlier"
        )
        await earlier.feed(body)
        first = await earlier.finish()
        assert (first.alerts, first.rejected_count) == (4, 0)
        assert await conn.fetchval("SELECT count(*) FROM ingested_alerts") == 4
        assert await grouping.forget_keys(conn, q, [eve_source.SOURCE], timedelta(days=30), now) == (2, 0)
        assert await conn.fetchval("SELECT count(*) FROM ingested_alerts") == 2

    again = await post(api, "/api/v1/ingest/eve", body)
    assert again["alerts_added"] == 0
    assert again["duplicates"] == 2
    assert [(r["line"], r["reason"]) for r in again["rejected"]] == [(1, "too_old"), (2, "too_old")]
    assert "30 days" in again["rejected"][0]["error"]


async def test_remember_days_must_be_a_positive_number_of_days(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text("remember_days = 0\n")
    with pytest.raises(MappingError, match="remember_days"):
        load_mapping(path)


async def test_the_nightly_job_forgets_keys_only_when_remember_days_is_set(make_api: Any, tmp_path: Path) -> None:
    """The job is installed for 03:30 Bangkok with remember_days, not without; run, it drops old keys and samples."""
    bkk = ZoneInfo("Asia/Bangkok")
    noon = datetime(2026, 11, 2, 12, 0, tzinfo=bkk)
    scheduler = AsyncIOScheduler(timezone=bkk)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("remember_days = 30\n")
    api: Api = await make_api(ingest_mapping=mapping)
    install_forget(replace(api.runtime(noon), ingest_mapping=IngestMapping()), scheduler)  # no remember_days
    assert scheduler.get_job("ingest-forget") is None

    install_forget(api.runtime(noon), scheduler)
    job = scheduler.get_job("ingest-forget")
    assert job.trigger.get_next_fire_time(None, noon) == datetime(2026, 11, 3, 3, 30, tzinfo=bkk)
    async with api.app[appkeys.POOL].acquire() as conn:
        old = key_prefix(noon - timedelta(days=40)) + bytes(8)
        new = key_prefix(noon - timedelta(days=20)) + bytes(8)
        await conn.execute("INSERT INTO ingested_alerts VALUES ('suricata', $1), ('suricata', $2)", old, new)
        await conn.execute(
            "INSERT INTO unmatched_alerts (source, alert_key, at, addresses, signature, reason, sample)"
            " SELECT 'wazuh', k, now(), '{}', 's', 'no_network', '{}' FROM unnest($1::bytea[]) AS k",
            [old, new],
        )
        await job.func()
        assert [r[0] for r in await conn.fetch("SELECT alert_key FROM ingested_alerts")] == [new]
        assert [r[0] for r in await conn.fetch("SELECT alert_key FROM unmatched_alerts")] == [new]
