"""Notifications certmon sends an agency itself, by e-mail or webhook."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from certmon.core.errors import BadGateway, Conflict
from certmon.core.models import Channel, NotificationIn, NotificationOut
from certmon.notify import flow
from certmon.web import appkeys
from certmon.web.api import idempotency
from certmon.web.api.common import Api, connection, json_response, principal, read_model
from certmon.web.api.incidents import ID, incident_id

api = Api()


@api.operation(
    "POST",
    "/api/v1/incidents/{id}/notifications",
    summary="Notify the incident's agency by e-mail or webhook; notified_at becomes the moment it was accepted",
    roles=("admin", "analyst"),
    body=NotificationIn,
    response=NotificationOut,
    status=201,
    params=(ID, idempotency.PARAM),
    responses={
        200: "sent on this channel before, and no resend asked for: the earlier notification",
        409: "a send on this channel is in progress, or a request with the same Idempotency-Key is (retry after "
        "Retry-After seconds)",
        422: "the agency has nobody to reach on this channel (the field is channel), or the Idempotency-Key is "
        "already used for a different request",
        502: "the mail server or the webhook refused or did not answer; a notification_failed event records it",
    },
)
async def notify_incident(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await read_model(request, NotificationIn)
    target = incident_id(request)
    async with connection(request) as conn:

        async def send() -> web.Response:
            outcome = await notify_counted(request, conn, target, body.channel, caller.name, resend=body.resend)
            notification = outcome.notification
            if outcome.kind == "failed":
                raise BadGateway(
                    f"the {body.channel} notification was not accepted: {notification['response']}",
                    notification=notification,
                )
            return json_response(notification, status=201 if outcome.kind == "sent" else 200)

        return await idempotency.once(request, conn, send, atomic=False)


async def notify_counted(
    request: web.Request, conn: asyncpg.Connection, target: int, channel: Channel, actor: str, *, resend: bool
) -> flow.Outcome:
    """Notify through flow.notify and count the outcome, a refused duplicate included: for the API and the console."""
    app = request.app
    metrics = app[appkeys.METRICS]
    try:
        outcome = await flow.notify(
            conn,
            app[appkeys.QUERIES],
            app[appkeys.POLICY],
            app[appkeys.SETTINGS],
            app[appkeys.HTTP_CLIENT],
            target,
            channel,
            actor,
            app[appkeys.CLOCK],
            resend=resend,
        )
    except Conflict:
        metrics.count_notification(channel, "duplicate")
        raise
    metrics.count_notification(outcome.channel, outcome.kind)
    return outcome
