"""``certmon consume``: store incidents and sensor alerts published to the NATS JetStream stream."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from certmon.core.policy import load_policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import load_mapping
from certmon.stream import service


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.policy_path)
    mapping = load_mapping(settings.ingest_mapping)
    asyncio.run(service.main(settings, policy, mapping))
    return 0


def add_commands(commands: Any) -> None:
    p = commands.add_parser(
        "consume", help="store incidents and alerts from the NATS stream (CERTMON_NATS_URL); SIGTERM drains"
    )
    p.set_defaults(handler=cmd_consume)
