"""The ``certmon`` command: the one place that lists its command groups, parses, configures and dispatches."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog

from certmon.cli import (
    INTERRUPTED,
    audit,
    consume,
    csv_import,
    exports,
    ingest,
    logs,
    notify,
    queue,
    recompute,
    reports,
    serve,
    surveys,
    tokens,
)
from certmon.cli.common import Command, CommandGroup
from certmon.core.access import default_token_name
from certmon.core.errors import CertmonError
from certmon.core.policy import PolicyError, load_policy
from certmon.core.settings import Settings, SettingsError
from certmon.core.sources.mapping import MappingError, load_mapping

GC_YOUNG_THRESHOLD = 10_000  # see tune_gc


def command_groups() -> tuple[CommandGroup, ...]:
    """Every command group, in the order ``certmon --help`` lists them."""
    return (
        serve.add_commands,
        tokens.add_commands,
        surveys.add_commands,
        exports.add_commands,
        reports.add_commands,
        ingest.add_commands,
        csv_import.add_commands,
        notify.add_commands,
        queue.add_commands,
        audit.add_commands,
        recompute.add_commands,
        consume.add_commands,
    )


def build_parser(groups: Sequence[CommandGroup]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certmon", description="SLA monitor of a national CERT")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in groups:
        add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(command_groups()).parse_args(argv)
    try:
        settings = Settings.from_env()
        policy = load_policy(settings.policy_path)
        load_mapping(settings.ingest_mapping).check(policy)
    except (SettingsError, PolicyError, MappingError) as exc:
        print(f"certmon: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    tune_gc()
    notice_former_data_dir(settings)
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
    except KeyboardInterrupt:  # Ctrl-C in a command that is not a service (those stop on it by themselves)
        print("certmon: interrupted", file=sys.stderr)
        return INTERRUPTED


def notice_former_data_dir(settings: Settings) -> None:
    """The data directory used to be ``./certmon-data``; say so where one is left, rather than silently use another."""
    former = Path("certmon-data")
    if (
        settings.database_url is None
        and (former / "pg" / "PG_VERSION").is_file()
        and former.resolve() != settings.data_dir.resolve()
    ):
        structlog.get_logger("certmon").warning(
            "./certmon-data is no longer the default data directory; set CERTMON_DATA_DIR=./certmon-data to use it",
            data_dir=str(settings.data_dir),
        )


def tune_gc() -> None:
    """Collect young objects every 10,000 allocations instead of every 700.

    Imports and bulk bodies hold batches of thousands of decoded records, none in a reference cycle; at the
    default threshold the collector walked them over and over, about a third of an EVE import's time. Cycles are
    still collected, a little later.
    """
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


if __name__ == "__main__":
    raise SystemExit(main())
