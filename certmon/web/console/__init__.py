"""The analyst console: server-rendered pages in Thai and English on the same tokens and roles as the API.

Pages are Jinja2 templates under web/templates/console/; the one script and style sheet they load are in
web/static/ and served from here. Routes are named ``console.*``: the session middleware (sessions.py) acts on
those and nothing else.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from certmon.core.errors import NotFound
from certmon.web.console import incident, new_incident, queue, signin, sla

STATIC_TYPES = {"console.css": "text/css", "console.js": "text/javascript"}
STATIC_CACHE = "public, max-age=300"  # five minutes: a new release's script reaches open pages soon after


def _static_files() -> dict[str, bytes]:
    folder = resources.files("certmon.web").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in STATIC_TYPES}


def setup_console(app: web.Application) -> None:
    """Route the console's pages; its middleware is ``sessions.console_pages``."""
    files = _static_files()

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise NotFound(f"no static file {name!r}")
        headers = {"Cache-Control": STATIC_CACHE, "X-Content-Type-Options": "nosniff"}
        return web.Response(body=files[name], content_type=STATIC_TYPES[name], charset="utf-8", headers=headers)

    r = app.router
    r.add_get("/static/{name}", static)
    r.add_get("/", queue.show_queue, name="console.queue")
    r.add_get("/queue/rows", queue.queue_rows, name="console.queue_rows")
    r.add_get("/login", signin.login_form, name="console.login")
    r.add_post("/login", signin.login, name="console.login_submit")
    r.add_post("/logout", signin.logout, name="console.logout")
    r.add_get("/incidents/new", new_incident.new_incident_form, name="console.new_incident")
    r.add_post("/incidents", new_incident.create_incident, name="console.create_incident")
    r.add_post("/incidents/exclude", queue.exclude_selected, name="console.exclude_selected")
    r.add_get(r"/incidents/{id:\d+}", incident.show_incident, name="console.incident")
    r.add_post(r"/incidents/{id:\d+}/events", incident.record_event, name="console.record_event")
    r.add_post(r"/incidents/{id:\d+}/notify", incident.notify_agency, name="console.notify_agency")
    r.add_get("/sla", sla.show_sla, name="console.sla")
    r.add_get("/agencies/{code}", sla.show_agency, name="console.agency")
