"""The import commands as an operator runs them: ``certmon ingest eve|wazuh`` and ``certmon import incidents``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from test_ingest import NETWORKS, expected_groups, ndjson, sample


def certmon(database_url: str, *args: str, stdin: bytes | None = None, cwd: Path | None = None) -> tuple[int, str]:
    env = {**os.environ, "CERTMON_DATABASE_URL": database_url, "CERTMON_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "certmon", *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=60
    )
    return done.returncode, done.stdout.decode()


async def with_networks(conn: asyncpg.Connection) -> None:
    for code, networks in NETWORKS.items():
        await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')", code)
        await conn.execute("INSERT INTO agency_networks SELECT $1, unnest($2::cidr[])", code, networks)


def summary(output: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in output.splitlines()) if v}


async def test_ingest_eve_reads_standard_input_and_a_second_run_from_a_file_adds_nothing(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """NDJSON on stdin creates the incidents; the same alerts as a JSON array file are all already imported."""
    records = sample("wrccdc-2018")
    await with_networks(conn)
    code, out = certmon(database_url, "ingest", "eve", "-", stdin=ndjson(records))
    assert code == 0, out
    first = summary(out)
    assert first["incidents created"] == str(len(expected_groups(records)))
    assert int(first["added to incidents"]) + int(first["matching no agency"]) == len(records)
    array = tmp_path / "eve.json"
    array.write_text(json.dumps(records))
    code, out = certmon(database_url, "ingest", "eve", str(array))
    assert (code, summary(out)["incidents created"]) == (0, "0")
    assert summary(out)["already imported"] == first["added to incidents"]
    assert await conn.fetchval("SELECT count(*) FROM incidents") == len(expected_groups(records))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


async def test_import_incidents_maps_columns_reads_local_times_and_writes_rejected_rows_with_reasons(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """Mapped columns become incidents, Bangkok times without offset are read as such, bad rows go to a file."""
    await with_networks(conn)
    row = {
        "Agency": "MOF",
        "Subject": "Phishing site imitating MOF",
        "Severity": "high",
        "Type": "fraud/phishing",
        "Detected": "2021-09-30 23:30:00",
        "Notified": "2021-10-01 00:10:00",
        "Ticket": "TC-1",
        "Remarks": "from the FY2564 spreadsheet",
    }
    rows = [
        row,
        {**row, "Ticket": "TC-2", "Agency": "XYZ"},
        {**row, "Ticket": "TC-3", "Severity": "extreme"},
        {**row, "Ticket": "TC-4", "Agency": "DGA", "Notified": "2021-09-30 23:00:00"},
        {**row, "Ticket": "", "Agency": "DGA"},
    ]
    path = tmp_path / "history.csv"
    write_csv(path, rows)
    mapping = "Agency=agency,Subject=title,Severity=severity,Type=category,Detected=detected_at,Notified=notified_at"
    args = ("import", "incidents", str(path), "--map", mapping + ",Ticket=external_id")
    code, out = certmon(database_url, *args)
    assert code == 1, out
    assert (summary(out)["imported"], summary(out)["rejected"].split()[0]) == ("2", "3")
    with (tmp_path / "history.rejected.csv").open(newline="", encoding="utf-8") as f:
        rejected = {r["Ticket"]: r["reason"] for r in csv.DictReader(f)}
    assert set(rejected) == {"TC-2", "TC-3", "TC-4"}
    assert "unknown agency 'XYZ'" in rejected["TC-2"]
    assert "severity" in rejected["TC-3"]
    assert "notified_at" in rejected["TC-4"]
    stored = await conn.fetchrow("SELECT * FROM incidents WHERE external_id = 'TC-1'")
    assert stored["source"] == "csv"
    assert stored["detected_at"] == datetime(2021, 9, 30, 16, 30, tzinfo=UTC)
    assert stored["delay_seconds"] == 2400
    code, out = certmon(database_url, *args)
    assert (summary(out)["imported"], summary(out)["already imported"]) == ("0", "2")
    assert await conn.fetchval("SELECT count(*) FROM incidents") == 2


async def test_import_refuses_a_map_to_a_field_incidents_do_not_have(database_url: str, tmp_path: Path) -> None:
    """A typo in --map stops the command before anything is read."""
    path = tmp_path / "x.csv"
    write_csv(path, [{"a": "1"}])
    code, out = certmon(database_url, "import", "incidents", str(path), "--map", "a=agencyy")
    assert code == 2
    assert "'agencyy' is not one of" in out
