"""Prometheus Alertmanager webhooks (version 4): each firing alert becomes an incident, ``resolved`` resolves it.

An alert is identified by its fingerprint and ``startsAt``: Alertmanager repeats the same alert in every
notification of its group, and a new firing of the same label set gets a new ``startsAt``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from certmon.core.errors import CertmonError, Conflict
from certmon.core.models import MAX_CLOCK_SKEW, EventIn, IncidentIn, Time, to_utc
from certmon.core.policy import Policy
from certmon.core.sources import alert_key, storable
from certmon.core.sources.mapping import AlertmanagerMapping, category_or_other
from certmon.store import incidents
from certmon.store.bulk import describe
from certmon.store.db import Queries
from certmon.store.networks import clean_address

SOURCE = "alertmanager"
NEVER = datetime(1, 1, 1, tzinfo=UTC)  # Alertmanager's endsAt of an alert that has not ended
MAX_ALERTS = 10_000
# Alertmanager sends a whole group in one notification unless its max_alerts is set, and does not retry a 4xx:
# a body refused for its size loses those alerts. This admits MAX_ALERTS alerts of a few KiB of labels each.
MAX_BODY_BYTES = 32 * 1024**2

log = structlog.get_logger("certmon.ingest")


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Time
    endsAt: Time | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels", "annotations", mode="after")
    @classmethod
    def _storable_texts(cls, texts: dict[str, str]) -> dict[str, str]:
        return {storable(name): storable(value) for name, value in texts.items()}

    @field_validator("generatorURL", "fingerprint", mode="after")
    @classmethod
    def _storable_text(cls, text: str) -> str:
        return storable(text)


class Webhook(BaseModel):
    """The body Alertmanager's webhook receiver posts."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AmAlert] = Field(max_length=MAX_ALERTS)


@dataclass(slots=True)
class Result:
    created: int = 0
    resolved: int = 0
    unchanged: int = 0
    unmatched: int = 0
    rejected: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def note(
        self, alert: AmAlert, status: str, incident: asyncpg.Record | None = None, error: str | None = None
    ) -> None:
        entry: dict[str, Any] = {"fingerprint": alert.fingerprint, "startsAt": alert.startsAt, "status": status}
        if incident is not None:
            entry.update(incident=incident["id"], agency=incident["agency_code"], alert_count=incident["alert_count"])
        if error is not None:
            entry["error"] = error
        self.alerts.append(entry)

    def as_json(self) -> dict[str, Any]:
        return {
            "received": len(self.alerts),
            "created": self.created,
            "resolved": self.resolved,
            "unchanged": self.unchanged,
            "unmatched": self.unmatched,
            "rejected": self.rejected,
            "alerts": self.alerts,
        }


def external_id(alert: AmAlert) -> str:
    fingerprint = alert.fingerprint or hashlib.sha256(repr(sorted(alert.labels.items())).encode()).hexdigest()[:16]
    return f"{fingerprint}:{alert.startsAt.astimezone(UTC).isoformat()}"


async def agency_of(conn: asyncpg.Connection, q: Queries, mapping: AlertmanagerMapping, alert: AmAlert) -> str | None:
    """The agency label when it names a known agency, else the first address label inside a registered network."""
    code = alert.labels.get(mapping.agency_label)
    if code:
        known: str | None = await conn.fetchval("SELECT code FROM agencies WHERE code = $1", code)
        return known
    for label in mapping.address_labels:
        address = clean_address(alert.labels.get(label))
        if address is not None:
            found: str | None = await conn.fetchval(q["agency_for_address"], address)
            if found is not None:
                return found
    return None


def incident_for(alert: AmAlert, agency: str, mapping: AlertmanagerMapping) -> IncidentIn:
    labels, notes = alert.labels, alert.annotations
    severity = mapping.severities.get(labels.get(mapping.severity_label, ""), mapping.default_severity)
    name = labels.get("alertname", "alert")
    title = notes.get("summary") or name
    lines = [f"Alertmanager alert {name}", *(f"{k}={v}" for k, v in sorted(labels.items()))]
    if notes.get("description"):
        lines.append(notes["description"])
    if alert.generatorURL:
        lines.append(alert.generatorURL)
    resolved = alert.endsAt if alert.status == "resolved" and alert.endsAt and alert.endsAt > NEVER else None
    return IncidentIn(
        agency=agency,
        title=title.strip()[:500] or name,
        severity=severity,
        category=category_or_other(labels.get(mapping.category_label)),
        detected_at=alert.startsAt,
        source=SOURCE,
        external_id=external_id(alert),
        description="\n".join(lines)[:20000],
        resolved_at=resolved,
    )


async def receive(
    conn: asyncpg.Connection, q: Queries, policy: Policy, mapping: AlertmanagerMapping, hook: Webhook, actor: str
) -> Result:
    result = Result()
    for alert in hook.alerts:
        try:
            await _one(conn, q, policy, mapping, alert, actor, result)
        except CertmonError as exc:
            result.rejected += 1
            result.note(alert, "rejected", error=exc.detail)
        except ValidationError as exc:
            result.rejected += 1
            result.note(alert, "rejected", error=describe(exc))
    return result


async def _one(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    mapping: AlertmanagerMapping,
    alert: AmAlert,
    actor: str,
    result: Result,
) -> None:
    try:
        to_utc(alert.startsAt)
    except ValueError as exc:
        raise CertmonError(f"startsAt: {exc}") from None
    if alert.startsAt > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise CertmonError("startsAt: is more than 5 minutes in the future")
    existing = await conn.fetchrow(q["incident_by_key"], SOURCE, external_id(alert))
    if existing is None:
        agency = await agency_of(conn, q, mapping, alert)
        if agency is None:
            await _unmatched(conn, q, mapping, alert)
            result.unmatched += 1
            result.note(alert, "unmatched")
            return
        try:
            data = incident_for(alert, agency, mapping)
            row, created, _ = await incidents.create(conn, q, policy, data, actor)
        except Conflict:  # the same alert, delivered concurrently with other annotations
            again = await conn.fetchrow(q["incident_by_key"], SOURCE, external_id(alert))
            if again is None:
                raise
            created, row = False, again
        if created:
            result.created += 1
            result.note(alert, "created", row)
            return
        existing = row
    assert existing is not None
    ends = alert.endsAt
    if alert.status == "resolved" and ends is not None and ends > NEVER and existing["resolved_at"] is None:
        at = max(ends, existing["detected_at"])
        event = EventIn(type="resolved", at=min(at, datetime.now(UTC)), note="resolved in Alertmanager")
        row = await incidents.add_event(conn, q, policy, existing["id"], event, actor)
        result.resolved += 1
        result.note(alert, "resolved", row)
        return
    result.unchanged += 1
    result.note(alert, "unchanged", existing)


async def _unmatched(conn: asyncpg.Connection, q: Queries, mapping: AlertmanagerMapping, alert: AmAlert) -> None:
    labels = alert.labels
    addresses = [labels[name] for name in mapping.address_labels if labels.get(name)]
    reason = "unknown_agency" if labels.get(mapping.agency_label) else "no_network"
    sample = {"labels": labels, "startsAt": alert.startsAt.isoformat(), "fingerprint": alert.fingerprint}
    await conn.execute(
        q["unmatched_insert"],
        SOURCE,
        [alert_key(alert.startsAt, external_id(alert))],
        [alert.startsAt],
        [" ".join(addresses)],
        [labels.get("alertname", "alert")],
        [reason],
        [json.dumps(sample, ensure_ascii=False)],
    )
    log.warning("alert matches no agency", source=SOURCE, reason=reason, alertname=labels.get("alertname"))
