"""The console's boundary: its language, its session, its form tokens, and its errors as pages.

Only the console's own routes (named ``console.*``) pass through here; /api/v1 keeps to bearer tokens alone, and a
session cookie opens nothing there. A page without a live session leads to the sign-in page; a POST without the
form token of its session (or, for the sign-in form, of its own cookie) is refused with 403 before its handler
runs. A cross-site page can send neither: the cookies are SameSite=Strict and the token is never in a cookie it
could read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import structlog
from aiohttp import web

from certmon.core.errors import CertmonError, Forbidden
from certmon.core.sessions import CSRF_FIELD, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, ConsoleSession, same_secret
from certmon.core.settings import Settings
from certmon.store import sessions
from certmon.web import appkeys
from certmon.web.api.common import connection, now
from certmon.web.console.messages import DEFAULT_LANG, LANGS, Lang
from certmon.web.console.rendering import error_page, see_other
from certmon.web.middlewares import Handler
from certmon.web.pages import CONSOLE_HEADERS

log = structlog.get_logger("certmon")
ROUTE_PREFIX = "console."
SIGN_IN_ROUTES = frozenset({"console.login", "console.login_submit"})
# The queue's background refresh: it neither counts as use of the session nor is sent to the sign-in page.
BACKGROUND_ROUTES = frozenset({"console.queue_rows"})
LANG_COOKIE_SECONDS = 400 * 86_400  # the longest lifetime browsers keep a cookie
_INCIDENT_FORM = re.compile(r"^(/incidents/\d+)/(?:events|notify)$")  # forms of an incident page, and that page


def idle_limit(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.session_idle_minutes)


def lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.session_max_hours)


def is_secure(request: web.Request) -> bool:
    """Served over HTTPS here, or, with trust_proxy, by a proxy that says it took the request over HTTPS."""
    if request.secure:
        return True
    if not request.app[appkeys.SETTINGS].trust_proxy:
        return False
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, *, max_age: int, path: str = "/"
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="Strict", secure=is_secure(request)
    )


def drop_cookie(response: web.StreamResponse, request: web.Request, name: str, path: str = "/") -> None:
    set_cookie(response, request, name, "", max_age=0, path=path)


def choose_lang(request: web.Request) -> tuple[Lang, bool]:
    """The page's language and whether it was asked for now (?lang=), so that it is remembered."""
    asked = request.query.get("lang")
    for lang in LANGS:
        if asked == lang:
            return lang, True
    remembered = request.cookies.get(LANG_COOKIE)
    for lang in LANGS:
        if remembered == lang:
            return lang, False
    return DEFAULT_LANG, False


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path of this site only, never another site's address."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


def sign_in_url(request: web.Request, *, expired: bool) -> str:
    """The sign-in page, then back here; from a form, back to the page that showed it (a form's URL has no page)."""
    if request.method == "GET":
        back = request.path_qs
    else:
        form_of = _INCIDENT_FORM.match(request.path)
        back = form_of.group(1) if form_of else "/"
    params = {"next": back}
    if expired:
        params["expired"] = "1"
    return "/login?" + urlencode(params)


@web.middleware
async def console_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    name = request.match_info.route.name
    if name is None or not name.startswith(ROUTE_PREFIX):
        return await handler(request)
    lang, asked = choose_lang(request)
    request[appkeys.LANG] = lang
    try:
        response = await _guarded(request, handler, name)
    except CertmonError as exc:
        response = error_page(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(request, _http_error(exc))
    except Exception:
        log.exception("unhandled error", path=request.path, request_id=request.get(appkeys.REQUEST_ID))
        response = error_page(request, CertmonError("an unexpected error occurred; it has been logged"))
    if asked:
        set_cookie(response, request, LANG_COOKIE, lang, max_age=LANG_COOKIE_SECONDS)
    return response


async def _guarded(request: web.Request, handler: Handler, name: str) -> web.StreamResponse:
    session_id = request.cookies.get(SESSION_COOKIE)
    session = await _session(request, session_id, touch=name not in BACKGROUND_ROUTES) if session_id else None
    if session is not None:
        request[appkeys.CONSOLE_SESSION] = session
        request[appkeys.PRINCIPAL] = session.principal
        structlog.contextvars.bind_contextvars(token=session.principal.name)
    sign_in = name in SIGN_IN_ROUTES
    if request.method == "POST":
        if session is None and session_id and not sign_in:
            return see_other(sign_in_url(request, expired=True))  # nothing is done; the reader signs in again
        form = await request.post()
        given = form.get(CSRF_FIELD)
        expected = request.cookies.get(LOGIN_COOKIE) if sign_in else None if session is None else session.csrf
        if not same_secret(given if isinstance(given, str) else None, expected):
            raise Forbidden("the form token is missing or does not match this session")
    elif session is None and not sign_in:
        if name in BACKGROUND_ROUTES:
            return web.Response(status=401, text="signed out", headers=CONSOLE_HEADERS)
        return see_other(sign_in_url(request, expired=session_id is not None))
    return await handler(request)


async def _session(request: web.Request, session_id: str, *, touch: bool) -> ConsoleSession | None:
    app = request.app
    async with connection(request) as conn:
        return await sessions.resolve(
            conn, app[appkeys.QUERIES], session_id, now(request), idle_limit(app[appkeys.SETTINGS]), touch=touch
        )


def _http_error(exc: web.HTTPException) -> CertmonError:
    error = CertmonError(exc.text or exc.reason)
    error.status = exc.status
    error.title = exc.reason
    return error
