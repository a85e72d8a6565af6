"""Writing a batch of stream messages through the store functions the HTTP routes use; no broker in sight.

A batch is written in one transaction. Every write is idempotent on a key the data already has (an incident's
``(source, external_id)``, an alert's digest, an Alertmanager alert's fingerprint and ``startsAt``), so a message
delivered again after its transaction committed changes nothing. An incident without an ``external_id`` is given
the message's own key as one, which is the same on every delivery of that message.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import asyncpg
import orjson
from pydantic import ValidationError

from certmon.core.errors import CertmonError
from certmon.core.nesting import nesting_error, too_deep
from certmon.core.policy import Policy
from certmon.core.sources import eve, wazuh
from certmon.core.sources.mapping import IngestMapping
from certmon.store import alertmanager, bulk
from certmon.store.bulk import describe
from certmon.store.db import Queries
from certmon.store.grouping import Convert, Pipeline
from certmon.stream.broker import KINDS, Message

INCIDENTS_SOURCE = "stream"  # the ingest counters' source label of incidents from the stream, as "bulk" for NDJSON
MAX_INCIDENT_BYTES = 1_000_000  # as POST /api/v1/incidents
MAX_EXTERNAL_ID = 200  # IncidentIn's limit


@dataclass(slots=True)
class Stored:
    """What a batch came to: the messages (by index) that can never be stored and why, and counts for metrics."""

    dead: dict[int, str] = field(default_factory=dict)
    created: Counter[str] = field(default_factory=Counter)  # incidents created, by source
    unmatched: Counter[str] = field(default_factory=Counter)  # alerts no agency network matched, by source
    rejected: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def message_external_id(key: str) -> str:
    return key if len(key) <= MAX_EXTERNAL_ID else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def one_line(data: bytes) -> bytes:
    """The message as one NDJSON line holding one JSON object; a ValueError says why it is not one."""
    text = data.strip()
    if not text:
        raise ValueError("invalid: the message is empty")
    if not text.startswith(b"{"):
        raise ValueError("invalid: not a JSON object; a message carries one alert")
    if b"\n" in text:  # pretty-printed: the line reader needs it on one line
        if too_deep(text):
            raise ValueError(f"invalid: {nesting_error().detail}")
        try:
            text = orjson.dumps(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid: not valid JSON: {exc}") from None
    return text


class Storer:
    def __init__(
        self, q: Queries, policy: Policy, mapping: IngestMapping, actor: str, executor: Executor | None = None
    ) -> None:
        self.q, self.policy, self.mapping, self.actor = q, policy, mapping, actor
        self.executor = executor
        self._converters: dict[str, tuple[str, Convert]] = {
            "eve": (eve.SOURCE, eve.converter(mapping.eve)),
            "wazuh": (wazuh.SOURCE, lambda record: wazuh.to_alert(record, mapping.wazuh)),
        }

    async def store(self, conn: asyncpg.Connection, lookup: asyncpg.Connection, messages: Sequence[Message]) -> Stored:
        """Write the messages in one transaction; a database error raises, and then nothing is written.

        ``lookup``, a second connection, answers which incident keys are stored already while ``conn`` copies.
        """
        result = Stored()
        by_kind: dict[str, list[int]] = defaultdict(list)
        for index, message in enumerate(messages):
            if message.kind in KINDS:
                by_kind[message.kind].append(index)
            else:
                result.dead[index] = f"unknown subject {message.kind!r}: certmon reads incidents and alerts.<source>"
        async with conn.transaction():
            # Always in this order: the alert sources take their ingest locks in it, so that two replicas writing
            # batches of both never wait for each other in a cycle.
            if by_kind["incidents"]:
                await self._incidents(conn, lookup, messages, by_kind["incidents"], result)
            for kind in ("eve", "wazuh"):
                if by_kind[kind]:
                    await self._alerts(conn, kind, messages, by_kind[kind], result)
            for index in by_kind["alertmanager"]:
                await self._alertmanager(conn, messages[index], index, result)
        return result

    def _incident_line(self, message: Message) -> bytes:
        """The message as a line of a bulk body, keyed by the message when it carries no external_id.

        Validation itself is ``POST /api/v1/incidents``'s, done by the bulk path (``bulk.ingest``).
        """
        data = message.data
        if len(data) > MAX_INCIDENT_BYTES:
            raise CertmonError(f"body larger than {MAX_INCIDENT_BYTES} bytes")
        if too_deep(data):
            raise nesting_error()
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CertmonError(f"body is not valid JSON: {exc}") from None
        if isinstance(body, dict) and body.get("external_id") is None:
            body["external_id"] = message_external_id(message.key)
            return orjson.dumps(body)
        return orjson.dumps(body) if b"\n" in data else data  # one message, one line

    async def _incidents(
        self,
        conn: asyncpg.Connection,
        lookup: asyncpg.Connection,
        messages: Sequence[Message],
        indexes: list[int],
        result: Stored,
    ) -> None:
        agencies = {r["code"] for r in await conn.fetch(self.q["agency_codes"])}
        refused = result.rejected[INCIDENTS_SOURCE]
        fed: list[int] = []
        lines = []
        for index in indexes:
            try:
                lines.append(self._incident_line(messages[index]))
                fed.append(index)
            except CertmonError as exc:
                result.dead[index] = exc.detail
                refused["invalid"] += 1
        if not lines:
            return
        # Validated in the worker processes when there are some, and COPYed as the bulk route does.
        outcome = await bulk.ingest(conn, lookup, self.q, self.policy, agencies, self.actor, lines, self.executor)
        for entry in outcome.rejected:
            error = str(entry["error"])
            result.dead[fed[int(entry["line"]) - 1]] = error
            refused["conflict" if error.startswith("conflict:") else "invalid"] += 1
        result.created[INCIDENTS_SOURCE] += outcome.accepted

    async def _alerts(
        self, conn: asyncpg.Connection, kind: str, messages: Sequence[Message], indexes: list[int], result: Stored
    ) -> None:
        source, convert = self._converters[kind]
        m = self.mapping
        pipeline = Pipeline(
            conn,
            self.q,
            self.policy,
            source=source,
            convert=convert,
            window=m.window,
            actor=self.actor,
            remember=m.remember,
        )
        fed: list[int] = []  # the message of each line fed, so that a rejected line names its message
        lines = []
        for index in indexes:
            try:
                lines.append(one_line(messages[index].data))
                fed.append(index)
            except ValueError as exc:
                result.dead[index] = str(exc)
                result.rejected[source]["invalid"] += 1
        if not lines:
            return
        try:
            await pipeline.feed(b"\n".join(lines) + b"\n")
            outcome = await pipeline.finish()
        finally:
            await pipeline.cancel()
        for entry in outcome.rejected:
            result.dead[fed[int(entry["line"]) - 1]] = f"{entry['reason']}: {entry['error']}"
        result.created[source] += outcome.incidents_created
        result.unmatched[source] += outcome.unmatched
        result.rejected[source].update(outcome.reasons)

    async def _alertmanager(self, conn: asyncpg.Connection, message: Message, index: int, result: Stored) -> None:
        refused = result.rejected[alertmanager.SOURCE]
        try:
            if len(message.data) > alertmanager.MAX_BODY_BYTES:
                raise CertmonError(f"body larger than {alertmanager.MAX_BODY_BYTES} bytes")
            if too_deep(message.data):
                raise nesting_error()
            hook = alertmanager.Webhook.model_validate_json(message.data)
        except ValidationError as exc:
            result.dead[index] = describe(exc)
            refused["invalid"] += 1
            return
        except CertmonError as exc:
            result.dead[index] = exc.detail
            refused["invalid"] += 1
            return
        got = await alertmanager.receive(conn, self.q, self.policy, self.mapping.alertmanager, hook, self.actor)
        result.created[alertmanager.SOURCE] += got.created
        result.unmatched[alertmanager.SOURCE] += got.unmatched
        if got.rejected:
            # The other alerts of the body are stored; the whole body is set aside so that the refused ones are
            # not lost, and storing it again later adds nothing twice.
            refused["invalid"] += got.rejected
            errors = "; ".join(f"{a['fingerprint'] or '-'}: {a['error']}" for a in got.alerts if "error" in a)
            result.dead[index] = f"{got.rejected} of {len(hook.alerts)} alerts refused: {errors}"
