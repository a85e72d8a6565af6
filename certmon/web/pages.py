"""HTML pages: one Jinja2 environment for every page certmon serves, with its templates in web/templates/."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

# Pages may carry a secret in their URL (an acknowledgement link): no referrer leaves them, no cache keeps them,
# and nothing but their own inline style and their own forms may run.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}
# The console's pages carry no secret in their URL; they load their script and style from certmon itself and
# nothing else, and nothing inline runs.
CONSOLE_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def setup_pages(app: web.Application, tz: tzinfo) -> jinja2.Environment:
    """Attach the environment to the app; ``tz`` is the zone in which pages show times (the policy's)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("certmon.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test that renders it, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def local_time(value: datetime | None) -> str:
        return "-" if value is None else f"{value.astimezone(tz):%Y-%m-%d %H:%M} ({tz})"

    env.filters["local_time"] = local_time
    return env


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] = PAGE_HEADERS,
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, dict(context), status=status)
    response.headers.update(headers)
    return response
