"""Signing in with an API token, and out: the session's cookie is set and dropped here."""

from __future__ import annotations

from aiohttp import web

from certmon.core.sessions import LOGIN_COOKIE, SESSION_COOKIE, new_secret
from certmon.store import sessions
from certmon.web import appkeys
from certmon.web.api.common import connection, now
from certmon.web.console.messages import text
from certmon.web.console.rendering import lang_of, page, see_other
from certmon.web.console.sessions import drop_cookie, idle_limit, lifetime, safe_next, set_cookie

LOGIN_PATH = "/login"
SIGN_IN_FORM_SECONDS = 3600  # the sign-in form's token: long enough to fetch a token from a password manager


def _form(request: web.Request, *, status: int = 200, failed: bool = False) -> web.Response:
    """The sign-in page with a fresh form token, which its cookie must match when the form comes back."""
    settings = request.app[appkeys.SETTINGS]
    lang = lang_of(request)
    token = new_secret()
    notice = None
    if request.query.get("expired"):
        notice = text(lang, "login.expired")
    elif request.query.get("bye"):
        notice = text(lang, "login.bye")
    context = {
        "csrf": token,
        "next": safe_next(request.query.get("next")),
        "failed": failed,
        "notice": notice,
        "rules": text(
            lang,
            "login.rules",
            idle=f"{settings.session_idle_minutes:g}",
            hours=f"{settings.session_max_hours:g}",
        ),
    }
    response = page(request, "login.html", context, status=status)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=SIGN_IN_FORM_SECONDS, path=LOGIN_PATH)
    return response


async def login_form(request: web.Request) -> web.Response:
    if request.get(appkeys.CONSOLE_SESSION) is not None:
        return see_other(safe_next(request.query.get("next")))
    return _form(request)


async def login(request: web.Request) -> web.Response:
    app = request.app
    settings = app[appkeys.SETTINGS]
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token.strip():
        return _form(request, status=401, failed=True)
    async with connection(request) as conn:
        opened = await sessions.open_session(
            conn, app[appkeys.QUERIES], token, now(request), idle_limit(settings), lifetime(settings)
        )
        earlier = request.cookies.get(SESSION_COOKIE)
        if opened is not None and earlier:
            await sessions.close_session(conn, app[appkeys.QUERIES], earlier)  # a new sign-in gets a new id
    if opened is None:
        return _form(request, status=401, failed=True)
    session_id, _ = opened
    next_raw = form.get("next")
    response = see_other(safe_next(next_raw if isinstance(next_raw, str) else None))
    set_cookie(response, request, SESSION_COOKIE, session_id, max_age=int(lifetime(settings).total_seconds()))
    drop_cookie(response, request, LOGIN_COOKIE, path=LOGIN_PATH)
    return response


async def logout(request: web.Request) -> web.Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        async with connection(request) as conn:
            await sessions.close_session(conn, request.app[appkeys.QUERIES], session_id)
    response = see_other(f"{LOGIN_PATH}?bye=1")
    drop_cookie(response, request, SESSION_COOKIE)
    return response
