"""Bulk NDJSON ingest: validate every line, COPY the valid ones, account for every line."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pydantic

from certmon.core.clocks import CLOCK_COLUMNS, Clocks
from certmon.core.errors import CertmonError
from certmon.core.models import IncidentIn, error_message
from certmon.core.nesting import nesting_error, too_deep
from certmon.core.policy import Policy
from certmon.store.db import Queries, bulk_transaction

MAX_LINES = 10_000
CHUNK_LINES = 1_000  # validation of one chunk overlaps the database's work on the previous one
COPY_TIMEOUT_SECONDS = 300.0  # a whole bulk body streams through one COPY; the pool's query timeout is too short
MAX_ATTEMPTS = 3  # a key inserted concurrently between our check and our COPY makes us start over
INCIDENT_COLUMNS = (
    "agency_code", "title", "severity", "category", "tlp", "description", "source", "external_id",
    "body_hash", "detected_at", "analysed_at", "notified_at", "acknowledged_at", "contained_at", "resolved_at",
    "clock_start", "at_risk_at", "due_at", "stopped_at", "delay_seconds", "policy_hash", "created_by",
)  # fmt: skip
_SOURCE, _EXTERNAL_ID, _HASH = 7, 8, 9  # positions in a parsed row (line number first)

Row = tuple[Any, ...]  # (line number, *INCIDENT_COLUMNS values, the incident's objective clock rows)
# (line number, source, external_id, body_hash, the row as stored, its clock rows as stored): what sorting out
# duplicates needs, plus the rows either as values for asyncpg or already as fields of PostgreSQL's binary COPY
# format. Neither holds the incident's id yet: ids are drawn from the sequence only for rows that are new.
Keyed = tuple[int, str, str | None, str, Any, list[Any]]

# PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html): a header, then per row
# the field count and each field as a length and its bytes (-1 for NULL), then -1 as the end.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = struct.pack("!h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INCIDENT_FIELDS = struct.pack("!h", 1 + len(INCIDENT_COLUMNS))
_CLOCK_FIELDS = struct.pack("!h", 1 + len(CLOCK_COLUMNS))
_ID = struct.Struct("!iq").pack
_NULL = struct.pack("!i", -1)
_LENGTH = struct.Struct("!i").pack
_TIMESTAMP = struct.Struct("!iq").pack
_FLOAT8 = struct.Struct("!id").pack


def _keyed(rows: Sequence[Row], stored: Callable[[Sequence[Any]], Any]) -> list[Keyed]:
    """Each row's line, key and body hash, and the row and its clock rows as ``stored`` makes them."""
    return [(r[0], r[_SOURCE], r[_EXTERNAL_ID], r[_HASH], stored(r[1:-1]), [stored(c) for c in r[-1]]) for r in rows]


def copy_fields(values: Sequence[Any]) -> bytes:
    """The fields of a row in binary COPY format: text, timestamptz and double precision are all they hold.

    A worker process encodes rows itself, so what it hands back is bytes (cheap to pass between processes) and
    the event loop only adds the field count and the id; the columns' types are told apart by the Python type of
    their values.
    """
    out = []
    for value in values:
        if value is None:
            out.append(_NULL)
        elif value.__class__ is str:
            data = value.encode()
            out.append(_LENGTH(len(data)))
            out.append(data)
        elif isinstance(value, datetime):
            out.append(_TIMESTAMP(8, (value - _PG_EPOCH) // _MICROSECOND))
        else:
            out.append(_FLOAT8(8, float(value)))
    return b"".join(out)


@dataclass(slots=True)
class BulkOutcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def describe(error: pydantic.ValidationError) -> str:
    parts = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = error_message(e)
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_lines(
    lines: Sequence[bytes], policy: Policy, agencies: set[str], actor: str, outcome: BulkOutcome, first_line: int = 1
) -> list[Row]:
    """Validate each non-blank line; valid ones become rows, the rest land in ``outcome.rejected``."""
    rows = []
    clocks = Clocks.of(policy)
    for number, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        try:
            if too_deep(raw):
                raise nesting_error()
            data = IncidentIn.model_validate_json(raw)
            if data.agency not in agencies:
                raise CertmonError(f"agency: unknown agency {data.agency!r}")
            rows.append((number, *clocks.insert_args(data, actor)))
        except pydantic.ValidationError as exc:
            outcome.rejected.append({"line": number, "error": describe(exc)})
        except CertmonError as exc:
            outcome.rejected.append({"line": number, "error": exc.detail})
        except (ValueError, json.JSONDecodeError) as exc:
            outcome.rejected.append({"line": number, "error": f"body: {exc}"})
    return rows


class _Sorter:
    """Sorts rows into new ones, duplicates and conflicts, remembering the keys this request has taken."""

    def __init__(self, q: Queries) -> None:
        self.q = q
        self.taken: dict[tuple[str, str], str] = {}
        self.outcome = BulkOutcome()

    async def new_rows(self, lookup: asyncpg.Connection, rows: Sequence[Keyed]) -> list[Any]:
        """The rows to insert, as stored; ``lookup`` answers which keys are stored already."""
        fresh_keys = {(r[1], r[2]) for r in rows if r[2] is not None and (r[1], r[2]) not in self.taken}
        if fresh_keys:
            sources, ids = zip(*fresh_keys, strict=True)
            for found in await lookup.fetch(self.q["incident_keys_taken"], list(sources), list(ids)):
                self.taken[(found["source"], found["external_id"])] = found["body_hash"]
        new: list[Any] = []
        for line, source, external_id, digest, stored, clocks in rows:
            if external_id is not None:
                key = (source, external_id)
                held = self.taken.get(key)
                if held is not None:
                    if held == digest:
                        self.outcome.duplicates += 1
                    else:
                        error = f"conflict: source {key[0]!r} external_id {key[1]!r} exists with a different body"
                        self.outcome.rejected.append({"line": line, "error": error})
                    continue
                self.taken[key] = digest
            new.append((stored, clocks))
        self.outcome.accepted += len(new)
        return new


async def store(conn: asyncpg.Connection, q: Queries, rows: Sequence[Row], outcome: BulkOutcome) -> None:
    """Store parsed rows atomically; adds to ``outcome`` what was accepted, repeated or refused."""

    async def write(new: list[tuple[Any, list[Any]]]) -> None:
        ids = await reserve_ids(conn, q, len(new))
        incidents = [(incident_id, *row) for incident_id, (row, _) in zip(ids, new, strict=True)]
        clocks = [(incident_id, *c) for incident_id, (_, rows) in zip(ids, new, strict=True) for c in rows]
        await conn.copy_records_to_table("incidents", records=incidents, columns=("id", *INCIDENT_COLUMNS))
        await conn.copy_records_to_table("incident_clocks", records=clocks, columns=("incident_id", *CLOCK_COLUMNS))

    await _store(conn, q, _keyed(rows, tuple), outcome, write)


async def reserve_ids(conn: asyncpg.Connection, q: Queries, count: int) -> list[int]:
    return [r[0] for r in await conn.fetch(q["incident_ids_reserve"], count)] if count else []


def binary_rows(ids: Sequence[int], new: Sequence[tuple[bytes, list[bytes]]]) -> tuple[bytes, bytes]:
    """New rows' incidents and incident_clocks COPY data, each row given its id."""
    incidents, clocks = [], []
    for incident_id, (row, clock_rows) in zip(ids, new, strict=True):
        key = _ID(8, incident_id)
        incidents.append(_INCIDENT_FIELDS + key + row)
        for clock in clock_rows:
            clocks.append(_CLOCK_FIELDS + key + clock)
    return b"".join(incidents), b"".join(clocks)


async def _store(
    conn: asyncpg.Connection,
    q: Queries,
    rows: Sequence[Keyed],
    outcome: BulkOutcome,
    write: Callable[[list[Any]], Awaitable[None]],
) -> None:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        sorter = _Sorter(q)
        try:
            async with bulk_transaction(conn):
                new = await sorter.new_rows(conn, rows)
                if new:
                    await write(new)
            break
        except asyncpg.UniqueViolationError:
            if attempt == MAX_ATTEMPTS:
                raise
    _merge(outcome, sorter.outcome)


def parse_chunk(
    policy: Policy, agencies: frozenset[str], actor: str, chunk: bytes, first_line: int
) -> tuple[list[Keyed], list[dict[str, Any]]]:
    """One chunk's rows, in binary COPY format, and rejections; module-level so a worker process can run it.

    The chunk travels as one bytes object, which crosses to a worker process far cheaper than a list of lines.
    """
    outcome = BulkOutcome()
    rows = parse_lines(chunk.split(b"\n"), policy, set(agencies), actor, outcome, first_line)
    return _keyed(rows, copy_fields), outcome.rejected


async def ingest(
    conn: asyncpg.Connection,
    lookup: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    agencies: set[str],
    actor: str,
    lines: Sequence[bytes],
    executor: Executor | None = None,
) -> BulkOutcome:
    """Validate and store NDJSON lines atomically, as one COPY that streams while validation goes on.

    Validation is CPU work: it runs in ``executor`` (a worker process, so it neither holds up other requests on
    the event loop nor competes for the GIL), chunk by chunk. Rows flow into a single COPY on ``conn`` as chunks
    are done; ``lookup``, a second connection, answers which keys are stored already, since ``conn`` is busy
    copying. A key committed by someone else meanwhile makes the COPY fail; then everything is stored again.
    """
    known = frozenset(agencies)
    chunks = [
        (b"\n".join(lines[start : start + CHUNK_LINES]), start + 1) for start in range(0, len(lines), CHUNK_LINES)
    ]
    chunk = _chunk_parser(policy, known, actor, chunks, executor)
    rejected: list[dict[str, Any]] = []
    sorter = _Sorter(q)
    clocks: list[bytes] = []

    async def stream() -> AsyncIterator[bytes]:
        yield COPY_HEADER
        for index in range(len(chunks)):
            rows, refused = await chunk(index)
            rejected.extend(refused)
            new = await sorter.new_rows(lookup, rows)
            if new:
                # conn is busy copying; the sequence hands out ids outside any transaction, to any connection
                incident_rows, clock_rows = binary_rows(await reserve_ids(lookup, q, len(new)), new)
                clocks.append(clock_rows)
                yield incident_rows
        yield COPY_TRAILER

    async def write(new: list[tuple[bytes, list[bytes]]]) -> None:
        incident_rows, clock_rows = binary_rows(await reserve_ids(conn, q, len(new)), new)
        await copy_binary(conn, "incidents", [COPY_HEADER, incident_rows, COPY_TRAILER])
        await copy_binary(conn, "incident_clocks", [COPY_HEADER, clock_rows, COPY_TRAILER])

    outcome = BulkOutcome()
    try:
        async with bulk_transaction(conn):
            await copy_binary(conn, "incidents", stream())
            await copy_binary(conn, "incident_clocks", [COPY_HEADER, *clocks, COPY_TRAILER])
    except asyncpg.UniqueViolationError:
        parsed: list[Keyed] = []
        rejected.clear()
        for index in range(len(chunks)):
            rows, refused = await chunk(index)
            rejected.extend(refused)
            parsed.extend(rows)
        await _store(conn, q, parsed, outcome, write)
    else:
        _merge(outcome, sorter.outcome)
    outcome.rejected.extend(rejected)
    outcome.rejected.sort(key=lambda item: int(item["line"]))
    return outcome


COPY_COLUMNS = {"incidents": ("id", *INCIDENT_COLUMNS), "incident_clocks": ("incident_id", *CLOCK_COLUMNS)}


async def copy_binary(conn: asyncpg.Connection, table: str, data: AsyncIterator[bytes] | list[bytes]) -> None:
    source = data if isinstance(data, AsyncIterator) else _iterate(data)
    await conn.copy_to_table(
        table, source=source, columns=COPY_COLUMNS[table], format="binary", timeout=COPY_TIMEOUT_SECONDS
    )


async def _iterate(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


Parsed = tuple[list[Keyed], list[dict[str, Any]]]


def _chunk_parser(
    policy: Policy,
    agencies: frozenset[str],
    actor: str,
    chunks: Sequence[tuple[bytes, int]],
    executor: Executor | None,
) -> Callable[[int], Awaitable[Parsed]]:
    """Each chunk's parse result by index, computed once: in ``executor`` ahead of need, or inline on demand."""
    if executor is not None:
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(executor, parse_chunk, policy, agencies, actor, *c) for c in chunks]

        async def from_worker(index: int) -> Parsed:
            try:
                return await futures[index]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

        return from_worker

    done: dict[int, Parsed] = {}

    async def inline(index: int) -> Parsed:
        if index not in done:
            done[index] = parse_chunk(policy, agencies, actor, *chunks[index])
            await asyncio.sleep(0)  # other requests get the event loop between chunks
        return done[index]

    return inline


def _merge(into: BulkOutcome, part: BulkOutcome) -> None:
    into.accepted += part.accepted
    into.duplicates += part.duplicates
    into.rejected.extend(part.rejected)
    into.rejected.sort(key=lambda item: int(item["line"]))
