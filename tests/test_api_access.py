"""Tokens and roles, agencies, health and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from certmon.core.access import ROLES
from certmon.web import appkeys
from certmon.web.api import MODULES, OPENAPI_PATH, PUBLIC_PATHS
from tests.conftest import Api

NEW_AGENCY = {
    "code": "NCSA",
    "name": "National Cyber Security Agency",
    "name_th": "สำนักงานคณะกรรมการการรักษาความมั่นคงปลอดภัยไซเบอร์แห่งชาติ",
    "sector": "it-telecom",
    "cii": True,
    "networks": ["203.0.113.0/24", "2001:db8::/32"],
}


async def raw(api: Api, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
    async with api.client.request(method, path, headers=headers or {}, **kw) as response:
        return response.status, await response.json(content_type=None)


async def test_api_without_or_with_a_bad_token_is_401(api: Api) -> None:
    """No header, another scheme or an unknown token all get 401 with a problem body."""
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer certmon_nope"}):
        status, problem = await raw(api, "GET", "/api/v1/incidents", headers)
        assert status == 401
        assert problem["title"] == "Unauthorized"


async def test_revoked_token_stops_working(api: Api) -> None:
    """After revocation the same token is refused."""
    async with api.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'test-auditor'")
    status, _ = await api.call("GET", "/api/v1/agencies", "auditor")
    assert status == 401


async def test_roles_limit_what_a_token_may_do(api: Api) -> None:
    """Auditors and agencies cannot write; analysts cannot manage agencies; admin can."""
    incident = {
        "agency": "MOF",
        "title": "t",
        "severity": "low",
        "category": "fraud/phishing",
        "detected_at": "2021-08-02T09:00:00+07:00",
    }
    assert (await api.call("POST", "/api/v1/incidents", "auditor", json=incident))[0] == 403
    assert (await api.call("POST", "/api/v1/incidents", "agency", json=incident))[0] == 403
    assert (await api.call("POST", "/api/v1/agencies", "analyst", json=NEW_AGENCY))[0] == 403
    assert (await api.call("POST", "/api/v1/agencies", "admin", json=NEW_AGENCY))[0] == 201


# A value for each path parameter that lets a permitted caller past the URL (MOF is the agency token's own).
PATH_VALUES = {"code": "MOF", "id": "1", "month": "2021-08", "revision": "1", "file": "manifest.json"}


async def test_every_operation_refuses_exactly_the_roles_it_does_not_list(api: Api) -> None:
    """Each role an operation's record leaves out gets 403, each it lists does not, and public ones need no token."""
    operations = [op for module in MODULES for op in module.operations]
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in api.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"
    }
    assert routes == {(op.method, op.path) for op in operations} | {("get", OPENAPI_PATH)}
    assert not {op.path for op in operations if not op.public} & PUBLIC_PATHS  # those would skip authentication
    _, spec = await raw(api, "GET", OPENAPI_PATH)
    for op in operations:
        assert spec["paths"][op.path][op.method]["description"] == f"Roles: {', '.join(op.roles)}."
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m[1]], op.path)
        if op.public:
            async with api.client.request(op.method, path) as response:
                assert response.status not in (401, 403), op.path
            continue
        assert set(op.roles) <= set(ROLES), op.path
        for role in ROLES:
            status, body = await api.call(op.method, path, role)
            if role in op.roles:
                assert status != 403, (op.method, op.path, role, body)
            else:
                assert status == 403, (op.method, op.path, role, body)
                assert body["detail"] == f"role {role!r} may not do this; needs one of: {', '.join(op.roles)}"


async def test_agency_token_sees_only_its_own_agency(api: Api) -> None:
    """An agency token lists only its incidents, gets 404 for others' and 403 when asking for another agency."""
    base = {"title": "t", "severity": "low", "category": "fraud/phishing", "detected_at": "2021-08-02T09:00:00+07:00"}
    _, mine = await api.call("POST", "/api/v1/incidents", json={**base, "agency": "MOF"})
    _, theirs = await api.call("POST", "/api/v1/incidents", json={**base, "agency": "DGA"})
    _, page = await api.call("GET", "/api/v1/incidents", "agency")
    assert [i["id"] for i in page["items"]] == [mine["id"]]
    assert (await api.call("GET", f"/api/v1/incidents/{theirs['id']}", "agency"))[0] == 404
    assert (await api.call("GET", f"/api/v1/incidents/{mine['id']}", "agency"))[0] == 200
    assert (await api.call("GET", "/api/v1/incidents?agency=DGA", "agency"))[0] == 403
    assert (await api.call("GET", "/api/v1/sla?period=2021-08&agency=DGA", "agency"))[0] == 403
    _, sla = await api.call("GET", "/api/v1/sla?period=2021-08", "agency")
    assert sla["total"] == 1
    _, agencies = await api.call("GET", "/api/v1/agencies", "agency")
    assert [a["code"] for a in agencies["items"]] == ["MOF"]


async def test_agency_create_read_update(api: Api) -> None:
    """An admin registers an agency with networks, changes it with PATCH and PUT, and duplicates are 409."""
    status, created = await api.call("POST", "/api/v1/agencies", json=NEW_AGENCY)
    assert status == 201
    assert created["networks"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert (await api.call("POST", "/api/v1/agencies", json=NEW_AGENCY))[0] == 409
    status, patched = await api.call(
        "PATCH", "/api/v1/agencies/NCSA", json={"cii": False, "networks": ["198.51.100.0/24"]}
    )
    assert status == 200
    assert (patched["cii"], patched["networks"], patched["name"]) == (False, ["198.51.100.0/24"], NEW_AGENCY["name"])
    status, put = await api.call("PUT", "/api/v1/agencies/NCSA", json={**NEW_AGENCY, "name": "NCSA"})
    assert (status, put["name"]) == (200, "NCSA")
    status, got = await api.call("GET", "/api/v1/agencies/NCSA", "auditor")
    assert (status, got["sector"]) == (200, "it-telecom")
    assert (await api.call("GET", "/api/v1/agencies/NOPE"))[0] == 404
    assert (await api.call("PATCH", "/api/v1/agencies/NOPE", json={"cii": True}))[0] == 404


async def test_agency_validation_names_the_field(api: Api) -> None:
    """Bad codes, sectors and networks are 422 naming the field."""
    for field, value in (("code", "mof lower"), ("sector", "space"), ("networks", ["10.0.0.1/8"])):
        status, problem = await api.call("POST", "/api/v1/agencies", json={**NEW_AGENCY, field: value})
        assert status == 422
        assert problem["errors"][0]["field"].split(".")[0] == field


async def test_health_needs_no_token_and_metrics_take_the_metrics_token(api: Api) -> None:
    """Probes reach their endpoints without a token; Prometheus scrapes with its metrics token."""
    assert (await raw(api, "GET", "/healthz"))[0] == 200
    assert (await raw(api, "GET", "/readyz")) == (200, {"status": "ready"})
    async with api.client.get("/metrics", headers=api.headers("metrics")) as response:
        assert response.status == 200
        text = await response.text()
    assert "certmon_http_requests_total" in text
    assert "process_resident_memory_bytes" in text


async def test_metrics_offer_openmetrics_when_asked(api: Api) -> None:
    """Prometheus asks for OpenMetrics and gets it."""
    async with api.client.get(
        "/metrics", headers={**api.headers("metrics"), "Accept": "application/openmetrics-text; version=1.0.0"}
    ) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await r.text()).rstrip().endswith("# EOF")


async def test_openapi_document_describes_every_route(api: Api) -> None:
    """The OpenAPI 3.1 document lists each /api/v1 route with the models that validate it."""
    status, spec = await raw(api, "GET", "/api/v1/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.1")
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in api.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops} | {("get", "/api/v1/openapi.json")}
    assert routes <= documented
    incident_schema = spec["components"]["schemas"]["IncidentIn"]
    assert {"agency", "severity", "category", "detected_at"} <= set(incident_schema["required"])


async def test_unknown_route_is_a_json_404(api: Api) -> None:
    """Even an unknown path answers with a problem body."""
    status, problem = await raw(api, "GET", "/api/v1/nothing-here", {"Authorization": f"Bearer {api.tokens['admin']}"})
    assert status == 404
    assert problem["status"] == 404
