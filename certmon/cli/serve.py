"""``certmon serve``, ``certmon demo`` and ``certmon migrate``: the service and its database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from certmon.cli import demo
from certmon.cli.common import run_db
from certmon.cli.service import CannotListen, listen, run_app
from certmon.core.settings import Settings
from certmon.store import migrations
from certmon.wiring import build_app


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sockets = listen(args.host, args.port)
    except CannotListen as exc:
        print(f"certmon: {exc}", file=sys.stderr)
        return 1
    app = build_app(settings)
    if args.demo:
        # After the database context (index 0), so that the pool exists; before the jobs, so that they see the data.
        # The port it prints is the one bound: --port 0 picks a free one.
        app.cleanup_ctx.insert(1, demo.context(args.host, sockets[0].getsockname()[1]))
    return run_app(
        app,
        sockets,
        header_timeout=settings.header_timeout_seconds,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = run_db(settings, migrations.migrate, migrate=False)
    if applied:
        print("applied migrations: " + ", ".join(m.label for m in applied))
    else:
        print(f"database is up to date: all {len(migrations.migrations())} migrations were applied earlier")
    return 0


def add_commands(commands: Any) -> None:
    for name, help_text, with_demo in (
        ("serve", "run the service", False),
        ("demo", "fill an empty database with demo data, then run the service", True),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--host", default=None, help="listen address (CERTMON_HOST, default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="listen port (CERTMON_PORT, default 8080)")
        p.set_defaults(handler=cmd_serve, demo=with_demo)
    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)
