"""Monthly SLA exports: list, download, trigger, and the public key that verifies them.

Agency tokens get 403 here: a revision is signed as a whole, so serving an agency only its own rows would serve
files no manifest vouches for. Agencies read their own figures from /api/v1/sla.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field, WithJsonSchema

from certmon.core import signing
from certmon.core.errors import Invalid, NotFound, Recomputing
from certmon.core.models import MONTH_SCHEMA
from certmon.core.periods import Period, parse_period
from certmon.core.recompute import RETRY_AFTER_SECONDS
from certmon.store import exports
from certmon.web import appkeys
from certmon.web.api.common import (
    PUBLIC,
    Answer,
    Api,
    Param,
    connection,
    json_response,
    now,
    principal,
    query,
    read_model,
)

api = Api()
READERS = ("admin", "auditor")
REVISION_RE = re.compile(r"[1-9][0-9]{0,8}")  # revisions are positive integers (PostgreSQL integer)
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
ANY_MONTH = {"type": "string", "pattern": f"^{MONTH_RE.pattern}$", "examples": ["2021-08"]}
PUBLIC_KEY_PATH = "/api/v1/exports/public-key"
# What the files of a revision are: CSV tables, JSON content and manifest, a workbook, the PDF report, the
# signature and the public key.
FILE_MEDIA = (
    "text/csv",
    "application/json",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/pdf",
    "text/plain",
    "application/x-pem-file",
)


class ExportFile(BaseModel):
    name: str
    media_type: str
    size: int
    sha256: str


class ExportRevision(BaseModel):
    month: str
    revision: int
    period_start: datetime
    period_end: datetime
    evaluated_at: datetime
    content_sha256: str
    policy_hash: str
    restated: bool
    generated_at: datetime
    generated_by: str
    files: list[ExportFile]


class ExportList(BaseModel):
    items: list[ExportRevision]


class ExportIn(BaseModel):
    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"), WithJsonSchema(MONTH_SCHEMA)]


class ExportOut(BaseModel):
    month: str
    revision: int
    created: bool
    restated: bool
    generated_at: datetime


def _month(raw: str) -> str:
    if not MONTH_RE.fullmatch(raw):
        raise ValueError("must be a month as YYYY-MM, e.g. 2021-08")
    return raw


@api.operation(
    "GET",
    "/api/v1/exports",
    summary="Stored export revisions, newest month first",
    roles=READERS,
    response=ExportList,
    params=(Param("month", "only this month, YYYY-MM", ANY_MONTH),),
)
async def list_exports(request: web.Request) -> web.Response:
    month = query(request, "month", _month)
    async with connection(request) as conn:
        rows = await conn.fetch(request.app[appkeys.QUERIES]["export_list"], month)
    items: list[dict[str, Any]] = [{**dict(r), "files": json.loads(r["files"])} for r in rows]
    return json_response({"items": items})


@api.operation(
    "POST",
    "/api/v1/exports",
    summary="Export a month now, or restate it when its data changed (a new revision); unchanged data returns 200",
    roles=("admin",),
    body=ExportIn,
    response=ExportOut,
    status=201,
    responses={
        200: "the month's data is unchanged; the latest revision is returned",
        409: Answer(
            "the month is not over; or clocks are being recomputed under a new policy (the problem's recomputing "
            "says how many are left): retry after Retry-After seconds",
            headers={"Retry-After": "seconds to wait while clocks are being recomputed"},
        ),
    },
)
async def create_export(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await read_model(request, ExportIn)
    app = request.app
    policy = app[appkeys.POLICY]
    period = _export_period(body.month, policy.tz, now(request))
    recompute = app[appkeys.RECOMPUTE]
    if recompute.status.remaining:
        raise Recomputing(recompute.status.remaining, RETRY_AFTER_SECONDS)
    settings = app[appkeys.SETTINGS]
    # Created here if missing, once, so that the worker only ever reads it.
    await asyncio.to_thread(signing.load_or_create_key, settings.effective_signing_key_path)
    worker = exports.worker_of(settings, policy, app[appkeys.DATABASE_URL])
    # Seconds to minutes of CPU: in the exports' worker, on a connection of its own, never on the event loop.
    try:
        result = await exports.off_loop(
            app[appkeys.EXPORTER], exports.month_in_worker, worker, period, now(request), caller.name
        )
    except Recomputing:
        # Stale clocks this process had not counted: written by a replica still on the previous policy.
        recompute.start()
        raise
    out = {
        "month": result.month,
        "revision": result.revision,
        "created": result.created,
        "restated": result.restated,
        "generated_at": result.generated_at,
    }
    return json_response(out, status=201 if result.created else 200)


def _export_period(month: str, tz: ZoneInfo, at: datetime) -> Period:
    """The month to export; one that ends before 1970 or has not begun is a 422, so that no date arithmetic is
    ever tried on it (the end of 9999-12 is past what a datetime holds)."""
    try:
        period = parse_period(month, tz)
    except ValueError as exc:
        raise Invalid("month", str(exc)) from None
    if period.start > at:
        raise Invalid("month", f"{month} has not begun")
    return period


@api.operation(
    "GET",
    PUBLIC_KEY_PATH,
    summary="The Ed25519 public key (PEM) that verifies export manifests; no token needed",
    roles=(PUBLIC,),
    media=("application/x-pem-file",),
    headers={"X-Key-Fingerprint": "the key's fingerprint, as manifests name it"},
    database=False,
)
async def public_key(request: web.Request) -> web.Response:
    path = request.app[appkeys.SETTINGS].effective_signing_key_path
    key = await asyncio.to_thread(signing.load_or_create_key, path)
    return web.Response(
        text=signing.public_pem(key),
        content_type="application/x-pem-file",
        headers={"X-Key-Fingerprint": signing.key_fingerprint(key)},
    )


@api.operation(
    "GET",
    "/api/v1/exports/{month}/{revision}/{file}",
    summary="One file of a revision (CSV, JSON, XLSX, manifest.json, manifest.sig, public-key.pem)",
    roles=READERS,
    params=(
        Param("month", "YYYY-MM", ANY_MONTH, required=True, where="path"),
        Param(
            "revision",
            "revision number, or latest",
            {"type": "string", "pattern": f"^(?:{REVISION_RE.pattern}|latest)$", "examples": ["latest"]},
            required=True,
            where="path",
        ),
        Param(
            "file", "file name as listed", {"type": "string", "examples": ["export.json"]}, required=True, where="path"
        ),
    ),
    media=FILE_MEDIA,
    headers={"Content-Disposition": "attachment, with a file name that names the month and revision"},
    responses={404: "no such month, revision or file"},
)
async def download(request: web.Request) -> web.Response:
    month, raw_revision, name = (request.match_info[k] for k in ("month", "revision", "file"))
    if not MONTH_RE.fullmatch(month):
        raise Invalid("month", "must be a month as YYYY-MM, e.g. 2021-08")
    if raw_revision != "latest" and not REVISION_RE.fullmatch(raw_revision):
        raise Invalid("revision", "must be a revision number or latest")
    revision = None if raw_revision == "latest" else int(raw_revision)
    q = request.app[appkeys.QUERIES]
    async with connection(request) as conn:
        row = await exports.revision_row(conn, q, month, revision)
        if row is None:
            raise NotFound(f"no export of {month} revision {raw_revision}")
        files = await exports.files_of(conn, q, row)
    if name not in files:
        raise NotFound(f"{month} revision {row['revision']} has no file {name!r} (it has: {', '.join(files)})")
    media, data = files[name]
    content_type, _, charset = media.partition("; charset=")
    response = web.Response(body=data, content_type=content_type, charset=charset or None)
    response.headers["Content-Disposition"] = f'attachment; filename="certmon-{month}-r{row["revision"]}-{name}"'
    return response
