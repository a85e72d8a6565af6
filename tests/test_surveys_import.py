"""`certmon surveys import`: paper and online-form CSV exports, with bad rows set aside with their reasons."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from rich.console import Console

from certmon.cli import main as cli
from certmon.cli.surveys import import_csv, parse_when
from certmon.core.errors import Invalid
from certmon.core.periods import parse_period
from certmon.core.policy import Policy
from certmon.store import db, surveys

BANGKOK = ZoneInfo("Asia/Bangkok")
POLICY = Policy()

FORM_EXPORT = """\
Timestamp,Respondent name,Email,agency,timeliness,usefulness,expertise,courtesy,overall,comment
2021-08-02 09:15:00,Somchai J.,somchai@mof.go.th,MOF,5,4,4,5,4,ตอบเร็วมาก
15/08/2564 14:00,Suda P.,suda@dga.or.th,DGA,4,4,,5,4,
2021-08-20,,,,5,5,5,5,5,mail me at x@y.co.th
2021-08-21,,,MOF,6,4,4,4,4,score out of range
2021-08-22,,,XYZ,4,4,4,4,4,unknown agency
31/02/2564,,,MOF,4,4,4,4,4,no such day
2021-08-23,,,MOF,,,,,,nothing answered
2021-08-24,,,MOF,4,four,4,4,4,a word for a score
"""


def write(tmp_path: Path, text: str, name: str = "form-aug.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def agencies(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'MOF', 'government'), "
                       "('DGA', 'DGA', 'it-telecom')")  # fmt: skip


def quiet() -> Console:
    return Console(file=io.StringIO())


async def test_import_stores_good_rows_and_writes_bad_ones_with_reasons(
    tmp_path: Path, conn: asyncpg.Connection
) -> None:
    """Three valid rows are stored; five bad ones land in FILE.rejected.csv with their row number and reason."""
    await agencies(conn)
    path = write(tmp_path, FORM_EXPORT)
    result = await import_csv(conn, db.Queries.load(), POLICY, path, "security-services", console=quiet())
    assert (result.rows, result.outcome.accepted, result.outcome.duplicates, result.rejected) == (8, 3, 0, 5)
    assert result.ignored_columns == ["Respondent name", "Email"]
    assert result.rejects_path == tmp_path / "form-aug.rejected.csv"
    with result.rejects_path.open(encoding="utf-8", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    reasons = {int(r["row"]): r["reason"] for r in rejected}
    assert set(reasons) == {5, 6, 7, 8, 9}
    assert reasons[5].startswith("answers.timeliness:")
    assert reasons[6] == "agency: unknown agency 'XYZ'"
    assert reasons[7].startswith("Timestamp:") and "day is out of range" in reasons[7]
    assert reasons[8].startswith("answers:")
    assert reasons[9].startswith("answers.usefulness:")
    assert rejected[0]["comment"] == "score out of range"  # the row as it was, ready to fix and import again


async def test_imported_rows_keep_no_names_or_addresses(tmp_path: Path, conn: asyncpg.Connection) -> None:
    """Name and e-mail columns are dropped and addresses inside comments are masked."""
    await agencies(conn)
    await import_csv(
        conn, db.Queries.load(), POLICY, write(tmp_path, FORM_EXPORT), "security-services", console=quiet()
    )
    dump = await conn.fetchval("SELECT string_agg(row_to_json(r)::text, ' ') FROM survey_responses r")
    assert "Somchai" not in dump and "Suda" not in dump and "@" not in dump


async def test_import_reads_buddhist_era_dates_and_local_times_and_skips_empty_answers(
    tmp_path: Path, conn: asyncpg.Connection
) -> None:
    """15/08/2564 14:00 is 2021-08-15 14:00 Bangkok; an empty cell is a question left unanswered."""
    await agencies(conn)
    q = db.Queries.load()
    await import_csv(conn, q, POLICY, write(tmp_path, FORM_EXPORT), "security-services", console=quiet())
    row = await conn.fetchrow("SELECT * FROM survey_responses WHERE agency_code = 'DGA'")
    assert row["submitted_at"] == datetime(2021, 8, 15, 14, 0, tzinfo=BANGKOK)
    assert row["answer_count"] == 4
    assert row["channel"] == "paper"
    assert row["external_id"] == "form-aug.csv:3"
    figures = await surveys.summary(conn, q, POLICY, parse_period("2021-08", POLICY.tz), service="security-services")
    assert figures["responses"] == 3
    assert figures["answers"] == 14


async def test_importing_the_same_file_again_adds_nothing(tmp_path: Path, conn: asyncpg.Connection) -> None:
    """Rows are keyed by file name and row, so a second run reports every good row as already there."""
    await agencies(conn)
    q = db.Queries.load()
    path = write(tmp_path, FORM_EXPORT)
    await import_csv(conn, q, POLICY, path, "security-services", console=quiet())
    again = await import_csv(conn, q, POLICY, path, "security-services", console=quiet())
    assert (again.outcome.accepted, again.outcome.duplicates, again.rejected) == (0, 3, 5)
    assert await conn.fetchval("SELECT count(*) FROM survey_responses") == 3


async def test_import_refuses_a_file_without_date_or_question_columns(tmp_path: Path, conn: asyncpg.Connection) -> None:
    """A CSV of another service's questions, or without a date column, is refused as a whole."""
    q = db.Queries.load()
    cii = write(tmp_path, "date,guidance,response\n2021-08-01,5,5\n")
    with pytest.raises(Invalid, match="no question column"):
        await import_csv(conn, q, POLICY, cii, "security-services", console=quiet())
    undated = write(tmp_path, "overall\n5\n", "undated.csv")
    with pytest.raises(Invalid, match="date column"):
        await import_csv(conn, q, POLICY, undated, "security-services", console=quiet())
    with pytest.raises(Invalid, match="unknown survey service"):
        await import_csv(conn, q, POLICY, cii, "hosting", console=quiet())


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2021-08-15", datetime(2021, 8, 15, tzinfo=BANGKOK)),
        ("2021-08-15T10:30:00+00:00", datetime(2021, 8, 15, 17, 30, tzinfo=BANGKOK)),
        ("15/08/2021 10:30", datetime(2021, 8, 15, 10, 30, tzinfo=BANGKOK)),
        ("1/10/2564", datetime(2021, 10, 1, tzinfo=BANGKOK)),
    ],
)
def test_dates_are_bangkok_local_unless_they_carry_an_offset(cell: str, expected: datetime) -> None:
    """Form exports write local times, sometimes with a Buddhist Era year; both read as Bangkok time."""
    assert parse_when(cell, POLICY) == expected


def test_cli_import_prints_a_summary_and_exits_1_when_rows_were_rejected(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`certmon surveys import` reports stored, repeated and rejected rows and where the rejects went."""
    monkeypatch.setenv("CERTMON_DATABASE_URL", database_url)
    monkeypatch.setenv("CERTMON_LOG_FORMAT", "json")
    path = write(tmp_path, "date,agency,overall,timeliness\n2021-08-01,,5,4\n2021-08-02,,9,4\n")
    rejects = tmp_path / "bad.csv"
    code = cli.main(["surveys", "import", str(path), "--service", "security-services", "--rejects", str(rejects)])
    out = capsys.readouterr()
    assert code == 1
    assert "form-aug.csv: 2 rows: 1 stored, 0 already there, 1 rejected" in out.out
    assert f"rejected rows with reasons: {rejects}" in out.out
    assert "importing form-aug.csv" in out.err  # the progress bar
    assert rejects.read_text(encoding="utf-8").splitlines()[1].startswith("3,answers.overall:")
