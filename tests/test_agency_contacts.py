"""Whom certmon notifies: an agency's e-mail contacts and webhook, through the agencies API; the secret never leaves."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from tests.conftest import Api
from tests.notifying import CONTACTS, SECRET

WEBHOOK = {"url": "https://soc.mof.example.go.th/certmon", "secret": SECRET}


async def stored_webhook(api: Api, code: str) -> tuple[str | None, str | None]:
    conn = await asyncpg.connect(api.database_url)
    try:
        row = await conn.fetchrow("SELECT webhook_url, webhook_secret FROM agencies WHERE code = $1", code)
    finally:
        await conn.close()
    assert row is not None
    return row["webhook_url"], row["webhook_secret"]


async def test_an_agency_registered_with_contacts_and_a_webhook_shows_both_but_never_the_secret(api: Api) -> None:
    """POST and GET answer the contacts and the webhook's URL with secret_set; the secret is in no answer."""
    created = await api.agency("TOT", contacts=CONTACTS, webhook=WEBHOOK)
    assert created["contacts"] == CONTACTS
    assert created["webhook"] == {"url": WEBHOOK["url"], "secret_set": True}
    for role in ("admin", "auditor"):
        async with api.client.get("/api/v1/agencies/TOT", headers=api.headers(role)) as response:
            raw = await response.text()
        assert response.status == 200
        assert SECRET not in raw
        assert json.loads(raw)["webhook"] == {"url": WEBHOOK["url"], "secret_set": True}
    async with api.client.get("/api/v1/agencies", headers=api.headers("admin")) as response:
        assert SECRET not in await response.text()
    assert await stored_webhook(api, "TOT") == (WEBHOOK["url"], SECRET)


async def test_an_agency_without_contacts_or_webhook_answers_an_empty_list_and_null(api: Api) -> None:
    created = await api.agency("NEW")
    assert created["contacts"] == []
    assert created["webhook"] is None


async def test_patch_with_webhook_null_removes_the_webhook_and_its_secret(api: Api) -> None:
    await api.agency("TOT", contacts=CONTACTS, webhook=WEBHOOK)
    status, body = await api.call("PATCH", "/api/v1/agencies/TOT", json={"webhook": None})
    assert status == 200, body
    assert body["webhook"] is None
    assert body["contacts"] == CONTACTS  # untouched
    assert await stored_webhook(api, "TOT") == (None, None)


async def test_a_patch_of_other_fields_keeps_the_webhook_and_its_secret(api: Api) -> None:
    await api.agency("TOT", contacts=CONTACTS, webhook=WEBHOOK)
    status, body = await api.call("PATCH", "/api/v1/agencies/TOT", json={"name": "TOT Public Company"})
    assert status == 200, body
    assert body["webhook"] == {"url": WEBHOOK["url"], "secret_set": True}
    assert await stored_webhook(api, "TOT") == (WEBHOOK["url"], SECRET)


async def test_a_new_webhook_url_without_a_secret_keeps_the_stored_secret(api: Api) -> None:
    await api.agency("TOT", webhook=WEBHOOK)
    moved = "https://soc2.mof.example.go.th/hook"
    status, body = await api.call("PATCH", "/api/v1/agencies/TOT", json={"webhook": {"url": moved}})
    assert status == 200, body
    assert await stored_webhook(api, "TOT") == (moved, SECRET)
    status, body = await api.call(
        "PATCH", "/api/v1/agencies/TOT", json={"webhook": {"url": moved, "secret": "another-secret-of-20ch"}}
    )
    assert status == 200, body
    assert await stored_webhook(api, "TOT") == (moved, "another-secret-of-20ch")


async def test_a_webhook_without_any_secret_is_refused_naming_the_secret(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/v1/agencies", json={"code": "TOT", "name": "TOT", "webhook": {"url": WEBHOOK["url"]}}
    )
    assert status == 422, body
    assert body["errors"][0]["field"] == "webhook.secret"


async def test_put_replaces_contacts_and_a_webhook_left_out_is_removed(api: Api) -> None:
    await api.agency("TOT", contacts=CONTACTS, webhook=WEBHOOK)
    status, body = await api.call("PUT", "/api/v1/agencies/TOT", json={"code": "TOT", "name": "TOT", "contacts": []})
    assert status == 200, body
    assert body["contacts"] == []
    assert body["webhook"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"contacts": [{"name": "SOC", "email": "not-an-address"}]}, "contacts.0.email"),
        ({"contacts": [{"name": "SOC", "email": "soc@mof.example.go.th\r\nBcc: x@example.com"}]}, "contacts.0.email"),
        ({"contacts": [{"name": "SOC\r\nBcc: x@example.com", "email": "soc@mof.example.go.th"}]}, "contacts.0.name"),
        ({"contacts": [{"email": "soc@mof.example.go.th"}]}, "contacts.0.name"),
        ({"contacts": [{"name": f"c{i}", "email": f"c{i}@mof.example.go.th"} for i in range(21)]}, "contacts"),
        ({"webhook": {"url": "ftp://soc.mof.example.go.th/", "secret": SECRET}}, "webhook.url"),
        ({"webhook": {"url": "https://", "secret": SECRET}}, "webhook.url"),
        ({"webhook": {"url": "https://soc.example.go.th:99999/", "secret": SECRET}}, "webhook.url"),
        ({"webhook": {"url": WEBHOOK["url"], "secret": "short"}}, "webhook.secret"),
        ({"webhook": {"url": WEBHOOK["url"], "secret": SECRET, "secret_set": True}}, "webhook.secret_set"),
    ],
)
async def test_bad_contacts_and_webhooks_are_refused_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    status, body = await api.call("POST", "/api/v1/agencies", json={"code": "TOT", "name": "TOT", **fields})
    assert status == 422, body
    assert body["errors"][0]["field"] == field, body
    status, body = await api.call("PATCH", "/api/v1/agencies/MOF", json=fields)
    assert status == 422, body
    assert body["errors"][0]["field"] == field, body


async def test_only_an_admin_changes_contacts(api: Api) -> None:
    for role in ("analyst", "auditor", "agency"):
        status, _ = await api.call("PATCH", "/api/v1/agencies/MOF", role, json={"contacts": CONTACTS})
        assert status == 403
