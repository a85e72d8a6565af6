"""The broker on NATS JetStream: one stream of ingest subjects, one durable pull consumer shared by all replicas.

Subjects, under a prefix (``certmon`` by default): ``certmon.incidents`` and ``certmon.alerts.<source>`` in the
stream ``CERTMON``; dead letters in ``certmon.dead.<the rest of the subject>``, kept in their own stream
``CERTMON_DEAD``. The ingest stream does not take ``certmon.>``: it would then hold the dead letters too, and a
consumer can filter on one subject only before NATS 2.10, which could not leave them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from certmon.core.errors import CertmonError
from certmon.core.settings import Settings
from certmon.stream.broker import KINDS, Message

log = structlog.get_logger("certmon.stream")

REASON_HEADER = "Certmon-Dead-Reason"
SUBJECT_HEADER = "Certmon-Dead-Subject"
MAX_REASON = 2000  # characters of the reason kept in the header; the whole message travels in the body
MAX_ACK_PENDING = 20_000  # messages out with all replicas at once: several batches each
CONNECT_SECONDS = 5.0
CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, nats.errors.Error, TimeoutError)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for position, token in enumerate(want):
        if token == ">":
            return len(have) > position
        if position >= len(have) or (token != "*" and token != have[position]):
            return False
    return len(want) == len(have)


class Subjects:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ingest = [f"{prefix}.incidents", f"{prefix}.alerts.>"]
        self.dead = f"{prefix}.dead.>"
        self._kinds = {f"{prefix}.incidents": "incidents"} | {
            f"{prefix}.alerts.{kind}": kind for kind in KINDS if kind != "incidents"
        }

    def kind(self, subject: str) -> str:
        return self._kinds.get(subject, subject)

    def dead_letter(self, subject: str) -> str:
        return f"{self.prefix}.dead.{subject.removeprefix(self.prefix + '.')}"


def header_text(text: str) -> str:
    """A header value: one line, bounded."""
    return " ".join(text.split())[:MAX_REASON]


class JetStream:
    def __init__(self, nc: Client, js: JetStreamContext, sub: JetStreamContext.PullSubscription, settings: Settings):
        self._nc, self._js, self._sub = nc, js, sub
        self.stream, self.consumer = settings.nats_stream, settings.nats_consumer
        self.subjects = Subjects(settings.nats_subjects)

    @classmethod
    async def connect(cls, settings: Settings) -> JetStream:
        """Connect, create the streams and the durable consumer when absent, and bind to the consumer."""

        async def disconnected() -> None:
            log.warning("NATS connection lost; reconnecting")

        async def reconnected() -> None:
            log.info("NATS connection back")

        async def error(exc: Exception) -> None:
            log.warning("NATS error", error=str(exc))

        try:
            nc = await nats.connect(
                settings.nats_url,
                name="certmon consume",
                connect_timeout=CONNECT_SECONDS,
                max_reconnect_attempts=-1,  # a broker restart must not end the consumer
                reconnect_time_wait=1,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        except CONNECT_ERRORS as exc:
            raise CertmonError(f"NATS at CERTMON_NATS_URL is unreachable: {type(exc).__name__} {exc}") from None
        try:
            js = nc.jetstream()
            subjects = Subjects(settings.nats_subjects)
            await _ensure_streams(js, settings.nats_stream, subjects)
            await _ensure_consumer(js, settings)
            sub = await js.pull_subscribe_bind(durable=settings.nats_consumer, stream=settings.nats_stream)
        except BaseException:
            await nc.close()
            raise
        log.info("consuming", stream=settings.nats_stream, consumer=settings.nats_consumer, subjects=subjects.ingest)
        return cls(nc, js, sub, settings)

    async def fetch(self, count: int, timeout: float) -> Sequence[Message]:
        try:
            msgs = await self._sub.fetch(count, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):  # nothing came within the timeout
            return []
        return [self._message(m) for m in msgs]

    def _message(self, m: Msg) -> Message:
        msg_id = (m.headers or {}).get("Nats-Msg-Id")
        where = f"id:{msg_id}" if msg_id else f"seq:{m.metadata.sequence.stream}"
        key = f"nats:{self.stream}:{where}"
        return Message(self.subjects.kind(m.subject), m.data, key, m)

    async def ack(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await message.handle.ack()
        await self._nc.flush()

    async def nak(self, messages: Sequence[Message], delay: float) -> None:
        for message in messages:
            await message.handle.nak(delay=delay)
        await self._nc.flush()

    async def dead_letter(self, message: Message, reason: str) -> None:
        m: Msg = message.handle
        sequence = m.metadata.sequence.stream
        headers = {
            REASON_HEADER: header_text(reason),
            SUBJECT_HEADER: m.subject,
            # A second dead letter of the same message (the first one's term was lost) is dropped by the stream.
            "Nats-Msg-Id": f"dead:{self.stream}:{sequence}",
        }
        # Waits for the dead-letter stream to confirm: only then is the message let go.
        await self._js.publish(self.subjects.dead_letter(m.subject), m.data, headers=headers)
        await m.term()

    async def lag(self) -> tuple[int, int]:
        info = await self._js.consumer_info(self.stream, self.consumer)
        return info.num_pending or 0, info.num_ack_pending or 0

    async def close(self) -> None:
        try:
            await self._nc.flush()
        finally:
            await self._nc.close()


async def _ensure_streams(js: JetStreamContext, name: str, subjects: Subjects) -> None:
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(StreamConfig(name=name, subjects=subjects.ingest))
    else:
        probe = subjects.dead_letter(f"{subjects.prefix}.incidents")
        if any(subject_matches(s, probe) for s in info.config.subjects or []):
            raise CertmonError(
                f"the stream {name} takes {probe}, so the consumer would read its own dead letters: give it the "
                f"subjects {', '.join(subjects.ingest)}"
            )
    dead = f"{name}_DEAD"
    try:
        await js.stream_info(dead)
    except nats.js.errors.NotFoundError:
        await js.add_stream(StreamConfig(name=dead, subjects=[subjects.dead]))


async def _ensure_consumer(js: JetStreamContext, settings: Settings) -> None:
    """The durable consumer, created by the first replica; the others, and restarts, find it as it is."""
    try:
        await js.consumer_info(settings.nats_stream, settings.nats_consumer)
        return
    except nats.js.errors.NotFoundError:
        pass
    config = ConsumerConfig(
        durable_name=settings.nats_consumer,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.nats_ack_wait_seconds,
        max_deliver=-1,  # an outage may last: a message is handed back as often as it takes, never dropped
        max_ack_pending=MAX_ACK_PENDING,
    )
    try:
        await js.add_consumer(settings.nats_stream, config)
    except nats.js.errors.BadRequestError:
        # Another replica created it at the same moment, perhaps with other settings: use what is there.
        await js.consumer_info(settings.nats_stream, settings.nats_consumer)
