"""``certmon serve``, ``certmon demo`` and ``certmon migrate``: the service and its database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from certmon.cli import demo
from certmon.cli.common import run_db
from certmon.core.settings import Settings
from certmon.store import migrations
from certmon.web import serving
from certmon.wiring import build_app


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    app = build_app(settings)
    if args.demo:
        # After the database context (index 0), so that the pool exists; before the jobs, so that they see the data.
        app.cleanup_ctx.insert(1, demo.context(args.host, args.port))
    serving.run(
        app,
        host=args.host,
        port=args.port,
        header_timeout=settings.header_timeout_seconds,
        shutdown_grace=settings.shutdown_grace_seconds,
        print=lambda text: print(text.strip(), file=sys.stderr),
    )
    return 0


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
