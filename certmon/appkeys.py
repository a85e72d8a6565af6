"""Typed keys for everything the application holds; the one place that lists its state."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from certmon.auth import Principal, TokenCache
from certmon.db import Queries
from certmon.policy import Policy
from certmon.settings import Settings

if TYPE_CHECKING:
    from certmon.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", Policy)
QUERIES = web.AppKey("queries", Queries)
POOL = web.AppKey("pool", asyncpg.Pool)
TOKENS = web.AppKey("tokens", TokenCache)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
PARSER: web.AppKey[Executor | None] = web.AppKey("parser")  # validates bulk bodies; None: in the event loop
# A bulk ingest holds two pooled connections; bounding them keeps the pool from being shared out in halves.
BULK_SLOTS = web.AppKey("bulk_slots", asyncio.Semaphore)
SCHEDULER = web.AppKey("scheduler", Any)  # apscheduler's AsyncIOScheduler is untyped

PRINCIPAL = web.RequestKey("principal", Principal)  # who is calling
REQUEST_ID = web.RequestKey("request_id", str)

__all__ = [
    "METRICS",
    "POLICY",
    "POOL",
    "PRINCIPAL",
    "QUERIES",
    "REQUEST_ID",
    "SCHEDULER",
    "SETTINGS",
    "TOKENS",
    "Principal",
]
