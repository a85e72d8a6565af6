"""The fiscal-year KPI report: the seed's FY2564 table, its data window, fiscal-year edges, formats and access."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from certmon.core import fiscal_report, satisfaction
from certmon.core.models import IncidentIn
from certmon.core.policy import Policy
from certmon.store import db, fiscal_kpis, incidents, surveys
from tests.conftest import Api

BKK = ZoneInfo("Asia/Bangkok")
MID_SEPTEMBER_2021 = datetime(2021, 9, 15, 10, 0, tzinfo=BKK)


async def add(conn: asyncpg.Connection, policy: Policy, detected: datetime, notify_after_min: int | None) -> None:
    fields: dict[str, Any] = {
        "agency": "MOF",
        "title": "Defacement of a ministry web site",
        "severity": "high",
        "category": "intrusions/application-compromise",
        "detected_at": detected,
    }
    if notify_after_min is not None:
        fields["notified_at"] = detected + timedelta(minutes=notify_after_min)
    await incidents.create(conn, db.Queries.load(), policy, IncidentIn.model_validate(fields), "test")


async def seed_fy2564(conn: asyncpg.Connection, policy: Policy) -> None:
    """49 of 50 alerts notified within the hour between October 2020 and August 2021, plus late ones outside it."""
    await conn.execute(
        "INSERT INTO agencies (code, name, name_th, sector) VALUES ($1, $2, $3, $4)",
        *("MOF", "Ministry of Finance", "กระทรวงการคลัง", "banking-finance"),
    )
    start = datetime(2020, 10, 1, 8, 0, tzinfo=BKK)
    for i in range(50):
        await add(conn, policy, start + timedelta(days=6 * i), 90 if i == 7 else 25)
    await add(conn, policy, datetime(2021, 9, 10, 9, 0, tzinfo=BKK), 120)  # September: after the window
    await add(conn, policy, datetime(2021, 9, 30, 17, 30, tzinfo=UTC), 120)  # 00:30 on 1 October: FY2565
    await add(conn, policy, datetime(2020, 9, 30, 16, 59, tzinfo=UTC), 120)  # 23:59 on 30 September: FY2563


async def add_responses(conn: asyncpg.Connection, policy: Policy, service: str, fives: int) -> None:
    """Ten responses of five answers each, ``fives`` fives and the rest fours, in July 2021."""
    questions = policy.surveys.services[service].question_ids()
    scores = [5] * fives + [4] * (50 - fives)
    for i in range(10):
        answers = dict(zip(questions, scores[i * 5 : i * 5 + 5], strict=True))
        when = datetime(2021, 7, 5, 9, i, tzinfo=BKK)
        response = satisfaction.ResponseIn(service=service, agency="MOF", submitted_at=when, answers=answers)
        await surveys.create(conn, db.Queries.load(), policy, response, "test")


async def test_fy2564_q4_reproduces_the_seed_sla_kpi_over_october_to_august(
    conn: asyncpg.Connection, policy: Policy
) -> None:
    """Run in mid-September 2021, Q4 covers Oct 2020 - Aug 2021: 49 of 50 is 98 % against 96 %, green."""
    await seed_fy2564(conn, policy)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    assert report["window"]["label_th"] == "ข้อมูล ต.ค.63 - ส.ค.64"
    assert report["window"]["label_en"] == "Oct 2020 - Aug 2021"
    sla = report["kpis"][0]
    assert (sla["target"], sla["result"], sla["status"]) == (96.0, 98.0, "green")
    assert sla["basis"] == {"met": 49, "decided": 50}


async def test_incident_just_after_bangkok_midnight_on_1_october_counts_in_the_next_fiscal_year(
    conn: asyncpg.Connection, policy: Policy
) -> None:
    """2021-09-30T17:30Z is FY2565; 2020-09-30T16:59Z is FY2563: neither is in FY2564's full-year figure."""
    await seed_fy2564(conn, policy)
    after = datetime(2022, 1, 15, tzinfo=BKK)
    full_year = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, None, after)
    assert full_year["kpis"][0]["basis"] == {"met": 49, "decided": 51}
    assert full_year["window"]["label_en"] == "Oct 2020 - Sep 2021"
    next_year = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2565, 1, after)
    assert next_year["kpis"][0]["basis"] == {"met": 0, "decided": 1}
    assert next_year["kpis"][0]["status"] == "red"


async def test_quarter_is_cumulative_from_october(conn: asyncpg.Connection, policy: Policy) -> None:
    """Q1 covers October to December only; its window label says so."""
    await seed_fy2564(conn, policy)
    q1 = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 1, MID_SEPTEMBER_2021)
    assert q1["window"]["label_en"] == "Oct 2020 - Dec 2020"
    assert q1["kpis"][0]["basis"]["decided"] == 16  # alerts every 6 days from 1 October: days 0..90


async def test_report_before_its_first_month_ends_has_no_result(conn: asyncpg.Connection, policy: Policy) -> None:
    """On 15 October nothing of the fiscal year is complete: the SLA KPI has no result and no colour."""
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2565, None, datetime(2021, 10, 15, tzinfo=BKK))
    sla = report["kpis"][0]
    assert (sla["result"], sla["status"], report["window"]["label_en"]) == (None, None, "-")


async def test_satisfaction_kpis_join_the_table_when_surveys_have_responses(
    conn: asyncpg.Connection, policy: Policy
) -> None:
    """Means 4.26 and 4.36 give the seed's 85.2 % and 87.2 % against 85 %, both green, in Thai and English."""
    await seed_fy2564(conn, policy)
    await add_responses(conn, policy, "security-services", fives=13)
    await add_responses(conn, policy, "cii-services", fives=18)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    results = [(k["id"], k["target"], k["result"], k["status"]) for k in report["kpis"]]
    assert results == [
        ("sla-notify-1h", 96.0, 98.0, "green"),
        ("satisfaction-security-services", 85.0, 85.2, "green"),
        ("satisfaction-cii-services", 85.0, 87.2, "green"),
    ]
    text = fiscal_report.text_table(report, "th")
    assert "ร้อยละความพึงพอใจในการให้บริการด้านความมั่นคงปลอดภัยฯ" in text and "85.2" in text and "เขียว" in text
    assert "Satisfaction with security services" in fiscal_report.text_table(report, "en")


async def test_report_formats_csv_with_bom_xlsx_with_fill_and_json(conn: asyncpg.Connection, policy: Policy) -> None:
    """CSV starts with a BOM, XLSX has the Thai header and a green fill, JSON carries both languages' labels."""
    await seed_fy2564(conn, policy)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    csv_data = fiscal_report.render(report, "csv", "th")
    assert csv_data.startswith(b"\xef\xbb\xbf") and "ข้อมูล ต.ค.63 - ส.ค.64" in csv_data.decode("utf-8-sig")
    workbook = zipfile.ZipFile(io.BytesIO(fiscal_report.render(report, "xlsx", "en")))
    assert "ตัวชี้วัด" in workbook.read("xl/sharedStrings.xml").decode()
    assert "63BE7B" in workbook.read("xl/styles.xml").decode()
    data = json.loads(fiscal_report.render(report, "json", "en"))
    assert data["kpis"][0]["kpi_th"].startswith("ร้อยละของการแจ้งเตือน") and data["lang"] == "en"


async def test_api_serves_the_report_and_refuses_agency_tokens_and_ce_years(api: Api) -> None:
    """GET /api/v1/reports/fiscal?fy=2564&quarter=4 answers JSON; fy=2021 is 422 with a hint; agencies get 403."""
    status, body = await api.call("GET", "/api/v1/reports/fiscal?fy=2564&quarter=4", "auditor")
    assert status == 200, body
    assert (body["fiscal_year"], body["quarter"], body["window"]["label_en"]) == (2564, 4, "Oct 2020 - Sep 2021")
    status, body = await api.call("GET", "/api/v1/reports/fiscal?fy=2021", "auditor")
    assert (status, body["errors"][0]["field"]) == (422, "fy")
    assert "FY2564" in body["detail"]
    assert (await api.call("GET", "/api/v1/reports/fiscal?fy=2564", "agency"))[0] == 403
    async with api.client.get("/api/v1/reports/fiscal?fy=2564&format=csv&lang=en", headers=api.headers("analyst")) as r:
        assert r.status == 200 and (await r.read()).startswith(b"\xef\xbb\xbfkpi,target,result")


def test_cli_prints_the_table_and_refuses_a_ce_year(database_url: str, tmp_path: Path) -> None:
    """`certmon report --fiscal-year 2564 --quarter 4 --lang en` prints the table; 2021 exits 2 with a hint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env |= {"CERTMON_DATABASE_URL": database_url, "CERTMON_LOG_FORMAT": "json", "CERTMON_DATA_DIR": str(tmp_path)}

    def certmon(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "certmon", "report", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    table = certmon("--fiscal-year", "2564", "--quarter", "4", "--lang", "en")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        "KPI",
        "Target",
        "(%)",
        "Result",
        "(%)",
        "Status",
        "Data",
        "window",
        "Basis",
    ]
    assert "Alerts notified and acted on by ThaiCERT within 1 hour  96" in table.stdout
    out = tmp_path / "fy2564.xlsx"
    assert certmon("--fiscal-year", "FY2564", "--format", "xlsx", "--out", str(out)).returncode == 0
    assert zipfile.is_zipfile(out)
    wrong = certmon("--fiscal-year", "2021")
    assert wrong.returncode == 2 and "FY2564" in wrong.stderr
