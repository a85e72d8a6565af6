"""Acknowledgement links: issued with a notification, shown without effect, used once to acknowledge.

Showing a link records nothing, because mail scanners open links before people do; only the page's form, posted,
records ``acknowledged``, at that moment, with the agency as the actor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from certmon.core.ack_links import could_be_token, link, new_token, token_hash
from certmon.core.errors import Conflict
from certmon.core.models import EventIn
from certmon.core.policy import Policy
from certmon.store import ack_links, incidents
from certmon.store.db import Queries

LinkState = Literal["open", "acknowledged", "already_acknowledged", "used", "expired", "unknown"]


@dataclass(frozen=True, slots=True)
class LinkView:
    """What a link's page shows: its state and, for a link certmon issued, the incident and agency it is about."""

    state: LinkState
    incident_id: int | None = None
    title: str | None = None
    agency_code: str | None = None
    agency_name: str | None = None
    agency_name_th: str | None = None
    expires_at: datetime | None = None
    used_at: datetime | None = None
    acknowledged_at: datetime | None = None


UNKNOWN = LinkView("unknown")


def actor_of(agency: str) -> str:
    return f"agency:{agency}"


async def issue(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    public_url: str,
    incident_id: int,
    agency: str,
    notification_id: int,
    now: datetime,
) -> tuple[str, datetime]:
    """A new link for the notification's agency; its URL (the only place the token is kept) and expiry."""
    token = new_token()
    expires = now + timedelta(hours=policy.acknowledgement_link_hours)
    await ack_links.insert(conn, q, token_hash(token), incident_id, agency, notification_id, now, expires)
    return link(public_url, token), expires


async def preview(conn: asyncpg.Connection, q: Queries, token: str, now: datetime) -> LinkView:
    """The link as its page shows it before the form is posted; this writes nothing."""
    if not could_be_token(token):
        return UNKNOWN
    return _view(await ack_links.find(conn, q, token_hash(token)), now)


async def acknowledge(conn: asyncpg.Connection, q: Queries, policy: Policy, token: str, now: datetime) -> LinkView:
    """Use the link: record ``acknowledged`` now, as the agency, unless it is unknown, used or expired."""
    if not could_be_token(token):
        return UNKNOWN
    digest = token_hash(token)
    async with conn.transaction():
        used = await ack_links.use(conn, q, digest, now)
        if used is None:
            return _view(await ack_links.find(conn, q, digest), now)
        agency = used["agency_code"]
        state: LinkState = "acknowledged"
        event = EventIn(
            type="acknowledged", note=f"acknowledged through the link of notification {used['notification_id']}"
        )
        detail = {"notification": used["notification_id"], "via": "acknowledgement link"}
        try:
            await incidents.add_event(
                conn, q, policy, used["incident_id"], event, actor_of(agency), now, agency=agency, detail=detail
            )
        except Conflict:
            state = "already_acknowledged"  # recorded some other way first; the link is spent all the same
        row = await ack_links.find(conn, q, digest)
    return replace(_view(row, now), state=state)


def _view(row: asyncpg.Record | None, now: datetime) -> LinkView:
    if row is None:
        return UNKNOWN
    state: LinkState = "used" if row["used_at"] is not None else "expired" if row["expires_at"] <= now else "open"
    return LinkView(
        state=state,
        incident_id=row["incident_id"],
        title=row["title"],
        agency_code=row["agency_code"],
        agency_name=row["agency_name"],
        agency_name_th=row["agency_name_th"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        acknowledged_at=row["acknowledged_at"],
    )
