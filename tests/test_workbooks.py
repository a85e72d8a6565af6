"""Workbooks for people and files for programs: XLSX opened as a reader opens it (title, Thai words, number formats,
date cells), CSV without float noise, and the report language as a setting."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import openpyxl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certmon.core import fiscal_report
from certmon.core.models import EventIn
from certmon.core.policy import Policy
from certmon.core.settings import Settings, SettingsError
from certmon.core.signing import load_or_create_key
from certmon.core.tables import Column, Table, to_csv
from certmon.store import db, exports, fiscal_kpis, incidents
from tests.test_exports import AFTER_AUGUST, AUGUST, add_agencies, add_incident, bkk
from tests.test_fiscal_report import MID_SEPTEMBER_2021, add_responses, seed_fy2564

NOISE = re.compile(r"\d\.\d{7,}")  # more decimals than any figure is written with


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_key(tmp_path / "key.pem")


def workbook(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


async def test_thai_fiscal_workbook_has_a_title_thai_status_words_and_two_decimal_percentages(
    conn: asyncpg.Connection, policy: Policy
) -> None:
    """The Thai XLSX of FY2564 Q4 opens with its title and a note naming the unit and window; the SLA row says
    เขียว in a green cell, and target and result are numbers shown to two decimals (96.00, 98.00)."""
    await seed_fy2564(conn, policy)
    await add_responses(conn, policy, "security-services", fives=13)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    book = workbook(fiscal_report.render(report, "xlsx", "th"))
    sheet = book.worksheets[0]
    assert sheet["A1"].value == "รายงานผลการดำเนินงานตามตัวชี้วัด ปีงบประมาณ พ.ศ. 2564 ไตรมาสที่ 4"
    assert "หน่วย: ร้อยละ" in sheet["A2"].value and "ข้อมูล ต.ค.63 - ส.ค.64" in sheet["A2"].value
    assert [c.value for c in sheet[3]][:4] == ["ตัวชี้วัด", "เป้าหมาย (ร้อยละ)", "ผล (ร้อยละ)", "สถานะ"]
    kpi = [c for c in sheet[5]]
    assert kpi[0].value.startswith("ร้อยละของการแจ้งเตือน")
    assert (kpi[1].value, kpi[1].number_format, kpi[2].value, kpi[2].number_format) == (96, "0.00", 98, "0.00")
    assert kpi[3].value == "เขียว" and kpi[3].fill.fgColor.rgb.endswith("63BE7B")
    assert [c.value for c in book.worksheets[0]["D"]][5] == "เขียว"  # the satisfaction row
    sectors = book["Sectors"]
    assert [c.value for c in sectors[5]] == ["ด้านการเงินการธนาคาร", 49, 1, 0, 0, 98, "เขียว"]
    assert [c.value for c in book["Worst agencies"][5]][:3] == ["MOF", "Ministry of Finance", "กระทรวงการคลัง"]
    english = workbook(fiscal_report.render(report, "xlsx", "en")).worksheets[0]
    assert english["A1"].value == "KPI performance report, fiscal year 2564, quarter 4"
    assert english["D5"].value == "green"


async def test_thai_fiscal_csv_keeps_the_status_code(conn: asyncpg.Connection, policy: Policy) -> None:
    """CSV is for programs: the Thai CSV's labels are Thai, its status column the code green."""
    await seed_fy2564(conn, policy)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    rows = list(csv.DictReader(io.StringIO(fiscal_report.render(report, "csv", "th").decode("utf-8-sig"))))
    assert (rows[0]["status"], rows[0]["result"], rows[0]["target"]) == ("green", "98.0", "96.0")


async def test_monthly_workbook_shows_thai_states_bangkok_date_cells_and_percentages(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """export.xlsx opens with the month's title; incidents read ทันเวลา / เกินเวลา, their times are date cells in
    Bangkok time to the second, and compliance is a percentage to two decimals; incidents.csv keeps met and ISO."""
    q = db.Queries.load()
    await add_agencies(conn)
    on_time = await add_incident(conn, q, policy, bkk(2021, 8, 2, 9, 0) + timedelta(microseconds=123456), 20)
    await add_incident(conn, q, policy, bkk(2021, 8, 20, 22, 0), 95)
    await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")
    files = await exports.stored_files(conn, q, "2021-08", 1)
    book = workbook(files["export.xlsx"][1])
    figures, sheet = book["Figures"], book["Incidents"]
    assert figures["A1"].value == "certmon: รายงาน SLA ประจำเดือนสิงหาคม 2564"
    assert "ประเมินสถานะ ณ 4 ก.ย. 2564 00:00 น." in figures["A2"].value and "Asia/Bangkok" in figures["A2"].value
    heads = [c.value for c in figures[4]]
    overall = dict(zip(heads, [c for c in figures[5]], strict=True))
    assert (overall["Compliance"].value, overall["Compliance"].number_format) == (0.5, "0.00%")
    assert (overall["Status"].value, overall["Status"].fill.fgColor.rgb[-6:]) == ("แดง", "F8696B")
    heads = [c.value for c in sheet[4]]
    first = dict(zip(heads, [c for c in sheet[5]], strict=True))
    assert first["Incident"].value == on_time and first["SLA state"].value == "ทันเวลา"
    assert first["Severity"].value == "สูง"  # the built-in severity high
    assert first["Detected"].value == datetime(2021, 8, 2, 9, 0, 0)  # Bangkok wall time, no microseconds
    assert first["Detected"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert dict(zip(heads, [c.value for c in sheet[6]], strict=True))["SLA state"] == "เกินเวลา"
    machine = list(csv.DictReader(io.StringIO(files["incidents.csv"][1].decode("utf-8-sig"))))
    assert (machine[0]["state"], machine[0]["detected_at"]) == ("met", "2021-08-02T09:00:00.123456+07:00")


async def test_no_csv_of_a_restated_month_carries_float_noise(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey
) -> None:
    """After a correction restates August, no CSV of either revision has a number with more than six decimals."""
    q = db.Queries.load()
    await add_agencies(conn)
    ids = [await add_incident(conn, q, policy, bkk(2021, 8, d, 9, 0), m) for d, m in ((2, 20), (10, 45), (20, 95))]
    await add_incident(conn, q, policy, bkk(2021, 8, 25, 3, 0), None)
    await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")
    fixed = EventIn(type="correction", milestone="notified", at=bkk(2021, 8, 20, 9, 40), reason="typo")
    await incidents.add_event(conn, q, policy, ids[2], fixed, "analyst-1")
    await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST + timedelta(days=1), "test")
    for revision in (1, 2):
        for name, (_, data) in (await exports.stored_files(conn, q, "2021-08", revision)).items():
            if name.endswith(".csv"):
                assert not NOISE.search(data.decode("utf-8-sig")), (revision, name)


def test_csv_writes_floats_to_six_decimals_and_seconds_to_three() -> None:
    """0.21874999999999997 is written 0.21875 in any column, a delay of 1.23456 s as 1.235."""
    table = Table(
        "t", "T", (Column("old", "Old", "เดิม"), Column("delay", "Delay", "ระยะเวลา", "seconds")),
        [{"old": (0.96 - 0.75) / 0.96, "delay": 1.23456}],
    )  # fmt: skip
    assert to_csv(table).decode("utf-8-sig").splitlines()[1] == "0.21875,1.235"


def test_report_language_is_a_setting_th_by_default() -> None:
    """CERTMON_REPORT_LANG is th unless set to en; anything else stops start-up naming the variable."""
    assert Settings.from_env({}).report_lang == "th"
    assert Settings.from_env({"CERTMON_REPORT_LANG": "EN"}).report_lang == "en"
    with pytest.raises(SettingsError, match="CERTMON_REPORT_LANG='fr'"):
        Settings.from_env({"CERTMON_REPORT_LANG": "fr"})
