"""``certmon surveys import FILE.csv --service S``: paper and online-form exports into survey responses.

One header row; columns are matched case-insensitively:
  submitted_at (or date)   ISO 8601, or DD/MM/YYYY [HH:MM[:SS]] with a CE or Buddhist Era year; without an offset
                           the time is local to the policy's timezone, and a bare date means its local midnight
  <question id>            one column per question of the service, a score 1-5; an empty cell is "not answered"
  agency, comment, channel, external_id   optional
Any other column (respondent name, e-mail, ...) is ignored and never stored. Rows without an external_id get
"<file name>:<row>", so importing the same file again adds nothing.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import asyncpg
import pydantic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from certmon.cli.common import run_db
from certmon.core.errors import CertmonError, Invalid
from certmon.core.periods import BE_OFFSET
from certmon.core.policy import Policy, load_policy
from certmon.core.settings import Settings
from certmon.store import bulk, db, surveys

CHUNK_ROWS = 1000  # rows per COPY; the progress bar moves once per chunk
DATE_ALIASES = ("submitted_at", "date", "submitted", "timestamp")
KNOWN_COLUMNS = ("agency", "comment", "channel", "external_id")
_THAI_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
MIN_BE_YEAR = 2400  # a four-digit year above this is Buddhist Era (2564 = 2021)


@dataclass(slots=True)
class ImportResult:
    rows: int = 0
    outcome: bulk.BulkOutcome = field(default_factory=bulk.BulkOutcome)
    ignored_columns: list[str] = field(default_factory=list)
    rejects_path: Path | None = None

    @property
    def rejected(self) -> int:
        return len(self.outcome.rejected)


def parse_when(raw: str, policy: Policy) -> datetime:
    """A submission instant from a form export's date cell; ValueError saying what is accepted."""
    text = raw.strip()
    if not text:
        raise ValueError("is empty")
    if m := _THAI_DATE.fullmatch(text):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
        if year > MIN_BE_YEAR:
            year -= BE_OFFSET
        clock = time(int(m[4] or 0), int(m[5] or 0), int(m[6] or 0))
        return datetime.combine(date(year, month, day), clock, tzinfo=policy.tz)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: use 2021-08-15, 2021-08-15T10:30:00+07:00 or 15/08/2564 10:30"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=policy.tz)


@dataclass(frozen=True, slots=True)
class Columns:
    date: str
    questions: dict[str, str]  # question id -> header as written
    known: dict[str, str]
    ignored: list[str]


def map_columns(header: Sequence[str], question_ids: Sequence[str]) -> Columns:
    by_name = {name.strip().lower(): name for name in header}
    date_header = next((by_name[alias] for alias in DATE_ALIASES if alias in by_name), None)
    if date_header is None:
        raise Invalid("submitted_at", f"the CSV needs a date column named one of: {', '.join(DATE_ALIASES)}")
    questions = {qid: by_name[qid.lower()] for qid in question_ids if qid.lower() in by_name}
    if not questions:
        raise Invalid("answers", f"the CSV has no question column; expected some of: {', '.join(question_ids)}")
    known = {name: by_name[name] for name in KNOWN_COLUMNS if name in by_name}
    used = {date_header, *questions.values(), *known.values()}
    return Columns(date_header, questions, known, [name for name in header if name not in used])


def _score(raw: str) -> Any:
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        return text  # left for validation, which names the question and says 1-5


def response_fields(
    record: dict[str, str], columns: Columns, service: str, default_id: str, channel: str = "paper"
) -> dict[str, Any]:
    answers = {qid: _score(record.get(header) or "") for qid, header in columns.questions.items()}
    cells = {name: (record.get(header) or "").strip() for name, header in columns.known.items()}
    return {
        "service": service,
        "agency": cells.get("agency") or None,
        "answers": {qid: score for qid, score in answers.items() if score != ""},
        "comment": cells.get("comment") or None,
        "channel": cells.get("channel") or channel,
        "external_id": cells.get("external_id") or default_id,
    }


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            records = list(reader)
            return list(reader.fieldnames or []), records
    except OSError as exc:
        raise CertmonError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CertmonError(f"{path}: not a UTF-8 CSV file: {exc}") from exc


def write_rejects(path: Path, header: list[str], records: list[dict[str, str]], rejected: list[dict[str, Any]]) -> None:
    """The rejected rows as they were, after their row number and the reason, ready to fix and import again."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "reason", *header])
        for item in rejected:
            record = records[int(item["line"]) - 2]
            writer.writerow([item["line"], item["error"], *(record.get(name, "") for name in header)])


async def import_csv(
    conn: asyncpg.Connection,
    q: db.Queries,
    policy: Policy,
    path: Path,
    service: str,
    *,
    rejects_path: Path | None = None,
    actor: str = "csv-import",
    channel: str = "paper",
    console: Console | None = None,
) -> ImportResult:
    """Validate and store every row; rows are numbered as in a spreadsheet (the header is row 1)."""
    if service not in policy.surveys.services:
        raise Invalid("service", f"unknown survey service {service!r} (known: {', '.join(policy.surveys.services)})")
    header, records = _read(path)
    columns = map_columns(header, policy.surveys.services[service].question_ids())
    agencies = {r["code"] for r in await conn.fetch(q["agency_codes"])}
    result = ImportResult(rows=len(records), ignored_columns=columns.ignored)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    with progress:
        task = progress.add_task(f"importing {path.name}", total=len(records))
        for start in range(0, len(records), CHUNK_ROWS):
            chunk = records[start : start + CHUNK_ROWS]
            rows = []
            for row_number, record in enumerate(chunk, start=start + 2):
                try:
                    fields = response_fields(record, columns, service, f"{path.name}:{row_number}", channel)
                    fields["submitted_at"] = parse_when(record.get(columns.date) or "", policy)
                    rows.append(surveys.stage_row(row_number, fields, policy, agencies, actor))
                except pydantic.ValidationError as exc:
                    result.outcome.rejected.append({"line": row_number, "error": bulk.describe(exc)})
                except CertmonError as exc:
                    result.outcome.rejected.append({"line": row_number, "error": exc.detail})
                except ValueError as exc:
                    result.outcome.rejected.append({"line": row_number, "error": f"{columns.date}: {exc}"})
            await surveys.store(conn, q, rows, result.outcome)
            progress.advance(task, len(chunk))
    result.outcome.rejected.sort(key=lambda item: int(item["line"]))
    if result.outcome.rejected:
        result.rejects_path = rejects_path or path.with_name(f"{path.stem}.rejected.csv")
        write_rejects(result.rejects_path, header, records, result.outcome.rejected)
    return result


def report(result: ImportResult, path: Path) -> str:
    outcome = result.outcome
    lines = [
        f"{path.name}: {result.rows} rows: {outcome.accepted} stored, {outcome.duplicates} already there, "
        f"{result.rejected} rejected"
    ]
    if result.ignored_columns:
        lines.append(f"ignored columns (not stored): {', '.join(result.ignored_columns)}")
    if result.rejects_path is not None:
        lines.append(f"rejected rows with reasons: {result.rejects_path}")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    path = Path(args.file)

    async def work(conn: asyncpg.Connection) -> ImportResult:
        return await import_csv(
            conn,
            db.Queries.load(),
            policy,
            path,
            args.service,
            rejects_path=args.rejects,
            actor=f"import {path.name}",
            channel=args.channel,
        )

    result: ImportResult = run_db(settings, work)
    print(report(result, path))
    return 1 if result.rejected else 0


def add_commands(subparsers: Any) -> None:
    group = subparsers.add_parser("surveys", help="satisfaction surveys")
    commands = group.add_subparsers(dest="surveys_command", required=True)
    p = commands.add_parser(
        "import",
        help="import survey responses from a CSV export (paper or online form)",
        description=(__doc__ or "").partition("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="CSV file, UTF-8, one header row")
    p.add_argument("--service", required=True, help="survey service the responses belong to, e.g. security-services")
    p.add_argument("--rejects", type=Path, help="where to write rejected rows (default: FILE.rejected.csv)")
    p.add_argument("--channel", default="paper", help="channel of rows without a channel column (default: paper)")
    p.set_defaults(handler=cmd_import)
