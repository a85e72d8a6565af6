"""``certmon token create|list|revoke``: API tokens."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from certmon.cli.common import run_db
from certmon.core.access import ROLES
from certmon.core.settings import Settings
from certmon.store import db
from certmon.store.tokens import create_token


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> str:
        return await create_token(conn, db.Queries.load(), args.name, args.role, args.agency)

    token = run_db(settings, work)
    print(f"token {args.name!r} ({args.role}{', ' + args.agency if args.agency else ''}) created; it is shown once:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(db.Queries.load()["token_list"])

    rows = run_db(settings, work)
    print(f"{'NAME':<24} {'ROLE':<8} {'AGENCY':<10} {'CREATED':<26} REVOKED")
    for r in rows:
        revoked = r["revoked_at"].isoformat(timespec="seconds") if r["revoked_at"] else "-"
        created = r["created_at"].isoformat(timespec="seconds")
        print(f"{r['name']:<24} {r['role']:<8} {r['agency_code'] or '-':<10} {created:<26} {revoked}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> str | None:
        name: str | None = await conn.fetchval(db.Queries.load()["token_revoke"], args.name)
        return name

    if run_db(settings, work) is None:
        print(f"no active token named {args.name!r}", file=sys.stderr)
        return 1
    print(f"token {args.name!r} revoked")
    return 0


def add_commands(commands: Any) -> None:
    tokens = commands.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    create = tokens.add_parser("create", help="create a token; prints it on the last line")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--agency", help="agency code, required with --role agency")
    create.add_argument("--name", help="unique name shown in logs (default: role and a random suffix)")
    create.set_defaults(handler=cmd_token_create)
    tokens.add_parser("list", help="list tokens").set_defaults(handler=cmd_token_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_token_revoke)
