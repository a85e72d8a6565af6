"""Monitored agencies."""

from __future__ import annotations

from aiohttp import web

from certmon.core.access import READ_ALL
from certmon.core.errors import Invalid, NotFound
from certmon.core.models import AGENCY_CODE, Agency, AgencyIn, AgencyPatch
from certmon.store.agencies import agency_json, fetch_agency, save_agency
from certmon.web import appkeys
from certmon.web.api.common import Api, Param, connection, json_response, principal, read_model

api = Api()
CODE = Param("code", "agency code", {"type": "string", "pattern": AGENCY_CODE.pattern}, where="path", required=True)


def path_code(request: web.Request) -> str:
    """The agency code in the URL; one that no agency could have is not found, without asking the database."""
    code = request.match_info["code"]
    if not AGENCY_CODE.fullmatch(code):
        raise NotFound(f"no agency {code!r}")
    return code


@api.operation(
    "POST",
    "/api/v1/agencies",
    summary="Register an agency, with whom certmon notifies (contacts, webhook)",
    roles=("admin",),
    body=AgencyIn,
    response=Agency,
    status=201,
    responses={409: "the code exists already"},
)
async def create_agency(request: web.Request) -> web.Response:
    agency = await read_model(request, AgencyIn)
    async with connection(request) as conn:
        saved = await save_agency(conn, request.app[appkeys.QUERIES], agency, create=True)
    return json_response(saved, status=201)


@api.operation("GET", "/api/v1/agencies", summary="List agencies", roles=(*READ_ALL, "agency"))
async def list_agencies(request: web.Request) -> web.Response:
    caller = principal(request)
    async with connection(request) as conn:
        rows = await conn.fetch(request.app[appkeys.QUERIES]["agency_list"], caller.scope(None))
    return json_response({"items": [agency_json(r) for r in rows]})


@api.operation(
    "GET", "/api/v1/agencies/{code}", summary="One agency", roles=(*READ_ALL, "agency"), response=Agency, params=(CODE,)
)
async def get_agency(request: web.Request) -> web.Response:
    code = path_code(request)
    caller = principal(request)
    if caller.role == "agency" and code != caller.agency:
        raise NotFound(f"no agency {code!r}")  # as for a code that no agency has: another's is not told apart
    async with connection(request) as conn:
        return json_response(await fetch_agency(conn, request.app[appkeys.QUERIES], code))


@api.operation(
    "PUT",
    "/api/v1/agencies/{code}",
    summary="Replace an agency (a webhook given without its secret keeps the stored one)",
    roles=("admin",),
    body=AgencyIn,
    response=Agency,
    params=(CODE,),
)
async def put_agency(request: web.Request) -> web.Response:
    agency = await read_model(request, AgencyIn)
    code = path_code(request)
    if agency.code != code:
        raise Invalid("code", f"must match the URL ({code})")
    async with connection(request) as conn:
        return json_response(await save_agency(conn, request.app[appkeys.QUERIES], agency, create=False))


@api.operation(
    "PATCH",
    "/api/v1/agencies/{code}",
    summary='Change some fields of an agency; "webhook": null removes the webhook',
    roles=("admin",),
    body=AgencyPatch,
    response=Agency,
    params=(CODE,),
)
async def patch_agency(request: web.Request) -> web.Response:
    patch = await read_model(request, AgencyPatch)
    q = request.app[appkeys.QUERIES]
    async with connection(request) as conn:
        current = await fetch_agency(conn, q, path_code(request))
        fields = {name: current[name] for name in AgencyIn.model_fields}
        # The stored webhook comes back without its secret, which the store then keeps.
        fields["webhook"] = current["webhook"] and {"url": current["webhook"]["url"]}
        changes = patch.model_dump(exclude_none=True)
        if "webhook" in patch.model_fields_set and patch.webhook is None:
            changes["webhook"] = None  # an explicit null removes it; leaving it out keeps it
        merged = AgencyIn.model_validate({**fields, **changes})
        return json_response(await save_agency(conn, q, merged, create=False))
