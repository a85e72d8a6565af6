"""The acknowledgement pages behind the links certmon sends: a GET shows, only the form's POST acknowledges.

They need no token (the link is the credential) and answer HTML, also when the link is unknown (404), used or
expired (410).
"""

from __future__ import annotations

from aiohttp import web

from certmon.core.ack_links import ACK_PREFIX
from certmon.notify import links
from certmon.notify.links import LinkState, LinkView
from certmon.web import appkeys
from certmon.web.api.common import connection, now
from certmon.web.pages import render

ACK_ROUTE = ACK_PREFIX + "{token}"
STATUS: dict[LinkState, int] = {
    "open": 200,
    "acknowledged": 200,
    "already_acknowledged": 200,
    "used": 410,
    "expired": 410,
    "unknown": 404,
}
TEMPLATE: dict[LinkState, str] = {
    "open": "ack.html",
    "acknowledged": "ack_done.html",
    "already_acknowledged": "ack_done.html",
    "used": "ack_gone.html",
    "expired": "ack_gone.html",
    "unknown": "ack_gone.html",
}


async def show_link(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        view = await links.preview(conn, request.app[appkeys.QUERIES], request.match_info["token"], now(request))
    return _page(request, view)


async def use_link(request: web.Request) -> web.Response:
    app = request.app
    async with connection(request) as conn:
        view = await links.acknowledge(
            conn, app[appkeys.QUERIES], app[appkeys.POLICY], request.match_info["token"], now(request)
        )
    return _page(request, view)


def _page(request: web.Request, view: LinkView) -> web.Response:
    return render(request, TEMPLATE[view.state], {"link": view}, status=STATUS[view.state])


def setup_ack_routes(app: web.Application) -> None:
    app.router.add_get(ACK_ROUTE, show_link)
    app.router.add_post(ACK_ROUTE, use_link)
