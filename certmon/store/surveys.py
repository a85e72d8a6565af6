"""Satisfaction surveys: validated responses, their storage, and period figures the Thai government way.

Answers are on a 5-point scale. The satisfaction percentage is mean / 5 * 100 (mean 4.26 = 85.2 %); every answer
weighs the same in the mean. The band of a mean follows the Thai convention of 0.8-wide intervals read on the mean
rounded to two decimals: 4.21-5.00 very good, 3.41-4.20 good, 2.61-3.40 fair, 1.81-2.60 poor, 1.00-1.80 very poor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import asyncpg
import pydantic

from certmon.core.errors import CertmonError, Invalid
from certmon.core.nesting import nesting_error, too_deep
from certmon.core.periods import (
    Period,
)
from certmon.core.policy import Policy
from certmon.core.satisfaction import ResponseIn, body_hash, check_filters, figures, insert_args, target_of
from certmon.store.bulk import BulkOutcome, describe
from certmon.store.db import Queries, bulk_transaction
from certmon.store.idempotent import insert_or_compare


async def create(
    conn: asyncpg.Connection, q: Queries, policy: Policy, data: ResponseIn, actor: str
) -> tuple[asyncpg.Record, bool]:
    """Store a response; returns it and whether it is new. The same key with another body is a conflict."""
    digest = body_hash(data)
    args = insert_args(policy, data, actor, digest)
    # The key is the agency's own: a conflict names only a response of the same agency (or of none).
    key = {"service": data.service, "agency": data.agency, "external_id": data.external_id}
    insert, by_key = q["survey_response_insert"], q["survey_response_by_key"]
    try:
        return await insert_or_compare(conn, insert, args, by_key, key, digest, "response")
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("agency", f"unknown agency {data.agency!r}") from None


def to_json(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "service": row["service"],
        "agency": row["agency_code"],
        "submitted_at": row["submitted_at"],
        "answers": json.loads(row["answers"]),
        "comment": row["comment"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "created_at": row["created_at"],
    }


STAGE_COLUMNS = (
    "line", "service", "agency_code", "submitted_at", "answers", "answer_count", "score_sum", "top2_count",
    "comment", "channel", "external_id", "body_hash", "created_by",
)  # fmt: skip


def stage_row(
    line: int, raw: Mapping[str, Any] | bytes, policy: Policy, agencies: set[str], actor: str
) -> tuple[Any, ...]:
    """A staging row from one JSON object; CertmonError or ValidationError when it is not a valid response."""
    data = ResponseIn.model_validate_json(raw) if isinstance(raw, bytes) else ResponseIn.model_validate(raw)
    if data.agency is not None and data.agency not in agencies:
        raise Invalid("agency", f"unknown agency {data.agency!r}")
    return (line, *insert_args(policy, data, actor))


def parse_lines(
    lines: Sequence[bytes], policy: Policy, agencies: set[str], actor: str, outcome: BulkOutcome, first_line: int = 1
) -> list[tuple[Any, ...]]:
    """Validate each non-blank NDJSON line; the invalid ones land in ``outcome.rejected`` with the reason."""
    rows = []
    for number, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        try:
            if too_deep(raw):
                raise nesting_error()
            rows.append(stage_row(number, raw, policy, agencies, actor))
        except pydantic.ValidationError as exc:
            outcome.rejected.append({"line": number, "error": describe(exc)})
        except CertmonError as exc:
            outcome.rejected.append({"line": number, "error": exc.detail})
    return rows


CHUNK_LINES = 1_000  # lines a worker validates at a time: 10,000 lines keep two workers busy in parallel


def parse_chunk(
    policy: Policy, agencies: frozenset[str], actor: str, chunk: bytes, first_line: int
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """One chunk's staging rows and rejections; module-level so that a worker process can run it.

    The chunk travels as one bytes object, which crosses to a worker process far cheaper than a list of lines.
    """
    outcome = BulkOutcome()
    rows = parse_lines(chunk.split(b"\n"), policy, set(agencies), actor, outcome, first_line)
    return rows, outcome.rejected


async def parse_bulk(
    lines: Sequence[bytes],
    policy: Policy,
    agencies: set[str],
    actor: str,
    outcome: BulkOutcome,
    executor: Executor | None,
) -> list[tuple[Any, ...]]:
    """``parse_lines`` in ``executor``'s worker processes, a chunk each, so that the event loop is not held up
    (10,000 lines are about two seconds of validation); inline, yielding between chunks, when it is None."""
    known = frozenset(agencies)
    chunks = [
        (b"\n".join(lines[start : start + CHUNK_LINES]), start + 1) for start in range(0, len(lines), CHUNK_LINES)
    ]
    if executor is None:
        results = []
        for chunk in chunks:
            results.append(parse_chunk(policy, known, actor, *chunk))
            await asyncio.sleep(0)  # other requests get the event loop between chunks
    else:
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(executor, parse_chunk, policy, known, actor, *chunk) for chunk in chunks)
        )
    rows = []
    for chunk_rows, rejected in results:
        rows.extend(chunk_rows)
        outcome.rejected.extend(rejected)
    return rows


async def store(conn: asyncpg.Connection, q: Queries, rows: list[tuple[Any, ...]], outcome: BulkOutcome) -> None:
    """COPY the rows through a staging table; keyed lines already stored count as duplicates or conflicts."""
    if not rows:
        return
    async with bulk_transaction(conn):
        await conn.execute(q["survey_bulk_stage"])
        await conn.copy_records_to_table("survey_stage", records=rows, columns=STAGE_COLUMNS)
        inserted = {
            (r["service"], r["agency_code"], r["external_id"]) for r in await conn.fetch(q["survey_bulk_insert"])
        }
        skipped = 0
        for r in await conn.fetch(q["survey_bulk_keys"]):
            key = (r["service"], r["agency_code"], r["external_id"])
            if key in inserted:
                inserted.discard(key)  # the first line with this key is the one that was stored
                continue
            skipped += 1
            if r["staged_hash"] == r["stored_hash"]:
                outcome.duplicates += 1
            else:
                outcome.rejected.append(
                    {
                        "line": r["line"],
                        "error": f"conflict: service {key[0]!r} agency {key[1]!r} external_id {key[2]!r} exists with a"
                        " different body",
                    }
                )
        outcome.accepted += len(rows) - skipped
    outcome.rejected.sort(key=lambda item: int(item["line"]))


async def _question_groups(
    conn: asyncpg.Connection, q: Queries, policy: Policy, period: Period, service: str | None, agency: str | None
) -> list[dict[str, Any]]:
    groups = []
    services = policy.surveys.services
    for row in await conn.fetch(q["survey_question_figures"], period.start, period.end, service, agency):
        texts = {qq.id: qq for qq in services[row["service"]].questions} if row["service"] in services else {}
        question = texts.get(row["question"])
        groups.append(
            {
                "key": f"{row['service']}/{row['question']}",
                "service": row["service"],
                "question": row["question"],
                "text_th": None if question is None else question.th,
                "text_en": None if question is None else question.en,
                **figures(row, target_of(policy, row["service"]), policy),
            }
        )
    return groups


async def summary(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    period: Period,
    *,
    service: str | None = None,
    agency: str | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    """The period's satisfaction figures (GET /api/v1/surveys/summary), plus one entry per group when asked.

    ``target`` is a percentage like ``satisfaction_percent``; ``top2_share`` is the share (0-1) of answers of 4 or 5.
    A response belongs to the period in which it was submitted, cut in the policy's timezone.
    """
    check_filters(policy, service, group_by)
    args = (period.start, period.end, service, agency)
    overall = await conn.fetchrow(q["survey_figures"], *args, "", policy.timezone)
    target = target_of(policy, service)
    if group_by == "question":
        groups = await _question_groups(conn, q, policy, period, service, agency)
    elif group_by == "sla_outcome":
        rows = await conn.fetch(q["survey_sla_outcome_figures"], *args)
        groups = [{"key": row["key"], **figures(row, target, policy)} for row in rows]
    elif group_by:
        rows = await conn.fetch(q["survey_figures"], *args, group_by, policy.timezone)
        by_service = group_by == "service"
        groups = [
            {"key": row["key"], **figures(row, target_of(policy, row["key"]) if by_service else target, policy)}
            for row in rows
        ]
    else:
        groups = []
    return {
        "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
        "service": service,
        "agency": agency,
        **figures(overall, target, policy),
        "groups": groups,
    }
