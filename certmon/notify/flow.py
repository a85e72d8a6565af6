"""Notify an agency of an incident: the one function the API, the CLI and the console call.

A send is claimed first (one per incident and channel at a time), its acknowledgement link stored, then the notice
goes out outside any transaction, and its outcome is recorded: on success the ``notified`` milestone at the instant
the server's acceptance came back (or a ``notification_sent`` event when the milestone is recorded already), on
failure a ``notification_failed`` event and no milestone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import aiohttp
import asyncpg

from certmon.core.clock import Clock
from certmon.core.errors import Conflict, Invalid
from certmon.core.models import Channel, EventIn
from certmon.core.notices import Notice, NoticeFacts, compose
from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.notify import links, mail, webhook
from certmon.notify.delivery import Delivery, DeliveryFailed
from certmon.store import incidents, notifications
from certmon.store.db import Queries

# A send is bounded at mail.SEND_BOUND_TIMEOUTS timeouts; one still in progress after this many belongs to a
# process that stopped mid-send, and a new send may take its place.
STALE_AFTER_TIMEOUTS = mail.SEND_BOUND_TIMEOUTS + 1

OutcomeKind = Literal["sent", "failed", "duplicate"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a notify call ended, and the notification it answers with (the earlier one for a duplicate)."""

    kind: OutcomeKind
    channel: Channel
    notification: dict[str, Any]


async def notify(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    settings: Settings,
    http: aiohttp.ClientSession,
    incident_id: int,
    channel: Channel,
    actor: str,
    clock: Clock,
    *,
    resend: bool = False,
) -> Outcome:
    """Notify the incident's agency on the channel, unless that was done already and no resend is asked for.

    Raises NotFound (no such incident), Invalid naming ``channel`` (the agency has nobody to reach that way, or no
    SMTP server is configured), Conflict (a send on this channel is in progress, or the incident was imported as
    history).
    """
    incident = await notifications.subject(conn, q, incident_id)
    if incident["history_closed_at"] is not None:
        # Its clocks were closed as misses when the history was imported: an agency is not woken for a past alert.
        raise Conflict(f"incident {incident_id} was imported as history; agencies are not notified of it")
    recipients = _recipients(incident, channel, settings)
    started = clock()
    stale = started - timedelta(seconds=STALE_AFTER_TIMEOUTS * settings.notify_timeout_seconds)
    async with conn.transaction():
        await notifications.lock_incident(conn, q, incident_id)
        earlier = None if resend else await notifications.last_sent(conn, q, incident_id, channel)
        if earlier is not None:
            return Outcome("duplicate", channel, notifications.notification_json(earlier))
        nid = await notifications.claim(conn, q, incident_id, channel, recipients, actor, started, stale)
        url, expires = await links.issue(
            conn, q, policy, settings.effective_public_url, incident_id, incident["agency_code"], nid, started
        )
    notice = compose(_facts(incident, nid, url, expires), policy.tz)
    try:
        delivery = await _deliver(channel, incident, notice, settings, http, started)
    except DeliveryFailed as failure:
        await _failed(conn, q, incident_id, nid, channel, actor, clock(), failure)
        return Outcome("failed", channel, notifications.notification_json(await notifications.by_id(conn, q, nid)))
    except Exception as exc:
        # Not a refusal but a fault of ours; the channel must not stay held until the claim goes stale.
        await _failed(conn, q, incident_id, nid, channel, actor, clock(), DeliveryFailed(f"error: {exc!r}"))
        raise
    sent_at = clock()  # read after the server's acceptance came back: that moment is the milestone
    await _sent(conn, q, policy, incident_id, nid, channel, actor, sent_at, delivery)
    return Outcome("sent", channel, notifications.notification_json(await notifications.by_id(conn, q, nid)))


def _recipients(incident: asyncpg.Record, channel: Channel, settings: Settings) -> Sequence[str]:
    agency = incident["agency_code"]
    if channel == "webhook":
        if incident["webhook_url"] is None:
            raise Invalid(
                "channel", f"agency {agency} has no webhook; give it one with PATCH /api/v1/agencies/{agency}"
            )
        return [incident["webhook_url"]]
    if settings.smtp_url is None:
        raise Invalid("channel", "no SMTP server is configured (CERTMON_SMTP_URL)")
    contacts = json.loads(incident["contacts"])
    if not contacts:
        raise Invalid(
            "channel", f"agency {agency} has no e-mail contacts; add them with PATCH /api/v1/agencies/{agency}"
        )
    return [c["email"] for c in contacts]


def _facts(incident: asyncpg.Record, notification_id: int, url: str, expires: datetime) -> NoticeFacts:
    return NoticeFacts(
        notification_id=notification_id,
        incident_id=incident["id"],
        title=incident["title"],
        severity=incident["severity"],
        category=incident["category"],
        tlp=incident["tlp"],
        description=incident["description"],
        detected_at=incident["detected_at"],
        agency_code=incident["agency_code"],
        agency_name=incident["agency_name"],
        agency_name_th=incident["agency_name_th"],
        ack_url=url,
        ack_expires_at=expires,
    )


async def _deliver(
    channel: Channel,
    incident: asyncpg.Record,
    notice: Notice,
    settings: Settings,
    http: aiohttp.ClientSession,
    date: datetime,
) -> Delivery:
    timeout = settings.notify_timeout_seconds
    if channel == "webhook":
        delivery_id = webhook.new_delivery_id()
        secret = incident["webhook_secret"]
        return await webhook.post(http, incident["webhook_url"], secret, notice.payload, delivery_id, timeout=timeout)
    server = settings.smtp_server
    assert server is not None  # checked by _recipients
    contacts = json.loads(incident["contacts"])
    message_id = mail.new_message_id(settings.smtp_from)
    message = mail.compose_message(settings.smtp_from, contacts, notice.subject, notice.text, message_id, date)
    return await mail.send(server, message, timeout=timeout, ca_file=settings.smtp_ca_file)


async def _sent(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    incident_id: int,
    nid: int,
    channel: Channel,
    actor: str,
    at: datetime,
    delivery: Delivery,
) -> None:
    detail = {"notification": nid, "channel": channel, **delivery.detail}
    note = f"{_channel_name(channel)} accepted: {delivery.response}"
    async with conn.transaction():
        notified_at = await notifications.lock_incident(conn, q, incident_id)
        await notifications.finish(conn, q, nid, "sent", delivery.message_id, delivery.response, at)
        if notified_at is None:
            event = EventIn(type="notified", note=note)
            await incidents.add_event(conn, q, policy, incident_id, event, actor, at, detail=detail)
        else:
            await notifications.add_notice_event(conn, q, incident_id, "notification_sent", at, note, actor, detail)


async def _failed(
    conn: asyncpg.Connection,
    q: Queries,
    incident_id: int,
    nid: int,
    channel: Channel,
    actor: str,
    at: datetime,
    failure: DeliveryFailed,
) -> None:
    detail = {
        "notification": nid,
        "channel": channel,
        "message_id": failure.message_id,
        **failure.detail,
        "error": failure.response,
    }
    note = f"{_channel_name(channel)} not accepted: {failure.response}"
    async with conn.transaction():
        await notifications.lock_incident(conn, q, incident_id)
        await notifications.finish(conn, q, nid, "failed", failure.message_id, failure.response, at)
        await notifications.add_notice_event(conn, q, incident_id, "notification_failed", at, note, actor, detail)


def _channel_name(channel: Channel) -> str:
    return "e-mail" if channel == "email" else "webhook"
