"""Typed keys for everything the application holds; the one place that lists its state."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from certmon.core.access import Principal
from certmon.core.clock import Clock
from certmon.core.policy import Policy
from certmon.core.ratelimit import RateLimit
from certmon.core.sessions import ConsoleSession
from certmon.core.settings import Settings
from certmon.core.sources.mapping import IngestMapping
from certmon.store.db import Queries
from certmon.store.recompute import Recompute
from certmon.store.tokens import TokenCache
from certmon.telemetry.registry import Metrics

SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", Policy)
INGEST_MAPPING = web.AppKey("ingest_mapping", IngestMapping)  # loaded and checked against POLICY at start
QUERIES = web.AppKey("queries", Queries)
POOL = web.AppKey("pool", asyncpg.Pool)
DATABASE_URL = web.AppKey("database_url", str)  # the resolved one (the embedded server's too): exports connect to it
TOKENS = web.AppKey("tokens", TokenCache)
AUTH_FAILURES = web.AppKey("auth_failures", RateLimit)  # wrong tokens per client address
TOKEN_REQUESTS: web.AppKey[RateLimit | None] = web.AppKey("token_requests")  # requests per token; None: no limit
METRICS = web.AppKey("metrics", Metrics)
RECOMPUTE = web.AppKey("recompute", Recompute)  # clocks stored under another policy, recomputed in the background
# Worker processes: they validate bulk bodies and render PDF reports; None: bulk bodies in the loop, PDFs in a thread.
PARSER: web.AppKey[Executor | None] = web.AppKey("parser")
# The process that runs monthly exports, a fresh one for each; None: in a thread (CERTMON_PARSE_WORKERS=0).
EXPORTER: web.AppKey[Executor | None] = web.AppKey("exporter")
# A bulk ingest holds two pooled connections; bounding them keeps the pool from being shared out in halves.
BULK_SLOTS = web.AppKey("bulk_slots", asyncio.Semaphore)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")  # the current instant of every handler
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)  # outgoing requests: agencies' webhooks
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background")  # tasks behind answers: token checks
BODY_WATCHES: web.AppKey[set[Any]] = web.AppKey("body_watches")  # deadlines of bodies still arriving
SCHEDULER = web.AppKey("scheduler", Any)  # apscheduler's AsyncIOScheduler is untyped

PRINCIPAL = web.RequestKey("principal", Principal)  # who is calling
REQUEST_ID = web.RequestKey("request_id", str)
CONSOLE_SESSION = web.RequestKey("console_session", ConsoleSession)  # a signed-in console page's session
LANG = web.RequestKey("lang", str)  # the language a console page is written in: "th" or "en"
