"""``certmon export``: export or restate a month, list stored revisions, verify a directory's signature."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from certmon.cli.common import run_db
from certmon.core import signing
from certmon.core.export_content import ExportResult, write_directory
from certmon.core.periods import parse_period, previous_month
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.store import db
from certmon.store.exports import export_month, stored_files


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("export", help="monthly SLA exports: export or restate a month, verify a directory")
    parser.add_argument("--month", help="YYYY-MM, cut in Bangkok time (default: the previous month)")
    parser.add_argument("--out", type=Path, help="also write the revision's files to OUT/<month>/r<revision>/")
    parser.set_defaults(handler=cmd_export)
    sub = parser.add_subparsers(dest="export_command", metavar="{verify,list}")
    verify = sub.add_parser("verify", help="check an export directory's signature and every file's SHA-256")
    verify.add_argument("directory", type=Path)
    verify.add_argument("--public-key", type=Path, help="the PEM served at /api/v1/exports/public-key")
    verify.set_defaults(handler=cmd_verify)
    sub.add_parser("list", help="list stored revisions").set_defaults(handler=cmd_list)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:

    policy = load_policy(settings.policy_path)
    now = datetime.now(UTC)
    try:
        period = parse_period(args.month, policy.tz) if args.month else previous_month(now, policy.tz)
    except ValueError as exc:
        print(f"certmon: --month: {exc}", file=sys.stderr)
        return 2
    if len(period.label) != len("2021-08"):
        print("certmon: --month: give one month as YYYY-MM", file=sys.stderr)
        return 2
    key = signing.load_or_create_key(settings.effective_signing_key_path)

    async def work(conn: asyncpg.Connection) -> tuple[ExportResult, Path | None]:
        q = db.Queries.load()
        result = await export_month(conn, q, policy, key, period, now, "cli", lang=settings.report_lang)
        path = None
        if args.out is not None:
            files = await stored_files(conn, q, result.month, result.revision)
            path = write_directory(args.out, result.month, result.revision, files)
        return result, path

    result, path = run_db(settings, work)
    state = "created" + (" (restated)" if result.restated else "") if result.created else "unchanged"
    print(f"{result.month} revision {result.revision} {state}")
    if path is not None:
        print(f"written to {path}")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    public_key = None
    if args.public_key is not None:
        try:
            public_key = signing.load_public_pem(args.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"certmon: --public-key: {exc}", file=sys.stderr)
            return 2
    problems = signing.verify_directory(args.directory, public_key)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads((args.directory / signing.MANIFEST).read_bytes())
        checked = len(data["files"])
        print(f"OK {data['month']} revision {data['revision']}: signature and {checked} files verified")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:

    async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(db.Queries.load()["export_list"], None)

    print(f"{'MONTH':<8} {'REV':>3}  {'GENERATED':<26} {'BY':<10} RESTATED")
    for r in run_db(settings, work):
        generated = r["generated_at"].isoformat(timespec="seconds")
        restated = "yes" if r["restated"] else "no"
        print(f"{r['month']:<8} {r['revision']:>3}  {generated:<26} {r['generated_by']:<10} {restated}")
    return 0
