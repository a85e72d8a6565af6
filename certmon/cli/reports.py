"""``certmon report``: the fiscal-year KPI report on the terminal or as a CSV, JSON, XLSX or PDF file."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from certmon.cli.common import run_db
from certmon.core.fiscal_report import FORMATS, LANGS, parse_fiscal_year, render
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.store import db
from certmon.store.fiscal_kpis import build


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("report", help="the fiscal-year KPI report (SLA and satisfaction)")
    parser.add_argument("--fiscal-year", required=True, type=_fiscal_year, help="Buddhist Era year, e.g. 2564")
    parser.add_argument("--quarter", type=int, choices=(1, 2, 3, 4), help="cumulative to the end of this quarter")
    parser.add_argument("--format", dest="report_format", choices=FORMATS, default="table")
    parser.add_argument("--lang", choices=LANGS, default="th")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")
    parser.set_defaults(handler=cmd_report)


def _fiscal_year(raw: str) -> int:
    try:
        return parse_fiscal_year(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:

    policy = load_policy(settings.policy_path)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await build(conn, db.Queries.load(), policy, args.fiscal_year, args.quarter, datetime.now(UTC))

    data = render(run_db(settings, work), args.report_format, args.lang)
    if args.out is not None:
        args.out.write_bytes(data)
    elif args.report_format in ("xlsx", "pdf") and sys.stdout.isatty():
        kind = args.report_format.upper()
        print(f"certmon: {kind} output is binary; give --out FILE or redirect standard output", file=sys.stderr)
        return 2
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
