"""The HTTP API under /api/v1: each concept's module contributes its routes and operation records."""

from __future__ import annotations

from aiohttp import web

from certmon.web import appkeys
from certmon.web.api import agencies, audit, exports, incidents, ingest, notifications, reports, sla, surveys
from certmon.web.api.common import Api, json_response
from certmon.web.api.openapi import document

MODULES: tuple[Api, ...] = (
    agencies.api,
    incidents.api,
    notifications.api,
    sla.api,
    surveys.api,
    ingest.api,
    exports.api,
    reports.api,
    audit.api,
)
OPENAPI_PATH = "/api/v1/openapi.json"
# Taken from the operations' own roles, so that what the document calls public is what needs no token.
PUBLIC_PATHS = frozenset({OPENAPI_PATH, *(op.path for m in MODULES for op in m.operations if op.public)})


def setup_routes(app: web.Application) -> None:
    spec = document((op for module in MODULES for op in module.operations), app[appkeys.POLICY])

    async def openapi(request: web.Request) -> web.Response:
        return json_response(spec)

    for module in MODULES:
        app.router.add_routes(module.routes)
    app.router.add_get(OPENAPI_PATH, openapi)
