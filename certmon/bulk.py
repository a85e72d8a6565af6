"""Bulk NDJSON ingest: validate every line, COPY the valid ones, account for every line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pydantic

from certmon.db import Queries
from certmon.errors import CertmonError
from certmon.incidents import insert_args
from certmon.models import IncidentIn
from certmon.policy import Policy

MAX_LINES = 10_000
STAGE_COLUMNS = (
    "line", "agency_code", "title", "severity", "category", "tlp", "description", "source", "external_id",
    "body_hash", "detected_at", "analysed_at", "notified_at", "acknowledged_at", "contained_at", "resolved_at",
    "clock_start", "at_risk_at", "due_at", "stopped_at", "delay_seconds", "policy_hash", "created_by",
)  # fmt: skip


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
        where = ".".join(str(p) for p in e["loc"]) or "body"
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_lines(
    lines: Iterable[bytes], policy: Policy, agencies: set[str], actor: str, outcome: BulkOutcome
) -> list[tuple[Any, ...]]:
    """Validate each non-blank line; valid ones become staging rows, the rest land in ``outcome.rejected``."""
    rows = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = IncidentIn.model_validate_json(raw)
            if data.agency not in agencies:
                raise CertmonError(f"agency: unknown agency {data.agency!r}")
            rows.append((number, *insert_args(policy, data, actor)))
        except pydantic.ValidationError as exc:
            outcome.rejected.append({"line": number, "error": describe(exc)})
        except CertmonError as exc:
            outcome.rejected.append({"line": number, "error": exc.detail})
        except (ValueError, json.JSONDecodeError) as exc:
            outcome.rejected.append({"line": number, "error": f"body: {exc}"})
    return rows


async def store(conn: asyncpg.Connection, q: Queries, rows: list[tuple[Any, ...]], outcome: BulkOutcome) -> None:
    """COPY the rows through a staging table; sort keyed leftovers into duplicates and conflicts."""
    if not rows:
        return
    async with conn.transaction():
        await conn.execute(q["incident_bulk_stage"])
        await conn.copy_records_to_table("incident_stage", records=rows, columns=STAGE_COLUMNS)
        inserted = {(r["source"], r["external_id"]) for r in await conn.fetch(q["incident_bulk_insert"])}
        skipped = 0
        for r in await conn.fetch(q["incident_bulk_keys"]):
            key = (r["source"], r["external_id"])
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
                        "error": f"conflict: source {key[0]!r} external_id {key[1]!r} exists with a different body",
                    }
                )
        outcome.accepted += len(rows) - skipped
    outcome.rejected.sort(key=lambda item: int(item["line"]))
