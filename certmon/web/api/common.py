"""What every handler shares: JSON in and out, query parameters, the caller, the connection."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar, overload

import asyncpg
import orjson
import pydantic
from aiohttp import web

from certmon.core.access import ROLES, Principal
from certmon.core.ack_links import ACK_PREFIX
from certmon.core.audit import Actor
from certmon.core.errors import BadRequest, Invalid, PayloadTooLarge
from certmon.core.models import NUL_MESSAGE, Time, error_message, to_utc
from certmon.core.nesting import nesting_error, too_deep
from certmon.store import db
from certmon.web import appkeys

M = TypeVar("M", bound=pydantic.BaseModel)
T = TypeVar("T")
Handler = Callable[[web.Request], Any]
PUBLIC = "public"  # the role of an operation that needs no token


# The zone in which answers write times: the policy's, set for each request by the operation wrapper.
_ANSWER_TZ: contextvars.ContextVar[tzinfo] = contextvars.ContextVar("certmon_answer_tz", default=UTC)


def _default(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(_ANSWER_TZ.get()).isoformat()
        except OverflowError:  # a rejected input echoed back, such as year 1 with an offset: shown as given
            return value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# Times pass through to _default, which writes them in the answer's timezone; keys of figures may be numbers.
_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_DUMP_OPTIONS)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, headers=headers, content_type="application/json")


def validation_problem(error: pydantic.ValidationError) -> Invalid:
    """The first error names the field; all of them travel in ``errors``."""
    items = []
    for e in error.errors():
        loc = [str(p) for p in e["loc"]]
        message = error_message(e)
        # Model-level checks report the field inside the message ("notified_at: is earlier than ...").
        if not loc and ": " in message:
            name, _, message = message.partition(": ")
            loc = [name]
        items.append({"field": ".".join(loc) or "body", "message": message})
    first = Invalid(items[0]["field"], items[0]["message"])
    first.extra["errors"] = items
    return first


async def read_json(request: web.Request, max_bytes: int = 1_000_000) -> Any:
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    raw = await request.read()
    if len(raw) > max_bytes:  # a chunked body announces no length
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    if too_deep(raw):
        raise nesting_error()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


async def read_model(request: web.Request, model: type[M], max_bytes: int = 1_000_000) -> M:
    body = await read_json(request, max_bytes)
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise validation_problem(exc) from None


@overload
def query(request: web.Request, name: str) -> str | None: ...


@overload
def query(request: web.Request, name: str, convert: Callable[[str], T]) -> T | None: ...


def query(request: web.Request, name: str, convert: Callable[[str], Any] | None = None) -> Any:
    """A query parameter, converted; a value the converter refuses is a 422 naming the parameter."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if "\x00" in raw:
        raise Invalid(name, NUL_MESSAGE)
    if convert is None:
        return raw
    try:
        return convert(raw)
    except ValueError as exc:
        raise Invalid(name, str(exc) or f"bad value {raw!r}") from None


def row_id(raw: str) -> int | None:
    """raw as a row id (a positive PostgreSQL bigint), or None when no row could have it."""
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 1 <= value <= MAX_ID else None


MAX_ID = 2**63 - 1
ROW_ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID, "examples": [1]}
LIMIT_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 1000}


def page_limit(raw: str) -> int:
    """A page size between 1 and 1000."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number between 1 and 1000") from None
    if not 1 <= value <= 1000:
        raise ValueError("must be between 1 and 1000")
    return value


async def read_ndjson(request: web.Request, max_lines: int, max_bytes: int) -> list[bytes]:
    """The lines of an NDJSON body, refused whole (413) when it is too large to take in one request."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    lines = (await request.read()).splitlines()
    if sum(1 for line in lines if line.strip()) > max_lines:
        raise PayloadTooLarge(f"more than {max_lines} lines; split the file")
    return lines


def choice(*allowed: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return convert


_TIME = pydantic.TypeAdapter(Time)


def aware_datetime(raw: str) -> datetime:
    """A time in a query parameter, read as a body's times are: RFC 3339 with an offset, 1970 or later."""
    try:
        value = _TIME.validate_python(raw)
    except pydantic.ValidationError as exc:
        raise ValueError(error_message(exc.errors()[0])) from None
    return to_utc(value)


def principal(request: web.Request) -> Principal:
    caller: Principal = request[appkeys.PRINCIPAL]
    return caller


def actor(request: web.Request) -> Actor:
    """Who the request writes as in the audit trail: its token, its console session, or an acknowledgement link."""
    caller = request.get(appkeys.PRINCIPAL)
    if caller is None:
        return Actor("ack-link" if request.path.startswith(ACK_PREFIX) else "anonymous")
    via = "console" if appkeys.CONSOLE_SESSION in request else "token"
    return Actor(f"{via}:{caller.name}", caller.role)


@contextlib.asynccontextmanager
async def connection(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """The request's connection; every handler takes it here, so every write it makes names the request's caller."""
    app = request.app
    async with db.connection(app[appkeys.POOL], app[appkeys.SETTINGS].db_timeout_seconds, actor(request)) as conn:
        yield conn


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter in the query, the path or a header; ``schema`` is what the document promises a client."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    where: str = "query"


@dataclass(frozen=True, slots=True)
class Answer:
    """A status an operation may answer beyond the ones its properties imply, with what comes with it.

    Below 400 the answer carries the operation's success body; from 400 on, a problem body.
    """

    description: str
    headers: dict[str, str] = field(default_factory=dict)  # header name: what it says
    required_headers: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One route as the OpenAPI document describes it; the statuses every such route can answer are added from
    its properties (a token: 401, 403, 429; a body: 400, 413, 422; a path parameter: 404; the database: 503)."""

    method: str
    path: str
    summary: str
    roles: Sequence[str]
    body: type[pydantic.BaseModel] | None = None
    # Media types the body may come in; NDJSON (one body model a line) and streamed uploads name theirs.
    body_media: str | Sequence[str] = "application/json"
    # The schema of a body that no model describes (the raw records of a streamed upload); its items are one line.
    body_schema: dict[str, Any] | None = None
    # Read as it arrives, line by line, of any size: a bad or oversized line is rejected in the answer, not whole.
    streamed: bool = False
    response: type[pydantic.BaseModel] | None = None
    # Media types of the success answer; with a response model, the first JSON one carries its schema.
    media: Sequence[str] = ()
    status: int = 200
    params: Sequence[Param] = ()
    responses: Mapping[int, str | Answer] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # headers of the success answer: name: what it says
    database: bool = True  # reads or writes the database, so an outage answers 503

    @property
    def public(self) -> bool:
        return tuple(self.roles) == (PUBLIC,)

    @property
    def body_media_types(self) -> tuple[str, ...]:
        return (self.body_media,) if isinstance(self.body_media, str) else tuple(self.body_media)

    @property
    def has_body(self) -> bool:
        return self.body is not None or self.body_schema is not None

    @property
    def media_types(self) -> tuple[str, ...]:
        if self.media:
            return tuple(self.media)
        return ("application/json",) if self.response is not None else ()


class Api:
    """A route table that records each operation for the OpenAPI document and enforces the roles it states."""

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.operations: list[Operation] = []

    def operation(self, method: str, path: str, *, roles: Sequence[str], **spec: Any) -> Callable[[Handler], Handler]:
        """Route the handler, refusing (403) a caller whose role is not in ``roles``; ``(PUBLIC,)`` needs no token.

        The roles are enforced here and nowhere else, so that the OpenAPI document states exactly what is checked.
        """
        op = Operation(method=method.lower(), path=path, roles=tuple(roles), **spec)
        if not op.public and (not roles or any(role not in ROLES for role in roles)):
            raise ValueError(f"{method} {path}: roles must be ({PUBLIC!r},) or some of {', '.join(ROLES)}: {roles!r}")

        def register(handler: Handler) -> Handler:
            checked = _known_parameters(op, handler)
            routed = checked if op.public else _requiring(op.roles, checked)
            self.routes.route(method, path)(routed)
            self.operations.append(op)
            return routed

        return register


def _known_parameters(op: Operation, handler: Handler) -> Handler:
    """Refuse (422) a query parameter the operation does not declare: a misspelt filter must not be ignored.

    It also sets the zone the answer writes its times in.
    """
    known = {p.name for p in op.params if p.where == "query"}

    @functools.wraps(handler)
    async def checked(request: web.Request) -> Any:
        _ANSWER_TZ.set(request.app[appkeys.POLICY].tz)
        for name in request.query:
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise Invalid(name, f"is not a parameter of {op.method.upper()} {op.path} (known: {allowed})")
        return await handler(request)

    return checked


def _requiring(roles: Sequence[str], handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> Any:
        principal(request).require(*roles)
        return await handler(request)

    return guarded


def now(request: web.Request) -> datetime:
    """The current instant as the app's clock tells it."""
    return request.app[appkeys.CLOCK]()
