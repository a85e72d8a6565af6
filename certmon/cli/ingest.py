"""``certmon ingest eve|wazuh [--history] FILE|-``, ``certmon import incidents FILE.csv``: any size, streamed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg

from certmon.cli.common import run_db
from certmon.cli.progress import progress_bar
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.core.sources import eve, wazuh
from certmon.core.sources.mapping import load_mapping
from certmon.core.sources.records import CHUNK_BYTES
from certmon.store import db
from certmon.store.grouping import Convert, Outcome, Pipeline

ACTOR = "cli"


@contextmanager
def open_input(name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """The file, or standard input for ``-``, with its size when it is known."""
    if name == "-":
        yield sys.stdin.buffer, None
        return
    path = Path(name)
    with path.open("rb") as stream:
        yield stream, path.stat().st_size


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    mapping = load_mapping(settings.ingest_mapping)
    mapping.check(policy)
    source: str
    convert: Convert
    if args.format == "eve":
        source, convert = eve.SOURCE, eve.converter(mapping.eve)
    else:
        source, convert = wazuh.SOURCE, lambda record: wazuh.to_alert(record, mapping.wazuh)

    async def work(conn: asyncpg.Connection) -> Outcome:
        pipeline = Pipeline(
            conn,
            db.Queries.load(),
            policy,
            source=source,
            convert=convert,
            window=mapping.window,
            actor=ACTOR,
            remember=mapping.remember,
            history_at=datetime.now(UTC) if args.history else None,
        )
        with open_input(args.file) as (stream, size), progress_bar() as bar:
            task = bar.add_task(f"{source} alerts", total=size, status="")
            try:
                while chunk := stream.read(CHUNK_BYTES):
                    await pipeline.feed(chunk)
                    o = pipeline.outcome
                    bar.update(task, advance=len(chunk), status=f"{o.alerts} alerts, {o.incidents_created} incidents")
                outcome = await pipeline.finish()
                # The last groups are written by finish(): show the final count rather than the one before it.
                status = f"{outcome.alerts} alerts, {outcome.incidents_created} incidents"
                bar.update(task, status=status)
                return outcome
            finally:
                await pipeline.cancel()

    outcome = run_db(settings, work)
    print_summary(outcome)
    return 0 if outcome.rejected_count == 0 else 1


def print_summary(o: Outcome) -> None:
    print(f"records read:            {o.records}")
    print(f"alerts:                  {o.alerts}")
    print(f"  already imported:      {o.duplicates}")
    print(f"  added to incidents:    {o.alerts_added}")
    print(f"  matching no agency:    {o.unmatched}")
    print(f"incidents created:       {o.incidents_created}")
    if o.skipped:
        print("skipped (not alerts):    " + ", ".join(f"{k} {v}" for k, v in sorted(o.skipped.items())))
    print(f"rejected:                {o.rejected_count}")
    for sample in o.unmatched_samples[:5]:
        print(f"  unmatched line {sample['line']}: {' '.join(sample['addresses'])} {sample['title']}")
    for r in o.rejected[:20]:
        print(f"  line {r['line']}: {r['reason']}: {r['error']}")


def add_commands(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="import sensor alerts (Suricata EVE, Wazuh) as grouped incidents")
    formats = ingest.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, help_text in (
        ("eve", "Suricata EVE alerts: NDJSON as eve-log writes it, or a JSON array"),
        ("wazuh", "Wazuh alerts.json: one JSON alert a line"),
    ):
        p = formats.add_parser(name, help=help_text)
        p.add_argument("file", metavar="FILE", help="the file, or - for standard input")
        p.add_argument(
            "--history",
            action="store_true",
            help="old alerts: they count in their months' figures, but their clocks past due are closed as misses, "
            "never open, queued or notified (docs/sources.md)",
        )
        p.set_defaults(handler=cmd_ingest)
