"""What every console page is rendered with: its language, its reader, its form token and the words to use."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web

from certmon.core.access import Principal
from certmon.core.errors import CertmonError
from certmon.web import appkeys
from certmon.web.api.common import now
from certmon.web.console import locale
from certmon.web.console.messages import DEFAULT_LANG, Explained, Lang, explain, label, text
from certmon.web.pages import CONSOLE_HEADERS, render

WRITERS = ("admin", "analyst")


def lang_of(request: web.Request) -> Lang:
    return cast(Lang, request.get(appkeys.LANG, DEFAULT_LANG))


def reader(request: web.Request) -> Principal | None:
    return request.get(appkeys.PRINCIPAL)


def signed_in(request: web.Request) -> Principal:
    """The reader of a page that is only served signed in (the session middleware sees to it)."""
    principal: Principal = request[appkeys.PRINCIPAL]
    return principal


def url_with(request: web.Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = {k: v for k, v in request.query.items() if k not in changes and k not in ("done", "n")}
    params.update({k: v for k, v in changes.items() if v is not None})
    query = urlencode(params)
    return request.path + (f"?{query}" if query else "")


def frame(request: web.Request, *, active: str = "", csrf: str | None = None) -> dict[str, Any]:
    """The context every console template may use."""
    lang = lang_of(request)
    tz = request.app[appkeys.POLICY].tz
    user = reader(request)
    session = request.get(appkeys.CONSOLE_SESSION)
    other: Lang = "en" if lang == "th" else "th"
    t = functools.partial(text, lang)
    return {
        "lang": lang,
        "other_lang": other,
        "lang_url": url_with(request, lang=other),
        "t": t,
        "label": functools.partial(label, lang),
        "time": functools.partial(locale.local_time, lang=lang, tz=tz),
        "month_name": functools.partial(locale.month_name, lang=lang),
        "percent": locale.percent,
        "user": user,
        "user_text": None if user is None else t("signed_in_as", name=user.name, role=label(lang, "role", user.role)),
        "can_write": user is not None and user.role in WRITERS,
        "csrf": csrf if csrf is not None else (session.csrf if session is not None else ""),
        "active": active,
        "time_note": t("time_note", offset=locale.utc_offset(now(request), tz)),
        "flash": None,
        "error": None,
    }


def page(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200, active: str = ""
) -> web.Response:
    return render(request, f"console/{template}", {**frame(request, active=active), **context}, status, CONSOLE_HEADERS)


def error_page(request: web.Request, error: CertmonError) -> web.Response:
    """An error the store or a form raised, as a page in the reader's language; never a stack trace."""
    explained = explain(lang_of(request), error)
    response = page(request, "error.html", {"error": explained}, status=error.status)
    retry = request.app[appkeys.SETTINGS].retry_after_seconds
    if error.status == 503:
        response.headers["Retry-After"] = str(retry)
    return response


def explained(request: web.Request, error: CertmonError) -> Explained:
    return explain(lang_of(request), error)


def see_other(location: str) -> web.Response:
    """The answer to a form that worked: the browser fetches the page anew, so a reload does not post again."""
    return web.Response(status=303, headers={"Location": location, **CONSOLE_HEADERS})
