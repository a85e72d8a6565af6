"""The ``certmon`` command: serve, demo, migrate, tokens, and the commands other modules add."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from aiohttp import web

from certmon import db, logs
from certmon.auth import ROLES, create_token, default_token_name
from certmon.errors import CertmonError
from certmon.policy import PolicyError, load_policy
from certmon.settings import Settings, SettingsError

SHUTDOWN_GRACE_SECONDS = 30.0  # in-flight requests get this long to finish after SIGTERM
GC_YOUNG_THRESHOLD = 10_000  # see tune_gc
Command = Callable[[argparse.Namespace, Settings], int]


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A migrated connection to the configured database or the embedded one (started, or joined if running)."""
    async with db.database_url(settings.database_url, settings.data_dir) as url:
        conn = await asyncpg.connect(url, timeout=settings.db_timeout_seconds)
        try:
            await db.migrate(conn)
            yield conn
        finally:
            await conn.close()


def run_db(settings: Settings, work: Callable[[asyncpg.Connection], Any]) -> Any:
    async def main() -> Any:
        async with database(settings) as conn:
            return await work(conn)

    return asyncio.run(main())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from certmon.app import create_app

    app = create_app(settings)
    if getattr(args, "demo", False):
        from certmon import demo

        app.cleanup_ctx.insert(1, demo.context(args.host, args.port))
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        print=lambda text: print(text.strip(), file=sys.stderr),
        access_log=None,
    )
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = run_db(settings, db.migrate)
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "database is up to date")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certmon", description="SLA monitor of a national CERT")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, help_text, demo in (
        ("serve", "run the service", False),
        ("demo", "fill an empty database with demo data, then run the service", True),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--host", default=None, help="listen address (CERTMON_HOST, default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="listen port (CERTMON_PORT, default 8080)")
        p.set_defaults(handler=cmd_serve, demo=demo)

    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)

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

    for add_commands in extensions():
        add_commands(commands)
    return parser


def extensions() -> Sequence[Callable[[Any], None]]:
    """Commands contributed by other modules, each a function taking the subparsers object."""
    from certmon import exports, fiscal_report, survey_import
    from certmon.sources import commands as source_commands

    return (
        survey_import.add_commands,
        exports.add_commands,
        fiscal_report.add_commands,
        source_commands.add_commands,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        load_policy(settings.policy_path)
    except (SettingsError, PolicyError) as exc:
        print(f"certmon: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    tune_gc()
    if getattr(args, "host", "unset") is None:
        args.host = settings.host
    if getattr(args, "port", "unset") is None:
        args.port = settings.port
    if getattr(args, "name", "unset") is None:
        args.name = default_token_name(args.role)
    handler: Command = args.handler
    try:
        return handler(args, settings)
    except CertmonError as exc:
        print(f"certmon: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"certmon: database error: {exc}", file=sys.stderr)
        return 1


def tune_gc() -> None:
    """Collect young objects every 10,000 allocations instead of every 700.

    Imports and bulk bodies hold batches of thousands of decoded records, none in a reference cycle; at the
    default threshold the collector walked them over and over, about a third of an EVE import's time. Cycles are
    still collected, a little later.
    """
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


if __name__ == "__main__":
    raise SystemExit(main())
