"""PDF reports read back as a reader would: pdftotext for the figures and Thai words, pdffonts for the embedded
font, page 1 as an image for the colours; the fiscal report from the command line and the API, and report.pdf in
every signed monthly revision.

With CERTMON_DOCS_IMAGES=1 the tests also write page 1 of each report to docs/images/, as the docs show it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from certmon.core import export_content, fiscal_report, signing
from certmon.core.models import EventIn
from certmon.core.periods import month_period
from certmon.core.policy import Policy
from certmon.core.reports import pdf
from certmon.core.signing import load_or_create_key
from certmon.store import db, exports, fiscal_kpis, incidents
from tests.conftest import REPO, Api
from tests.external import require_program
from tests.test_exports import AFTER_AUGUST, AUGUST, add_agencies, add_incident, bkk
from tests.test_fiscal_report import MID_SEPTEMBER_2021, add, add_responses, seed_fy2564

BKK = ZoneInfo("Asia/Bangkok")
GREEN = (0x63, 0xBE, 0x7B)  # the fill of a green status cell
RED = (0xF8, 0x69, 0x6B)


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_key(tmp_path / "key.pem")


def pdf_text(data: bytes, tmp_path: Path, *, layout: bool = True) -> str:
    """What pdftotext extracts: the text a reader copies or searches for; with layout, a table row on one line."""
    pdftotext = require_program("pdftotext")
    source = tmp_path / "read.pdf"
    source.write_bytes(data)
    args = [pdftotext, *(["-layout"] if layout else []), str(source), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def read(data: bytes, tmp_path: Path) -> tuple[str, str]:
    """The rows (pdftotext -layout) and the running text (in reading order, on one line) of a PDF."""
    return pdf_text(data, tmp_path), one_line(pdf_text(data, tmp_path, layout=False))


def embedded_fonts(data: bytes, tmp_path: Path) -> dict[str, str]:
    """pdffonts' table: font name -> its "emb" column."""
    pdffonts = require_program("pdffonts")
    source = tmp_path / "fonts.pdf"
    source.write_bytes(data)
    lines = subprocess.run([pdffonts, str(source)], capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split() for line in lines[2:]]
    return {row[0].split("+")[-1]: row[-5] for row in rows}


def pdf_info(data: bytes, tmp_path: Path) -> dict[str, str]:
    pdfinfo = require_program("pdfinfo")
    source = tmp_path / "info.pdf"
    source.write_bytes(data)
    out = subprocess.run([pdfinfo, "-isodates", str(source)], capture_output=True, text=True, check=True).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def first_page(data: bytes, tmp_path: Path, docs_name: str) -> Image.Image:
    """Page 1 as an image (pdftoppm, 72 dpi), also written to docs/images/ with CERTMON_DOCS_IMAGES=1."""
    pdftoppm = require_program("pdftoppm")
    source = tmp_path / "page.pdf"
    source.write_bytes(data)
    subprocess.run([pdftoppm, "-png", "-r", "72", "-singlefile", "-f", "1", "-l", "1", str(source),
                    str(tmp_path / "page")], check=True, timeout=60)  # fmt: skip
    png = tmp_path / "page.png"
    if os.environ.get("CERTMON_DOCS_IMAGES") == "1":
        shutil.copyfile(png, REPO / "docs" / "images" / docs_name)
    return Image.open(png).convert("RGB")


def pixels_of(image: Image.Image, colour: tuple[int, int, int]) -> int:
    return sum(count for count, rgb in image.getcolors(1 << 20) or [] if rgb == colour)


THAI = "\u0e00-\u0e7f"


def one_line(text: str) -> str:
    """The text on one line, so that a phrase that wraps still matches: Thai writes no space between words, so a
    break between two Thai letters goes; any other break or run of spaces is one space."""
    joined = re.sub(f"(?<=[{THAI}])[ ]*\n\\s*(?=[{THAI}])", "", text)
    return re.sub(r"\s+", " ", joined)


async def seed_fy2564_kpis(conn: asyncpg.Connection, policy: Policy) -> None:
    """The seed's three KPIs: 49 of 50 on time from October to August, satisfaction means 4.26 and 4.36."""
    await seed_fy2564(conn, policy)
    await add_responses(conn, policy, "security-services", fives=13)
    await add_responses(conn, policy, "cii-services", fives=18)


async def test_fiscal_pdf_in_thai_holds_the_seed_kpi_table_its_words_colours_and_embedded_font(
    conn: asyncpg.Connection, policy: Policy, tmp_path: Path
) -> None:
    """FY2564 Q4 in mid-September 2021: 98 against 96 green, 85.2 and 87.2 against 85, the window ต.ค.63 - ส.ค.64,
    the colour rule in words, sectors, the worst agency, the method; real Thai text in embedded Laksaman."""
    await seed_fy2564_kpis(conn, policy)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    data = fiscal_report.render(report, "pdf", "th")
    text, flat = read(data, tmp_path)
    assert "รายงานผลการดำเนินงานตามตัวชี้วัด ปีงบประมาณ พ.ศ. 2564" in flat
    assert "ประจำไตรมาสที่ 4/2564 (สะสมตั้งแต่ 1 ตุลาคม 2563)" in flat
    assert re.search(r"\b96\s+98\s+ข้อมูล ต\.ค\.63 - ส\.ค\.64\s+เขียว", text), text
    assert re.search(r"\b85\s+85\.2\s+ข้อมูล ต\.ค\.63 - ส\.ค\.64\s+เขียว", text)
    assert re.search(r"\b85\s+87\.2\s+ข้อมูล ต\.ค\.63 - ส\.ค\.64\s+เขียว", text)
    assert "ทันเวลา 49 จาก 50 เหตุการณ์" in flat and "คะแนนเฉลี่ย 4.26 จาก 5" in flat
    assert "สีเหลือง = ต่ำกว่าเป้าหมาย 5.1-20%" in flat and "สีแดง = ต่ำกว่าเป้าหมายมากกว่า 20%" in flat
    assert re.search(r"ด้านการเงินการธนาคาร\s+49\s+1\s+0\s+98\s+เขียว", text)
    assert re.search(r"MOF\s+กระทรวงการคลัง\s+49\s+1\s+0\s+98\s+เขียว", text)
    assert "นับเวลาตั้งแต่ตรวจพบเหตุการณ์จนถึงแจ้งเตือนหน่วยงาน ภายใน 1 ชั่วโมง" in flat
    assert "รอดำเนินการ" in flat and "ไม่อยู่ในตัวหาร" in flat
    # SARA AM, stacked marks and a word that wraps: the text layer holds what the page shows.
    assert "การดำเนินงาน" in flat and "ผู้ตอบ 10 ราย" in flat and "ความพึงพอใจ" in flat
    assert embedded_fonts(data, tmp_path) == {"Laksaman-Bold": "yes", "Laksaman": "yes"}
    assert pixels_of(first_page(data, tmp_path, "fiscal-report-th.png"), GREEN) > 500, "status cells filled green"


async def test_fiscal_pdf_in_english_says_green_and_its_dates_are_the_evaluation_instant(
    conn: asyncpg.Connection, policy: Policy, tmp_path: Path
) -> None:
    """The English report names the fiscal year and the window in English and says green; the PDF's creation date
    is the instant its figures were evaluated at, not the time it was rendered."""
    await seed_fy2564_kpis(conn, policy)
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2564, 4, MID_SEPTEMBER_2021)
    data = fiscal_report.render(report, "pdf", "en")
    text, flat = read(data, tmp_path)
    assert "KPI performance report, fiscal year 2564" in flat
    assert re.search(r"\b96\s+98\s+Oct 2020 - Aug 2021\s+green", text)
    assert re.search(r"\b85\s+85\.2\s+Oct 2020 - Aug 2021\s+green", text)
    assert "เขียว" not in flat and "49 of 50 incidents on time" in flat
    assert pdf_info(data, tmp_path)["CreationDate"] == "2021-09-01T01:00:00+07"


async def test_fiscal_pdf_before_the_first_month_ends_says_there_is_no_result_yet(
    conn: asyncpg.Connection, policy: Policy, tmp_path: Path
) -> None:
    """On 15 October 2021 no month of FY2565 has ended: the report shows the KPI with no result or colour, no
    sector or agency, and no signed source, dated at the (empty) window's end."""
    report = await fiscal_kpis.build(conn, db.Queries.load(), policy, 2565, None, bkk(2021, 10, 15))
    data = fiscal_report.render(report, "pdf", "en")
    text, flat = read(data, tmp_path)
    assert re.search(r"\b96\s+-\s+-\s+-", text), text
    assert "The whole fiscal year (1 October 2021 - 30 September 2022)" in flat
    assert "No signed monthly export covers this window yet" in flat and flat.count("No data") == 2
    assert pdf_info(data, tmp_path)["CreationDate"] == "2021-10-01T00:00:00+07"


async def test_cli_writes_the_thai_pdf_of_fy2564(conn: asyncpg.Connection, database_url: str, tmp_path: Path) -> None:
    """`certmon report --fiscal-year 2564 --format pdf --lang th --out FILE` writes the A4 report of the seed's
    shape (49 of 50 in time): 98 against 96, เขียว, over the whole fiscal year's window."""
    policy = Policy()
    await conn.execute(
        "INSERT INTO agencies (code, name, name_th, sector) VALUES ($1, $2, $3, $4)",
        *("MOF", "Ministry of Finance", "กระทรวงการคลัง", "banking-finance"),
    )
    start = datetime(2020, 10, 1, 8, 0, tzinfo=BKK)
    for i in range(50):
        await add(conn, policy, start + timedelta(days=6 * i), 90 if i == 7 else 25)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env |= {"CERTMON_DATABASE_URL": database_url, "CERTMON_LOG_FORMAT": "json", "CERTMON_DATA_DIR": str(tmp_path)}
    out = tmp_path / "fy2564.pdf"
    command = [sys.executable, "-m", "certmon", "report", "--fiscal-year", "2564", "--format", "pdf", "--lang", "th"]
    done = await asyncio.to_thread(
        subprocess.run, [*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    text, flat = read(data, tmp_path)
    assert "ปีงบประมาณ พ.ศ. 2564" in flat and "ประจำปีงบประมาณ (1 ตุลาคม 2563 - 30 กันยายน 2564)" in flat
    assert re.search(r"\b96\s+98\s+ข้อมูล ต\.ค\.63 - ก\.ย\.64\s+เขียว", text), text


async def test_api_serves_the_pdf_rendered_in_a_worker_process(make_api: Any, tmp_path: Path) -> None:
    """GET /api/v1/reports/fiscal?format=pdf answers application/pdf as an attachment; with a worker process the
    rendering happens there, off the event loop."""
    api: Api = await make_api(parse_workers=1, clock=lambda: MID_SEPTEMBER_2021)
    status, _ = await api.call("POST", "/api/v1/incidents", json={
        "agency": "MOF", "title": "Phishing site", "severity": "high", "category": "fraud/phishing",
        "detected_at": "2021-08-02T09:00:00+07:00", "notified_at": "2021-08-02T09:20:00+07:00",
    })  # fmt: skip
    assert status == 201
    path = "/api/v1/reports/fiscal?fy=2564&quarter=4&format=pdf&lang=en"
    async with api.client.get(path, headers=api.headers("auditor")) as response:
        assert response.status == 200
        assert response.content_type == "application/pdf"
        assert response.headers["Content-Disposition"] == 'attachment; filename="certmon-FY2564-Q4-en.pdf"'
        data = await response.read()
    text = pdf_text(data, tmp_path)
    assert re.search(r"\b96\s+100\s+Oct 2020 - Aug 2021\s+green", text), text


async def export_month(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey, year: int, month: int, now: datetime, **kw: Any
) -> export_content.ExportResult:
    return await exports.export_month(
        conn, db.Queries.load(), policy, key, month_period(year, month, BKK), now, "test", **kw
    )


async def test_fiscal_report_names_the_signed_revisions_it_was_built_from_by_a_fingerprint_anyone_recomputes(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """Q1 after October to December are exported: the JSON lists each month's newest revision with the SHA-256 of
    its manifest.json, and the fingerprint is sha256sum of those lines, as docs/reports.md recomputes it from the
    written directories; the exports add up to the KPI. A later correction makes them disagree until restated."""
    q = db.Queries.load()
    await add_agencies(conn)
    first = await add_incident(conn, q, policy, bkk(2020, 10, 5, 9, 0), 20)
    await add_incident(conn, q, policy, bkk(2020, 11, 5, 9, 0), 90)
    await add_incident(conn, q, policy, bkk(2020, 12, 5, 9, 0), 30)
    lines = []
    for month in (10, 11, 12):
        result = await export_month(conn, policy, key, 2020, month, bkk(2021, 1, 10, 9, 0))
        files = await exports.stored_files(conn, q, result.month, result.revision)
        directory = export_content.write_directory(tmp_path / "exports", result.month, result.revision, files)
        assert signing.verify_directory(directory) == []
        digest = hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
        lines.append(f"{result.month} r{result.revision} {digest}\n")
    recomputed = hashlib.sha256("".join(lines).encode()).hexdigest()
    # The recipe of docs/reports.md, run as a reader runs it on the written directories.
    recipe = """for d in 2020-10/r1 2020-11/r1 2020-12/r1; do
    printf '%s %s %s\\n' "${d%/*}" "${d#*/}" "$(sha256sum < "$d/manifest.json" | cut -d' ' -f1)"
done | sha256sum"""
    shell = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", recipe], cwd=tmp_path / "exports", capture_output=True, text=True, check=True
    )
    assert shell.stdout.split()[0] == recomputed

    report = await fiscal_kpis.build(conn, q, policy, 2564, 1, bkk(2021, 1, 15, 9, 0))
    sources = report["sources"]
    months = [(r["month"], r["revision"]) for r in sources["revisions"]]
    assert months == [("2020-10", 1), ("2020-11", 1), ("2020-12", 1)]
    assert (sources["fingerprint"], sources["missing"], sources["matches"]) == (recomputed, [], True)
    assert (sources["met"], sources["decided"]) == (2, 3) == (report["kpis"][0]["basis"]["met"], 3)

    fixed = EventIn(type="correction", milestone="notified", at=bkk(2020, 10, 5, 10, 30), reason="call log: 10:30")
    await incidents.add_event(conn, q, policy, first, fixed, "analyst-1")
    report = await fiscal_kpis.build(conn, q, policy, 2564, 1, bkk(2021, 1, 15, 9, 0))
    assert (report["sources"]["matches"], report["kpis"][0]["basis"]["met"]) == (False, 1)
    _, text = read(fiscal_report.render(report, "pdf", "th"), tmp_path)
    assert f"(SHA-256): {recomputed}" in text
    for line in lines:  # each month's manifest digest, in its row
        assert line.split()[2] in text.replace(" ", "")
    assert "ผลรวมของรายงานประจำเดือนที่ลงนามแล้ว (ทันเวลา 2 จาก 3) ไม่ตรงกับรายงานนี้" in text


@pytest.fixture
async def august(conn: asyncpg.Connection, policy: Policy) -> list[int]:
    """August of MOF: two met, one late, one never notified (50 %, red), one acknowledged late."""
    q = db.Queries.load()
    await add_agencies(conn)
    ids = [
        await add_incident(conn, q, policy, bkk(2021, 8, 2, 9, 0), 20),
        await add_incident(conn, q, policy, bkk(2021, 8, 10, 14, 0), 45),
        await add_incident(conn, q, policy, bkk(2021, 8, 20, 22, 0), 95),
        await add_incident(conn, q, policy, bkk(2021, 8, 25, 3, 0), None),
    ]
    await incidents.add_event(conn, q, policy, ids[0], EventIn(type="acknowledged", at=bkk(2021, 8, 2, 11, 0)), "mof")
    return ids


async def test_every_monthly_revision_holds_a_signed_report_pdf_and_revision_2_says_what_was_restated_and_why(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey, august: list[int], tmp_path: Path
) -> None:
    """report.pdf of revision 1 shows August's overall, per-objective, per-sector and per-agency figures with their
    colours, is listed in the signed manifest and verifies; after a correction, revision 2's report.pdf lists the
    restated figures with old and new values and the correction's reason."""
    q = db.Queries.load()
    await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")
    files = await exports.stored_files(conn, q, "2021-08", 1)
    data = files["report.pdf"][1]
    manifest = json.loads(files["manifest.json"][1])
    listed = {f["name"]: f for f in manifest["files"]}
    assert listed["report.pdf"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed["report.pdf"]["media_type"] == "application/pdf"
    directory = export_content.write_directory(tmp_path / "out", "2021-08", 1, files)
    assert signing.verify_directory(directory, key.public_key()) == []

    text, flat = read(data, tmp_path)
    assert "รายงานผลการให้บริการตามข้อตกลงระดับการให้บริการ (SLA) ประจำเดือนสิงหาคม 2564" in flat
    assert "ฉบับที่ 1" in flat and "ข้อมูล 1 สิงหาคม 2564 - 31 สิงหาคม 2564" in flat
    assert "ประเมินสถานะ ณ 4 ก.ย. 2564 00:00 น." in flat
    assert re.search(r"แจ้งเตือนหน่วยงาน[^\n]*\s+4\s+2\s+2\s+0\s+96\s+50\s+แดง", text), text
    for label in ("หน่วยงานตอบรับภายใน 60 นาที", "ระงับเหตุได้ภายในเวลาที่กำหนด", "ประสานงานภายใน 6 ชั่วโมงทำการ"):
        assert label in flat
    assert re.search(r"ด้านการเงินการธนาคาร\s+2\s+2\s+0\s+50\s+แดง", text)
    assert re.search(r"MOF\s+กระทรวงการคลัง\s+2\s+2\s+0\s+50\s+แดง", text)
    assert "สีเขียว = เป็นไปตามเป้าหมาย/ต่ำกว่าเป้าหมายไม่เกิน 5%" in flat
    assert embedded_fonts(data, tmp_path) == {"Laksaman-Bold": "yes", "Laksaman": "yes"}
    info = pdf_info(data, tmp_path)
    assert (info["CreationDate"], info["ModDate"]) == ("2021-09-04T00:00:00+07", "2021-09-04T00:00:00+07")
    assert pixels_of(first_page(data, tmp_path, "monthly-report-th.png"), RED) > 300, "the red status cells"

    corrected = EventIn(
        type="correction", milestone="notified", at=bkk(2021, 8, 20, 22, 40), reason="sensor clock was 55 min slow"
    )
    await incidents.add_event(conn, q, policy, august[2], corrected, "analyst-1")
    result = await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST + timedelta(days=3), "test")
    assert result.revision == 2
    rows, restated = read((await exports.stored_files(conn, q, "2021-08", 2))["report.pdf"][1], tmp_path)
    assert "ฉบับที่ 2 (ปรับปรุงจากฉบับที่ 1)" in restated and "การปรับปรุงข้อมูลจากฉบับที่ 1" in restated
    assert re.search(r"notify\s+ภาพรวม\s+ทันเวลา\s+2\s+3\n", rows), rows
    assert re.search(r"notify\s+ภาพรวม\s+ร้อยละที่ทันเวลา\s+50 %\s+75 %", rows)
    assert re.search(r"notify\s+ด้านการเงินการธนาคาร\s+เกินเวลา\s+2\s+1", rows)
    assert re.search(rf"#{august[2]}\s+correction notified\s+sensor clock was 55 min slow\s+analyst-1", rows), rows
    assert re.search(r"แจ้งเตือนหน่วยงาน[^\n]*\s+4\s+3\s+1\s+0\s+96\s+75\s+แดง", rows)


async def test_report_pdf_regenerates_byte_identically_and_a_new_report_language_is_a_restatement(
    conn: asyncpg.Connection, policy: Policy, key: Ed25519PrivateKey, august: list[int], tmp_path: Path
) -> None:
    """A later run renders report.pdf to the same bytes and stores no revision; CERTMON_REPORT_LANG=en gives the next
    revision an English report.pdf (SLA report for August 2021, red) with the change of language as its reason."""
    q = db.Queries.load()
    await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")
    stored = (await exports.stored_files(conn, q, "2021-08", 1))["report.pdf"][1]
    again = export_content.render(await exports.collect(conn, q, policy, AUGUST))
    assert again["report.pdf"][1] == stored
    assert (await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test")).created is False

    result = await exports.export_month(conn, q, policy, key, AUGUST, AFTER_AUGUST, "test", lang="en")
    assert (result.revision, result.restated) == (2, True)
    files = await exports.stored_files(conn, q, "2021-08", 2)
    rows, text = read(files["report.pdf"][1], tmp_path)
    assert "SLA report for August 2021" in text and "Revision 2 (restates revision 1)" in text
    assert re.search(r"Agency notified[^\n]*\s+4\s+2\s+2\s+0\s+96\s+50\s+red", rows), rows
    reasons = json.loads(files["export.json"][1])["restatement"]["reasons"]
    assert [(r["type"], r["reason"]) for r in reasons] == [("report", "report settings changed: lang th -> en")]


def test_a_missing_thai_font_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Laksaman the report is refused with the Debian package to install, not drawn in a fallback font."""
    monkeypatch.setattr(pdf, "FONT_DIRS", (tmp_path,))
    pdf.font_files.cache_clear()
    try:
        with pytest.raises(pdf.MissingFont, match=r"Laksaman is not installed: install Debian's fonts-thai-tlwg"):
            pdf.html("fiscal.html", {}, lang="th", title="x", created=AFTER_AUGUST)
    finally:
        pdf.font_files.cache_clear()
