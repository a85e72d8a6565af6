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
# August is evaluated at 4 September 00:00: the built-in contain objective gives low incidents 72 hours.
AUGUST_EVALUATED = datetime(2021, 9, 4, 0, 0, tzinfo=BKK)
AFTER_AUGUST = datetime(2021, 9, 4, 9, 0, tzinfo=BKK)
OBJECTIVE_FILES = {"objectives.csv", "objective-figures.csv", "incident-objectives.csv"}


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
    row, _, _ = await incidents.create(conn, q, policy, IncidentIn.model_validate(fields), "test")
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


async def test_month_is_evaluated_at_its_end_plus_the_longest_target_of_every_objective(policy: Policy) -> None:
    """The built-in objectives evaluate August at 4 September 00:00 (contain: 72 h for low), its KPI alone at 01:00;
    a one-clock policy at 01:00, or at 14:30 that Wednesday when a severity has six business hours."""
    assert export_content.evaluation_instant(policy, AUGUST) == AUGUST_EVALUATED
    assert export_content.evaluation_instant(policy, AUGUST, ["notify"]) == bkk(2021, 9, 1, 1, 0)
    assert export_content.evaluation_instant(policy, AUGUST, ["coordinate"]) == bkk(2021, 9, 1, 14, 30)
    one_clock = Policy.model_validate({"severities": {"high": {"target_seconds": 3600}}})
    assert export_content.evaluation_instant(one_clock, AUGUST) == bkk(2021, 9, 1, 1, 0)
    business = Policy.model_validate(
        {"severities": {"high": {"target_seconds": 3600}, "low": {"target_seconds": 6 * 3600, "calendar": "business"}}}
    )
    assert export_content.evaluation_instant(business, AUGUST) == bkk(2021, 9, 1, 14, 30)


async def test_month_that_has_not_ended_cannot_be_exported(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """Exporting August on 3 September is refused with the instant it becomes possible."""
    with pytest.raises(Conflict, match=r"2021-09-04T00:00:00\+07:00"):
        await export(conn, q, policy, key, now=bkk(2021, 9, 3, 23, 30))
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
    first = await export(conn, q, policy, key, now=bkk(2021, 9, 4, 17, 41))
    again = await export(conn, q, policy, key, now=AFTER_AUGUST + timedelta(days=40))
    assert (first.revision, first.created, again.revision, again.created) == (1, True, 1, False)
    kept = await stored(conn, q, "2021-08", 1)
    rendered = export_content.render(await exports.collect(conn, q, policy, AUGUST))
    assert set(rendered) == {
        "export.json", "export.xlsx", "figures.csv", "incidents.csv", "report.pdf", *OBJECTIVE_FILES
    }  # fmt: skip
    for name, (_, data) in rendered.items():
        assert data == kept[name], name
    manifest = json.loads(kept["manifest.json"])
    assert manifest["generated_at"] == "2021-09-04T10:41:00+00:00"
    for data_file in ("export.json", "figures.csv", "incidents.csv", *OBJECTIVE_FILES):
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
    # (0.96 - 0.75) / 0.96 is 0.21874999999999997 in floating point: CSV files carry no such noise.
    assert changes[("overall", "", "shortfall")] == ("0.479167", "0.21875")
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
        now = AUGUST_EVALUATED
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
    await exports.export_month(conn, q, policy, key, june, bkk(2021, 7, 4, 1, 0), "scheduler")
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
    """On 1 September August's clocks are not all due yet: nothing is stored and the retry is at 4 September 00:00."""
    results, retry_at = await exports.run_due(conn, q, policy, key, bkk(2021, 9, 1, 1, 0), "scheduler")
    assert results == []
    assert retry_at == AUGUST_EVALUATED


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
    for name in ("figures.csv", "incidents.csv", "export.json", "export.xlsx", "report.pdf", *OBJECTIVE_FILES):
        assert listed[name] == (len(files[name]), hashlib.sha256(files[name]).hexdigest())
    assert manifest["policy"]["fingerprint"] == policy.fingerprint()
    assert manifest["evaluated_at"] == "2021-09-04T00:00:00+07:00"
    assert manifest["signing_key"]["fingerprint"] == signing.key_fingerprint(key)
    key.public_key().verify(base64.b64decode(files["manifest.sig"]), files["manifest.json"])


async def acknowledge(conn: asyncpg.Connection, q: db.Queries, policy: Policy, incident: int, at: datetime) -> None:
    await incidents.add_event(conn, q, policy, incident, EventIn(type="acknowledged", at=at), "agency-mof")


async def test_objective_files_count_each_objectives_clocks_in_the_month_they_started(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """objective-figures.csv has every objective, the KPI's rows equal to figures.csv; incident-objectives.csv lists
    the clocks it counts: a July incident notified on 1 August is August's for acknowledge, not for notify."""
    await acknowledge(conn, q, policy, august[0], bkk(2021, 8, 2, 9, 50))  # 30 minutes after the notification
    await acknowledge(conn, q, policy, august[1], bkk(2021, 8, 10, 16, 45))  # two hours after
    july = await add_incident(conn, q, policy, bkk(2021, 7, 31, 23, 0), 90)
    late_august = await add_incident(conn, q, policy, bkk(2021, 8, 31, 23, 30), 40)
    await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", 1)

    figures = {(r["scope"], r["key"]): r for r in read_csv(files["figures.csv"])}
    by_objective = read_csv(files["objective-figures.csv"])
    assert {r["objective"] for r in by_objective} == {"notify", "acknowledge", "contain", "coordinate"}
    for row in by_objective:
        if row["objective"] == "notify":  # the KPI: what figures.csv says, with the paused clocks besides
            assert {k: v for k, v in row.items() if k not in ("objective", "paused")} == figures[
                (row["scope"], row["key"])
            ]
    overall = {r["objective"]: r for r in by_objective if r["scope"] == "overall"}
    ack = overall["acknowledge"]
    assert (ack["total"], ack["met"], ack["breached"], ack["no_clock"], ack["paused"]) == ("5", "1", "3", "1", "0")
    assert (ack["compliance"], ack["status"]) == ("0.25", "red")

    clocks = {(int(r["id"]), r["objective"]): r for r in read_csv(files["incident-objectives.csv"])}
    assert (july, "notify") not in clocks and clocks[(july, "acknowledge")]["state"] == "breached"
    assert (late_august, "notify") in clocks and (late_august, "acknowledge") not in clocks
    assert clocks[(august[0], "acknowledge")]["clock_start"] == "2021-08-02T09:20:00+07:00"
    assert clocks[(august[0], "acknowledge")]["delay_seconds"] == "1800.0"
    assert clocks[(august[3], "acknowledge")]["state"] == "no_clock"
    for objective, row in overall.items():
        assert sum(1 for (_, name) in clocks if name == objective) == int(row["total"]), objective

    described = {(r["objective"], r["severity"]): r for r in read_csv(files["objectives.csv"])}
    assert (described[("notify", "high")]["kpi"], described[("notify", "high")]["target_seconds"]) == ("true", "3600")
    low = described[("contain", "low")]
    assert (low["start"], low["stop"], low["target_seconds"], low["pauses"]) == (
        "notified",
        "contained",
        "259200",
        "true",
    )
    assert described[("coordinate", "high")]["calendar"] == "business"
    sheets = zipfile.ZipFile(io.BytesIO(files["export.xlsx"])).read("xl/workbook.xml").decode()
    assert 'name="Objective figures"' in sheets and 'name="Incident objectives"' in sheets


async def test_clock_still_paused_at_evaluation_shows_paused_and_its_resumption_restates_the_month(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """Paused on 30 August and still waiting on 4 September: contain is paused in revision 1; resumed and contained
    on 6 September, revision 2 restates it met, with the resumption as the reason, and leaves the KPI alone."""
    await add_agencies(conn)
    incident = await add_incident(conn, q, policy, bkk(2021, 8, 30, 10, 0), 20)
    waiting = EventIn(type="paused", at=bkk(2021, 8, 30, 12, 0), reason="waiting for the agency's firewall logs")
    await incidents.add_event(conn, q, policy, incident, waiting, "analyst-1")
    await export(conn, q, policy, key)
    files = await stored(conn, q, "2021-08", 1)
    clocks = {r["objective"]: r for r in read_csv(files["incident-objectives.csv"])}
    contain = clocks["contain"]
    assert (contain["state"], contain["due_at"], contain["paused_since"]) == ("paused", "", "2021-08-30T12:00:00+07:00")
    assert contain["paused_seconds"] == str(4.5 * 86400)  # 30 August 12:00 to the evaluation instant
    assert clocks["acknowledge"]["state"] == "breached"  # acknowledge does not pause
    overall = {r["objective"]: r for r in read_csv(files["objective-figures.csv"]) if r["scope"] == "overall"}
    assert (overall["contain"]["paused"], overall["contain"]["pending"]) == ("1", "0")

    await incidents.add_event(conn, q, policy, incident, EventIn(type="resumed", at=bkk(2021, 9, 6, 9, 0)), "duty")
    await incidents.add_event(conn, q, policy, incident, EventIn(type="contained", at=bkk(2021, 9, 6, 10, 0)), "duty")
    result = await export(conn, q, policy, key, now=bkk(2021, 9, 7, 9, 0))
    assert (result.revision, result.restated) == (2, True)
    files = await stored(conn, q, "2021-08", 2)
    figures = {
        (r["objective"], r["scope"], r["figure"]): (r["old"], r["new"])
        for r in read_csv(files["restatement-figures.csv"])
    }
    assert figures[("contain", "overall", "paused")] == ("1", "0")
    assert figures[("contain", "overall", "met")] == ("0", "1")
    assert {objective for objective, _, _ in figures} == {"contain"}, "the KPI's figures did not change"
    restated = {(r["objective"], r["field"]): r for r in read_csv(files["restatement-incidents.csv"]) if r["objective"]}
    assert (restated[("contain", "state")]["old"], restated[("contain", "state")]["new"]) == ("paused", "met")
    assert restated[("contain", "delay_seconds")]["new"] == str(float(100 * 60 + 60 * 60))  # pause left out
    assert "resumed at 2021-09-06T09:00:00+07:00" in restated[("contain", "state")]["reasons"]
    # Events carry the database's recording time, years after this test's fixed 2021 instants: the pause, recorded
    # before revision 1 was, is listed too.
    assert [r["type"] for r in read_csv(files["restatement-reasons.csv"])] == ["paused", "resumed", "contained"]


async def test_late_acknowledgement_corrected_restates_the_acknowledge_objective_only(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """An acknowledgement recorded two hours late and corrected to 30 minutes turns acknowledge's breach into met;
    the KPI's figures stay as published, and incidents.csv's acknowledged_at is restated with the same reason."""
    await acknowledge(conn, q, policy, august[0], bkk(2021, 8, 2, 11, 20))
    await export(conn, q, policy, key)
    fixed = EventIn(type="correction", milestone="acknowledged", at=bkk(2021, 8, 2, 9, 50), reason="typed 11:20")
    await incidents.add_event(conn, q, policy, august[0], fixed, "analyst-1")
    await export(conn, q, policy, key, now=AFTER_AUGUST + timedelta(days=2))
    files = await stored(conn, q, "2021-08", 2)
    figures = read_csv(files["restatement-figures.csv"])
    assert {r["objective"] for r in figures} == {"acknowledge"}
    changes = {(r["scope"], r["key"], r["figure"]): (r["old"], r["new"]) for r in figures}
    assert changes[("overall", "", "met")] == ("0", "1")
    assert changes[("agency", "MOF", "breached")] == ("3", "2")
    incidents_changed = {(r["objective"], r["field"]): r for r in read_csv(files["restatement-incidents.csv"])}
    assert incidents_changed[("", "acknowledged_at")]["new"] == "2021-08-02T09:50:00+07:00"
    assert incidents_changed[("acknowledge", "state")]["new"] == "met"
    assert "typed 11:20" in incidents_changed[("acknowledge", "state")]["reasons"]


# The fingerprint that the same policy file had before policies described objectives: a digest of fewer keys.
FORMAT_1_POLICY_HASH = "5" * 64


async def store_format_1(conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey) -> None:
    """August's revision 1 as a certmon without objectives stored it: format 1, no objective files, evaluated once
    the KPI's clocks were all due."""
    content = await exports.collect(conn, q, policy, AUGUST)
    for name in ("objectives", "objective_figures", "incident_objectives", "report"):
        del content[name]
    at = export_content.evaluation_instant(policy, AUGUST, [policy.kpi_name])
    content |= {"format": "certmon-monthly-export/1", "evaluated_at": at.astimezone(BKK).isoformat()}
    files = export_content.render(content)
    generated = bkk(2021, 9, 1, 1, 0)
    signed = signing.manifest_bytes(export_content.manifest(content, 1, files, policy, key, generated))
    row = await conn.fetchrow(
        q["export_insert"], "2021-08", 1, AUGUST.start, AUGUST.end, at, export_content.content_hash(content),
        FORMAT_1_POLICY_HASH, signed, signing.sign(key, signed), signing.public_pem(key), False, generated, "scheduler",
    )  # fmt: skip
    assert row is not None
    await conn.executemany(
        q["export_file_insert"],
        [
            (row["id"], n, media, len(data), hashlib.sha256(data).hexdigest(), data)
            for n, (media, data) in files.items()
        ],
    )


async def test_month_exported_before_objectives_gets_one_revision_adding_their_files_for_the_format_change(
    conn: asyncpg.Connection, q: db.Queries, policy: Policy, key: Ed25519PrivateKey, august: list[int]
) -> None:
    """After the upgrade the scheduled run gives August revision 2: the same figures.csv and incidents.csv, the
    objective files and report.pdf, no figure or incident restated (none was published before), the format changes
    as the reason (and the policy's fingerprint, which now covers its objectives); a second run leaves it at that."""
    await store_format_1(conn, q, policy, key)
    before = await stored(conn, q, "2021-08", 1)
    assert not OBJECTIVE_FILES & set(before)
    results, _ = await exports.run_due(conn, q, policy, key, bkk(2021, 9, 20, 1, 0), "scheduler")
    assert [(r.month, r.revision, r.created, r.restated) for r in results] == [("2021-08", 2, True, True)]
    after = await stored(conn, q, "2021-08", 2)
    assert after["figures.csv"] == before["figures.csv"] and after["incidents.csv"] == before["incidents.csv"]
    assert set(after) >= OBJECTIVE_FILES
    assert read_csv(after["restatement-figures.csv"]) == []
    assert read_csv(after["restatement-incidents.csv"]) == []
    reason, policy_reason = read_csv(after["restatement-reasons.csv"])
    assert (reason["type"], policy_reason["type"], policy_reason["incident"]) == ("format", "policy", "")
    assert "certmon-monthly-export/1 -> certmon-monthly-export/3" in reason["reason"]
    assert "report.pdf" in reason["reason"] and "report.pdf" in after
    assert "objective-figures.csv" in reason["reason"]
    assert "evaluated at 2021-09-04T00:00:00+07:00 (was 2021-09-01T01:00:00+07:00)" in reason["reason"]
    results, _ = await exports.run_due(conn, q, policy, key, bkk(2021, 9, 21, 1, 0), "scheduler")
    assert [(r.month, r.revision, r.created) for r in results] == [("2021-08", 2, False)]
