"""``certmon import incidents FILE.csv --map column=field,...``: historical incidents from a spreadsheet export.

Columns map to the fields of an incident (those of POST /api/v1/incidents); a column named like a field needs no
mapping. Times without a UTC offset are read in the policy's timezone (Bangkok). Rows without an ``external_id``
get one derived from their content, so importing the same file twice stores nothing new.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import pydantic

from certmon.cli.common import run_db
from certmon.cli.progress import progress_bar
from certmon.core.clocks import Clocks
from certmon.core.errors import CertmonError
from certmon.core.models import IncidentIn
from certmon.core.policy import Policy, load_policy
from certmon.core.settings import Settings
from certmon.store import bulk, db

SOURCE = "csv"
BATCH_ROWS = 5_000
FIELDS = tuple(IncidentIn.model_fields)
TIME_FIELDS = tuple(name for name in FIELDS if name.endswith("_at"))


@dataclass(slots=True)
class CsvOutcome:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def parse_map(raw: list[str]) -> dict[str, str]:
    """``--map "Agency=agency,Detected (local)=detected_at"`` (repeatable) as {column: field}."""
    mapping: dict[str, str] = {}
    for item in ",".join(raw).split(","):
        if not item.strip():
            continue
        column, sep, target = item.rpartition("=")
        if not sep or not column.strip():
            raise argparse.ArgumentTypeError(f"--map {item!r}: write column=field")
        if target.strip() not in FIELDS:
            raise argparse.ArgumentTypeError(f"--map {item!r}: {target.strip()!r} is not one of {', '.join(FIELDS)}")
        mapping[column.strip()] = target.strip()
    return mapping


def _localize(value: str, tz: ZoneInfo) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # left for validation to report
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).isoformat()


def incident_fields(row: dict[str, str], columns: dict[str, str], tz: ZoneInfo) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column, target in columns.items():
        value = (row.get(column) or "").strip()
        if value:
            data[target] = _localize(value, tz) if target in TIME_FIELDS else value
    data.setdefault("source", SOURCE)
    if "external_id" not in data:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        data["external_id"] = f"row:{digest[:32]}"
    return data


class Importer:
    def __init__(self, conn: asyncpg.Connection, policy: Policy, columns: dict[str, str], tz: ZoneInfo, rejects: Any):
        self.conn = conn
        self.q = db.Queries.load()
        self.columns = columns
        self.tz = tz
        self.clocks = Clocks(policy)
        self.rejects = rejects
        self.outcome = CsvOutcome()
        self.agencies: set[str] = set()
        self._rows: list[tuple[Any, ...]] = []
        self._originals: dict[int, dict[str, str]] = {}

    async def start(self) -> None:
        self.agencies = {r["code"] for r in await self.conn.fetch(self.q["agency_codes"])}

    async def add(self, line: int, row: dict[str, str]) -> None:
        self.outcome.rows += 1
        try:
            data = IncidentIn.model_validate(incident_fields(row, self.columns, self.tz))
            if data.agency not in self.agencies:
                raise ValueError(f"agency: unknown agency {data.agency!r}")
            self._rows.append((line, *self.clocks.insert_args(data, "csv-import")))
            self._originals[line] = row
        except pydantic.ValidationError as exc:
            self.reject(line, bulk.describe(exc), row)
        except CertmonError as exc:
            self.reject(line, exc.detail, row)
        except ValueError as exc:
            self.reject(line, str(exc), row)
        if len(self._rows) >= BATCH_ROWS:
            await self.flush()

    def reject(self, line: int, reason: str, row: dict[str, str]) -> None:
        self.outcome.rejected += 1
        self.rejects.writerow({"line": line, "reason": reason, **row})

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        stored = bulk.BulkOutcome()
        await bulk.store(self.conn, self.q, rows, stored)
        self.outcome.imported += stored.accepted
        self.outcome.duplicates += stored.duplicates
        for item in stored.rejected:
            self.reject(int(item["line"]), str(item["error"]), self._originals[int(item["line"])])
        self._originals.clear()


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    try:
        tz = ZoneInfo(args.timezone or policy.timezone)
        explicit = parse_map(args.map or [])
    except (ZoneInfoNotFoundError, ValueError, argparse.ArgumentTypeError) as exc:
        print(f"certmon: {exc}")
        return 2
    path = Path(args.file)
    rejects_path = Path(args.rejects) if args.rejects else path.with_name(path.stem + ".rejected.csv")

    size = path.stat().st_size
    with (
        path.open("rb") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text,
        rejects_path.open("w", newline="", encoding="utf-8") as out,
        progress_bar() as bar,
    ):
        reader = csv.DictReader(text, delimiter=args.delimiter)
        headers = list(reader.fieldnames or [])
        missing = [c for c in explicit if c not in headers]
        if missing:
            print(f"certmon: --map names columns the file does not have: {', '.join(missing)}")
            return 2
        columns = {h: h for h in headers if h in FIELDS} | explicit
        rejects = csv.DictWriter(out, fieldnames=["line", "reason", *headers], extrasaction="ignore")
        rejects.writeheader()
        task = bar.add_task("incidents", total=size, status="")

        async def work(conn: asyncpg.Connection) -> CsvOutcome:
            importer = Importer(conn, policy, columns, tz, rejects)
            importer.outcome.ignored_columns = [h for h in headers if h not in columns]
            await importer.start()
            for row in reader:
                await importer.add(reader.line_num, row)
                if importer.outcome.rows % 1000 == 0:
                    o = importer.outcome
                    bar.update(task, completed=raw.tell(), status=f"{o.imported} imported, {o.rejected} rejected")
            await importer.flush()
            bar.update(task, completed=size, status="done")
            return importer.outcome

        outcome: CsvOutcome = run_db(settings, work)
    print(f"rows read:          {outcome.rows}")
    print(f"imported:           {outcome.imported}")
    print(f"already imported:   {outcome.duplicates}")
    print(f"rejected:           {outcome.rejected}" + (f" (reasons in {rejects_path})" if outcome.rejected else ""))
    if outcome.ignored_columns:
        print(f"columns not used:   {', '.join(outcome.ignored_columns)}")
    if not outcome.rejected:
        rejects_path.unlink(missing_ok=True)
    return 0 if outcome.rejected == 0 else 1


def add_commands(commands: Any) -> None:
    group = commands.add_parser("import", help="import historical records")
    kinds = group.add_subparsers(dest="kind", required=True, metavar="KIND")
    p = kinds.add_parser("incidents", help="incidents from a CSV file, one a row")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=FIELD,...",
        help=f"which column holds which field ({', '.join(FIELDS)}); columns named like a field map themselves",
    )
    p.add_argument("--timezone", help="zone of times written without an offset (default: the policy's)")
    p.add_argument("--delimiter", default=",", help="field separator (default ,)")
    p.add_argument("--rejects", metavar="FILE", help="where rejected rows go, with reasons (default FILE.rejected.csv)")
    p.set_defaults(handler=cmd_import)
