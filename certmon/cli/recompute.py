"""``certmon recompute``: recompute in the foreground the clocks stored under another policy, as the service does in
the background after a policy change."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import asyncpg

from certmon.cli.common import run_db
from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.store.db import Queries
from certmon.store.recompute import Recompute


def _batch(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_recompute(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    batch = args.batch or settings.recompute_batch

    async def work(conn: asyncpg.Connection) -> int:
        # Side by side with running services: their batches and this command's skip each other's rows.
        recompute = Recompute(lambda: contextlib.nullcontext(conn), Queries.load(), policy, batch)
        return await recompute.run()

    started = time.monotonic()
    done = run_db(settings, work)
    print(f"recomputed the clocks of {done} incidents in {time.monotonic() - started:.1f} s; none is stale")
    return 0


def add_commands(commands: Any) -> None:
    p = commands.add_parser(
        "recompute", help="recompute now the clocks stored under another policy than the one in force"
    )
    p.add_argument("--batch", type=_batch, default=None, help="incidents a transaction (CERTMON_RECOMPUTE_BATCH, 1000)")
    p.set_defaults(handler=cmd_recompute)
