"""``certmon notify INCIDENT_ID --channel email|webhook [--resend]``: notify an incident's agency, as the API does."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import aiohttp
import asyncpg
import structlog

from certmon.cli.common import run_db
from certmon.core.clock import utc_now
from certmon.core.models import CHANNELS
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.notify import flow
from certmon.store import db

ACTOR = "cli"
log = structlog.get_logger("certmon.notify")


def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)

    async def work(conn: asyncpg.Connection) -> flow.Outcome:
        async with aiohttp.ClientSession() as http:
            return await flow.notify(
                conn,
                db.Queries.load(),
                policy,
                settings,
                http,
                args.incident,
                args.channel,
                ACTOR,
                utc_now,
                resend=args.resend,
            )

    outcome: flow.Outcome = run_db(settings, work)
    sent = outcome.notification
    # A command has no registry that Prometheus scrapes: its outcome is counted in the log line instead.
    log.info("notification", channel=outcome.channel, outcome=outcome.kind, notification=sent["id"])
    if outcome.kind == "failed":
        print(f"certmon: the {outcome.channel} notification was not accepted: {sent['response']}", file=sys.stderr)
        return 1
    said = "was sent before (use --resend to send again)" if outcome.kind == "duplicate" else "sent"
    print(f"notification {sent['id']} of incident {sent['incident']} by {outcome.channel} {said}")
    print(f"to: {', '.join(sent['recipients'])}")
    print(f"answer: {sent['response']}")
    return 0


def positive_id(raw: str) -> int:
    value = int(raw)
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an incident id")
    return value


def add_commands(commands: Any) -> None:
    notify = commands.add_parser("notify", help="notify an incident's agency by e-mail or webhook")
    notify.add_argument("incident", type=positive_id, metavar="INCIDENT_ID")
    notify.add_argument("--channel", required=True, choices=CHANNELS)
    notify.add_argument("--resend", action="store_true", help="send again although it was sent on this channel")
    notify.set_defaults(handler=cmd_notify)
