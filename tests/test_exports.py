"""Monthly exports: Bangkok month edges, frozen byte-identical files, restatements, signatures, exactly-once runs."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon.core import export_content, signing
from certmon.core.errors import Conflict
from certmon.core.models import EventIn, IncidentIn
from certmon.core.periods import month_period
from certmon.core.policy import Policy
from certmon.jobs import monthly_exports
from certmon.store import db, exports, incidents
from certmon.telemetry import parts
from certmon.wiring import build_app

BKK = ZoneInfo("Asia/Bangkok")
AUGUST = month_period(2021, 8, BKK)
AFTER_AUGUST = datetime(2021, 9, 1, 9, 0, tzinfo=BKK)


def bkk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BKK)


@pytest.fixture
def q() -> db.Queries:
    return db.Queries.load()


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return signing.load_or_create_key(tmp_path / "key.pem")


async def add_agencies(conn: asyncpg.Connection) -> None:
    await conn.executemany(
        "INSERT INTO agencies (code, name, name_th, sector) VALUES ($1, $2, $3, $4)",
        [
            ("MOF", "Ministry of Finance", "กระทรวงการคลัง", "banking-finance"),
            ("DGA", "Digital Government Development Agency", "สำนักงานพัฒนารัฐบาลดิจิทัล", "it-telecom"),
        ],
    )


async def add_incident(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    detected: datetime,
    notify_after_min: float | None,
    **extra: Any,
) -> int:
    fields: dict[str, Any] = {
        "agency": "MOF",
        "title": "C2 beacon",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": detected,
        **extra,
    }
    if notify_after_min is not None:
        fields["notified_at"] = detected + timedelta(minutes=notify_after_min)
    row, _ = await incidents.create(conn, q, policy, IncidentIn.model_validate(fields), "test")
    return int(row["id"])


async def export(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, now: datetime = AFTER_AUGUST
) -> export_content.ExportResult:
    return await exports.export_month(conn, q, policy, key, AUGUST, now, "test")


async def stored(conn: asyncpg.Connection, q: db.Queries, month: str, revision: int) -> dict[str, bytes]:
    return {name: data for name, (_, data) in (await exports.stored_files(conn, q, month, revision)).items()}


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.fixture
async def august(conn: asyncpg.Connection, q: db.Queries, policy: Policy) -> list[int]:
    """Four August incidents of MOF: two met, one notified late, one never notified."""
    await add_agencies(conn)
    return [
        await add_incident(conn, q, policy, bkk(2021, 8, 2, 9, 0), 20),
        await add_incident(conn, q, policy, bkk(2021, 8, 10, 14, 0), 45),
        await add_incident(conn, q, policy, bkk(2021, 8, 20, 22, 0), 95),
        await add_incident(conn, q, policy, bkk(2021, 8, 25, 3, 0), None),
    ]


async def test_incidents_either_side_of_bangkok_midnight_go_to_their_bangkok_month(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """23:59:59 on 31 August Bangkok (16:59:59Z) is in August's export; 00:00 on 1 September (17:00Z) is not."""
    await add_agencies(conn)
    last = await add_incident(conn, q, policy, datetime(2021, 8, 31, 16, 59, 59, tzinfo=UTC), 10)
    first = await add_incident(conn, q, policy, datetime(2021, 8, 31, 17, 0, tzinfo=UTC), 10)
    before = await add_incident(conn, q, policy, datetime(2021, 7, 31, 17, 0, tzinfo=UTC), 10)
    result = await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", result.revision)
    ids = [int(r["id"]) for r in read_csv(files["incidents.csv"])]
    assert ids == [last, before]
    content = json.loads(files["export.json"])
    assert content["period"] == {
        "start": "2021-08-01T00:00:00+07:00",
        "end": "2021-09-01T00:00:00+07:00",
        "timezone": "Asia/Bangkok",
    }
    assert first not in ids


async def test_month_is_evaluated_at_its_end_plus_the_longest_target(policy: Policy) -> None:
    """A 24x7 one-hour policy evaluates August at 1 September 01:00; a six-business-hour one at 14:30 that day."""
    assert export_content.evaluation_instant(policy, AUGUST) == bkk(2021, 9, 1, 1, 0)
    business = Policy.model_validate(
        {"severities": {"high": {"target_seconds": 3600}, "low": {"target_seconds": 6 * 3600, "calendar": "business"}}}
    )
    assert export_content.evaluation_instant(business, AUGUST) == bkk(2021, 9, 1, 14, 30)


async def test_month_that_has_not_ended_cannot_be_exported(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """Exporting August at 00:30 on 1 September is refused with the instant it becomes possible."""
    with pytest.raises(Conflict, match=r"2021-09-01T01:00:00\+07:00"):
        await export(conn, q, policy, key, now=bkk(2021, 9, 1, 0, 30))
    assert await conn.fetchval("SELECT count(*) FROM exports") == 0


async def test_figures_per_agency_sector_severity_and_overall_with_thai_names(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """Two of four met: 50 % against 96 % is red; the never-notified incident counts as breached, not pending."""
    await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", 1)
    assert files["figures.csv"].startswith(b"\xef\xbb\xbf")
    rows = {(r["scope"], r["key"]): r for r in read_csv(files["figures.csv"])}
    overall = rows[("overall", "")]
    assert (overall["total"], overall["met"], overall["breached"], overall["pending"]) == ("4", "2", "2", "0")
    assert (overall["compliance"], overall["target"], overall["status"]) == ("0.5", "0.96", "red")
    assert rows[("agency", "MOF")]["name_th"] == "กระทรวงการคลัง"
    assert rows[("sector", "banking-finance")]["met"] == "2"
    assert rows[("severity", "high")]["delay_max"] == "5700.0"
    states = {int(r["id"]): r["state"] for r in read_csv(files["incidents.csv"])}
    assert states == {august[0]: "met", august[1]: "met", august[2]: "breached", august[3]: "breached"}


async def test_regenerating_an_unchanged_month_gives_byte_identical_files(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """A later run neither makes a revision nor renders different bytes; only the manifest carries a wall-clock time."""
    first = await export(conn, q, policy, key, now=bkk(2021, 9, 3, 17, 41))
    again = await export(conn, q, policy, key, now=AFTER_AUGUST + timedelta(days=40))
    assert (first.revision, first.created, again.revision, again.created) == (1, True, 1, False)
    kept = await stored(conn, q, "2021-08", 1)
    rendered = export_content.render(await exports.collect(conn, q, policy, AUGUST))
    assert set(rendered) == {"export.json", "export.xlsx", "figures.csv", "incidents.csv"}
    for name, (_, data) in rendered.items():
        assert data == kept[name], name
    manifest = json.loads(kept["manifest.json"])
    assert manifest["generated_at"] == "2021-09-03T10:41:00+00:00"
    for data_file in ("export.json", "figures.csv", "incidents.csv"):
        assert b"T17:41" not in kept[data_file] and b"T10:41" not in kept[data_file]


async def test_correction_makes_revision_2_with_old_and_new_figures_and_its_reason(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """Correcting the late notification to 40 minutes restates met 2 -> 3 and names the correction's reason."""
    await export(conn, q, policy, key)
    revision_1 = await stored(conn, q, "2021-08", 1)
    corrected = EventIn(
        type="correction", milestone="notified", at=bkk(2021, 8, 20, 22, 40), reason="sensor clock was 55 min slow"
    )
    await incidents.add_event(conn, q, policy, august[2], corrected, "analyst-1")
    result = await export(conn, q, policy, key, now=AFTER_AUGUST + timedelta(days=3))
    assert (result.revision, result.created, result.restated) == (2, True, True)
    files = await stored(conn, q, "2021-08", 2)
    changes = {
        (r["scope"], r["key"], r["figure"]): (r["old"], r["new"]) for r in read_csv(files["restatement-figures.csv"])
    }
    assert changes[("overall", "", "met")] == ("2", "3")
    assert changes[("overall", "", "breached")] == ("2", "1")
    assert changes[("overall", "", "compliance")] == ("0.5", "0.75")
    assert changes[("agency", "MOF", "met")] == ("2", "3")
    restated = {r["field"]: r for r in read_csv(files["restatement-incidents.csv"]) if r["incident"] == str(august[2])}
    assert restated["notified_at"]["old"] == "2021-08-20T23:35:00+07:00"
    assert restated["notified_at"]["new"] == "2021-08-20T22:40:00+07:00"
    assert restated["state"]["old"] == "breached" and restated["state"]["new"] == "met"
    assert "sensor clock was 55 min slow" in restated["state"]["reasons"]
    reasons = read_csv(files["restatement-reasons.csv"])
    assert [(r["incident"], r["type"], r["milestone"], r["actor"]) for r in reasons] == [
        (str(august[2]), "correction", "notified", "analyst-1")
    ]
    assert await stored(conn, q, "2021-08", 1) == revision_1, "an earlier revision never changes"
    manifest = json.loads(files["manifest.json"])
    assert (manifest["revision"], manifest["previous_revision"]) == (2, 1)


async def test_exclusion_is_restated_with_its_reason_and_earlier_revisions_refuse_changes(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """Excluding the never-notified alert as a false positive restates excluded 0 -> 1; the database refuses edits."""
    await export(conn, q, policy, key)
    await incidents.add_event(conn, q, policy, august[3], EventIn(type="excluded", reason="false positive"), "duty")
    await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", 2)
    changes = {(r["scope"], r["figure"]): (r["old"], r["new"]) for r in read_csv(files["restatement-figures.csv"])}
    assert changes[("overall", "excluded")] == ("0", "1")
    reasons = json.loads(files["export.json"])["restatement"]["reasons"]
    assert [(r["type"], r["reason"]) for r in reasons] == [("excluded", "false positive")]
    with pytest.raises(asyncpg.RaiseError, match="immutable"):
        await conn.execute("UPDATE export_files SET content = 'x' WHERE name = 'figures.csv'")
    with pytest.raises(asyncpg.RaiseError, match="immutable"):
        await conn.execute("DELETE FROM exports WHERE revision = 1")


async def test_xlsx_has_thai_and_english_headers_and_coloured_status_cells(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """The workbook has one sheet per table, Thai over English headers, and the red status cell filled red."""
    await export(conn, q, policy, key)
    workbook = zipfile.ZipFile(io.BytesIO((await stored(conn, q, "2021-08", 1))["export.xlsx"]))
    sheets = workbook.read("xl/workbook.xml").decode()
    assert 'name="Figures"' in sheets and 'name="Incidents"' in sheets
    strings = workbook.read("xl/sharedStrings.xml").decode()
    assert "ร้อยละที่ทันเวลา" in strings and "Compliance" in strings and "กระทรวงการคลัง" in strings
    assert "F8696B" in workbook.read("xl/styles.xml").decode()


async def test_verification_passes_then_names_the_file_with_one_changed_byte(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int], tmp_path: Path
) -> None:
    """A written revision verifies; one changed byte fails figures.csv by name, or the manifest's signature."""
    await export(conn, q, policy, key)
    directory = export_content.write_directory(
        tmp_path, "2021-08", 1, await exports.stored_files(conn, q, "2021-08", 1)
    )
    assert directory == tmp_path / "2021-08" / "r1"
    assert signing.verify_directory(directory) == []
    public = key.public_key()
    assert signing.verify_directory(directory, public) == []
    figures = directory / "figures.csv"
    data = bytearray(figures.read_bytes())
    data[-3] ^= 0x01
    figures.write_bytes(bytes(data))
    problems = signing.verify_directory(directory, public)
    assert [p.file for p in problems] == ["figures.csv"]
    assert "SHA-256" in problems[0].message
    manifest = directory / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"revision": 1', b'"revision": 2'))
    assert "signature does not match" in str(signing.verify_directory(directory, public)[0])
    other = Ed25519PrivateKey.generate().public_key()
    assert any("signing key" in p.message for p in signing.verify_directory(directory, other))


async def test_two_runs_racing_on_one_database_store_one_revision(
    database_url: str, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """Two replicas' scheduled runs at the same instant store one August export between them."""
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await add_agencies(first)
        await add_incident(first, q, policy, bkk(2021, 8, 2, 9, 0), 20)
        now = bkk(2021, 9, 1, 1, 0)
        (a, _), (b, _) = await asyncio.gather(
            exports.run_due(first, q, policy, key, now, "replica-a"),
            exports.run_due(second, q, policy, key, now, "replica-b"),
        )
        assert sorted(r.created for r in (*a, *b)) == [False, True]
        assert await first.fetchval("SELECT count(*) FROM exports") == 1
    finally:
        await first.close()
        await second.close()


async def test_catch_up_after_downtime_exports_every_missed_month(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """Down from July to mid-October: the next run exports July, August and September, and re-checks June."""
    await add_agencies(conn)
    for month in (6, 7, 8, 9):
        await add_incident(conn, q, policy, bkk(2021, month, 15, 10, 0), 30)
    june = month_period(2021, 6, BKK)
    await exports.export_month(conn, q, policy, key, june, bkk(2021, 7, 1, 1, 0), "scheduler")
    results, retry_at = await exports.run_due(conn, q, policy, key, bkk(2021, 10, 15, 12, 0), "scheduler")
    assert retry_at is None
    assert [(r.month, r.revision, r.created) for r in results] == [
        ("2021-06", 1, False),
        ("2021-07", 1, True),
        ("2021-08", 1, True),
        ("2021-09", 1, True),
    ]


async def test_run_before_the_previous_month_is_due_asks_to_retry_when_it_is(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """With the job at 00:00, August's clocks are not all due yet: nothing is stored and the retry is at 01:00."""
    results, retry_at = await exports.run_due(conn, q, policy, key, bkk(2021, 9, 1, 0, 0), "scheduler")
    assert results == []
    assert retry_at == bkk(2021, 9, 1, 1, 0)


async def test_job_runs_on_the_first_at_the_export_hour_bangkok_and_catches_up_at_start(
    make_api: Any, policy: Policy
) -> None:
    """The cron job fires on the 1st at CERTMON_EXPORT_HOUR in Bangkok, and a catch-up run is queued at start-up."""
    api = await make_api(export_hour=3)
    scheduler = AsyncIOScheduler(timezone=BKK)
    monthly_exports.install_exports(api.runtime(AFTER_AUGUST), scheduler)
    job = scheduler.get_job(monthly_exports.JOB_ID)
    assert job.trigger.get_next_fire_time(None, bkk(2021, 8, 15, 12, 0)) == bkk(2021, 9, 1, 3, 0)
    assert job.trigger.get_next_fire_time(None, bkk(2021, 12, 1, 3, 30)) == bkk(2022, 1, 1, 3, 0)
    assert scheduler.get_job(f"{monthly_exports.JOB_ID}-catch-up") is not None


async def test_two_services_started_on_one_database_produce_one_export(
    make_api: Any, aiohttp_client: Any, database_url: str, settings: Any, tmp_path: Path
) -> None:
    """Two certmon processes with schedulers on one database catch up last month once, not twice."""
    last_month = bkk(2021, 8, 21, 10, 0)
    conn = await asyncpg.connect(database_url)
    try:
        await add_agencies(conn)
        await add_incident(conn, db.Queries.load(), Policy(), last_month, 15)
    finally:
        await conn.close()
    shared = replace(settings, scheduler_enabled=True, export_dir=tmp_path / "exports")
    apps = [build_app(shared, database_url=database_url, clock=lambda: AFTER_AUGUST) for _ in range(2)]
    await asyncio.gather(*(aiohttp_client(app) for app in apps))
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(200):
            if await conn.fetchval("SELECT count(*) FROM exports"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the slower replica's run finishes well within this
        rows = await conn.fetch("SELECT month, revision FROM exports")
    finally:
        await conn.close()
    assert [(r["month"], r["revision"]) for r in rows] == [(last_month.strftime("%Y-%m"), 1)]
    written = tmp_path / "exports" / last_month.strftime("%Y-%m") / "r1"
    assert signing.verify_directory(written) == []


async def test_metrics_tell_when_the_last_export_succeeded(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """Before any export the gauges have no sample; after August's they hold its time and the end of August."""
    before = {f.name: f.samples for f in await parts.export_families(conn, q, policy, AFTER_AUGUST)}
    assert before["certmon_export_last_success_timestamp_seconds"] == []
    await export(conn, q, policy, key)
    after = {f.name: f.samples for f in await parts.export_families(conn, q, policy, AFTER_AUGUST)}
    assert after["certmon_export_last_success_timestamp_seconds"] == [((), AFTER_AUGUST.timestamp())]
    assert after["certmon_export_last_month_end_timestamp_seconds"] == [((), AUGUST.end.timestamp())]


async def test_manifest_lists_every_file_with_size_hash_period_and_policy(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """Each data file's size and SHA-256 are in the signed manifest, with the policy's fingerprint and the key's."""
    await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", 1)
    manifest = json.loads(files["manifest.json"])
    listed = {f["name"]: (f["size"], f["sha256"]) for f in manifest["files"]}
    for name in ("figures.csv", "incidents.csv", "export.json", "export.xlsx"):
        assert listed[name] == (len(files[name]), hashlib.sha256(files[name]).hexdigest())
    assert manifest["policy"]["fingerprint"] == policy.fingerprint()
    assert manifest["evaluated_at"] == "2021-09-01T01:00:00+07:00"
    assert manifest["signing_key"]["fingerprint"] == signing.key_fingerprint(key)
    key.public_key().verify(base64.b64decode(files["manifest.sig"]), files["manifest.json"])
