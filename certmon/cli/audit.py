"""``certmon audit [filters]`` and ``certmon audit verify``: read the audit trail, and check its hash chain."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from certmon.cli.common import run_db
from certmon.core.audit import ACTIONS, KINDS, parse_head
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.store import audit
from certmon.store.db import Queries

MAX_SHOWN_IDS = 3
MAX_CHANGES = 6


def changes(entry: dict[str, Any]) -> str:
    """What an update changed, column by column, for a statement of one row; the row count says the rest."""
    before, after = entry["before"], entry["after"]
    if entry["action"] != "update" or not before or not after or len(before) != 1 or len(after) != 1:
        return ""
    old, new = before[0], after[0]
    changed = [f"{key}: {old.get(key)} → {new[key]}" for key in new if old.get(key) != new[key]]
    more = f" (+{len(changed) - MAX_CHANGES} more)" if len(changed) > MAX_CHANGES else ""
    return "; ".join(changed[:MAX_CHANGES]) + more


def ids(entry: dict[str, Any]) -> str:
    shown = entry["entity_ids"][:MAX_SHOWN_IDS]
    rest = len(entry["entity_ids"]) - len(shown)
    return ", ".join(shown) + (f" +{rest}" if rest else "")


def table(entries: list[dict[str, Any]], tz: Any, next_below: int | None) -> Table:
    title = f"audit trail: {len(entries)} entries, newest first"
    if next_below is not None:
        title += f"; more with --before {next_below}"
    out = Table(title=title)
    for column in ("id", "at", "actor", "role", "action", "table", "entities", "rows", "changes", "chain"):
        out.add_column(column, justify="right" if column in ("id", "rows", "chain") else "left")
    for e in entries:
        at: datetime = e["at"]
        out.add_row(
            str(e["id"]),
            f"{at.astimezone(tz):%Y-%m-%d %H:%M:%S}",
            e["actor"],
            e["actor_role"] or "-",
            e["action"],
            e["table"],
            ids(e),
            str(e["row_count"]),
            changes(e),
            "-" if e["chain_seq"] is None else str(e["chain_seq"]),
        )
    return out


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    where = audit.Filters(args.actor, args.table, args.kind, args.entity, args.action, args.since, args.until)

    async def work(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], int | None]:
        return await audit.page(conn, Queries.load(), where, args.before, args.limit)

    rows, last = run_db(settings, work)
    Console().print(table([audit.entry_json(r) for r in rows], policy.tz, last))
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> audit.Verification:
        return await audit.verify(conn, Queries.load(), args.expect_head)

    result: audit.Verification = run_db(settings, work)
    if not result.ok:
        print(f"certmon: audit chain broken: {result.problem}", file=sys.stderr)
        return 1
    head = "empty" if result.head is None else f"{result.head.seq}:{result.head.hash}"
    print(f"audit chain verified: {result.length} entries, head {head}, {result.pending} pending")
    return 0


def head_arg(raw: str) -> tuple[int, str]:
    try:
        return parse_head(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def aware(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {raw!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give an offset, e.g. 2024-03-15T14:00:00+07:00")
    return value


def positive_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= audit.MAX_ID:
        raise argparse.ArgumentTypeError("must be an entry id")
    return int(raw)


def page_size(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return int(raw)


def add_commands(commands: Any) -> None:
    p = commands.add_parser("audit", help="the audit trail: who wrote what and when; 'audit verify' checks its chain")
    p.add_argument("--actor", help="the whole actor (token:alice) or the name alone (alice)")
    p.add_argument("--table", help="the table written, e.g. incidents")
    p.add_argument("--kind", choices=KINDS, help="the kind of entity written")
    p.add_argument("--entity", help="an entity's id: an incident id, an agency code, a token id")
    p.add_argument("--action", choices=ACTIONS)
    p.add_argument("--since", type=aware, metavar="TIME", help="written at or after (RFC 3339 with offset)")
    p.add_argument("--until", type=aware, metavar="TIME", help="written before (RFC 3339 with offset)")
    p.add_argument("--limit", type=page_size, default=50, help="entries shown (default 50)")
    p.add_argument("--before", type=positive_id, metavar="ID", help="entries older than this one (the next page)")
    p.set_defaults(handler=cmd_audit)
    sub = p.add_subparsers(dest="audit_command", metavar="verify")
    verify = sub.add_parser("verify", help="seal what can be sealed and recompute the hash chain; exit 1 if broken")
    verify.add_argument(
        "--expect-head", type=head_arg, metavar="SEQ:HASH", help="a head logged earlier: the chain must still hold it"
    )
    verify.set_defaults(handler=cmd_verify)
