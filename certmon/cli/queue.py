"""``certmon queue [--watch]``: the console's queue of open clocks in a terminal, for the night shift."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from certmon.cli.common import database
from certmon.core.clock import utc_now
from certmon.core.policy import Policy, load_policy
from certmon.core.settings import Settings
from certmon.core.sla import SLA_STATES, minutes_left
from certmon.store import console
from certmon.store.db import Queries

STYLES = {"breached": "bold white on red", "at_risk": "black on yellow", "paused": "cyan", "pending": "green"}
OPEN_STATES = ("pending", "at_risk", "paused", "breached")


def table(queue: console.Queue, policy: Policy, now: datetime) -> Table:
    local = now.astimezone(policy.tz)
    counts = ", ".join(f"{state} {queue.counts.get(state, 0)}" for state in OPEN_STATES)
    shown = f"{len(queue.rows)}{'+' if queue.more else ''}"
    out = Table(title=f"open clocks at {local:%Y-%m-%d %H:%M} ({policy.timezone}): {shown} shown; {counts}")
    for column in ("due", "min left", "state", "objective", "incident", "agency", "severity", "category", "title"):
        out.add_column(column, justify="right" if column in ("min left", "incident") else "left")
    for r in queue.rows:
        left = None if r["due_at"] is None else minutes_left(r["due_at"], now)  # paused: no due time yet
        due = "-" if r["due_at"] is None else f"{r['due_at'].astimezone(policy.tz):%Y-%m-%d %H:%M}"
        out.add_row(
            due,
            "-" if left is None else str(left),
            r["state"],
            r["objective"],
            str(r["incident_id"]),
            r["agency_code"],
            r["severity"],
            r["category"],
            r["title"],
            style=STYLES.get(r["state"], ""),
        )
    return out


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    where = console.QueueFilter(
        agency=args.agency, severity=args.severity, objective=args.objective, states=tuple(args.state or ())
    )
    terminal = Console()

    async def read(conn: asyncpg.Connection, q: Queries) -> Table:
        now = args.at or utc_now()
        return table(await console.queue(conn, q, now, where, limit=args.limit), policy, now)

    async def main() -> None:
        q = Queries.load()
        async with database(settings) as conn:
            if not args.watch:
                terminal.print(await read(conn, q))
                return
            with Live(await read(conn, q), console=terminal, screen=False, auto_refresh=False) as live:
                while True:
                    await asyncio.sleep(args.every)
                    live.update(await read(conn, q), refresh=True)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    return 0


def aware(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset, e.g. 2024-03-15T14:00:00+07:00")
    return value


def add_commands(commands: Any) -> None:
    p = commands.add_parser("queue", help="open clocks, soonest due first (what the console's queue shows)")
    p.add_argument("--watch", action="store_true", help="keep the table on screen, refreshed")
    p.add_argument("--every", type=float, default=15.0, metavar="SECONDS", help="refresh interval with --watch")
    p.add_argument("--agency", help="only this agency's incidents")
    p.add_argument("--severity", help="only this severity")
    p.add_argument("--objective", help="only this objective's clocks")
    p.add_argument("--state", action="append", choices=[s for s in SLA_STATES if s in OPEN_STATES], help="repeatable")
    p.add_argument("--limit", type=int, default=50, help="rows shown (default 50)")
    p.add_argument("--at", type=aware, metavar="TIME", help="the queue as it stood at an RFC 3339 time (default: now)")
    p.set_defaults(handler=cmd_queue)
