"""Idempotency-Key on timeline events and notifications, against the running service and real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.jobs.forget import forget_idempotency_keys, install_forget
from tests.conftest import Api
from tests.notifying import DETECTED, SECRET, STARTED, Hook, ManualClock, create_incident, local, webhook_app

MakeApi = Callable[..., Any]
AiohttpServer = Callable[..., Any]
KEY = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'  # an sf-string, as the draft writes the header


async def post(api: Api, path: str, body: dict[str, Any], role: str = "analyst", key: str | None = KEY) -> Any:
    headers = {**api.headers(role), **({} if key is None else {"Idempotency-Key": key})}
    async with api.client.post(path, json=body, headers=headers) as response:
        return response.status, await response.read(), response.headers


async def stored_keys(api: Api) -> int:
    conn = await asyncpg.connect(api.database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM idempotency_keys")
        return count
    finally:
        await conn.close()


async def events(api: Api, incident_id: int) -> list[str]:
    status, incident = await api.call("GET", f"/api/v1/incidents/{incident_id}", "auditor")
    assert status == 200
    return [e["type"] for e in incident["timeline"] if e["id"] is not None]


async def test_a_retried_milestone_gets_the_first_answer_again_instead_of_a_conflict(make_api: MakeApi) -> None:
    """The same key and body replay the first 201 byte for byte; without the key the retry is the old 409."""
    clock = ManualClock(STARTED)
    api = await make_api(clock=clock)
    incident = await create_incident(api)
    path = f"/api/v1/incidents/{incident['id']}/events"
    body = {"type": "notified", "at": local(DETECTED + timedelta(minutes=40)), "note": "phoned the CISO"}
    first = await post(api, path, body)
    assert first[0] == 201, first[1]
    clock.at = STARTED + timedelta(minutes=5)  # the answer replayed is the one given then, not one made now
    again = await post(api, path, {"note": "phoned the CISO", **body})  # the same body in another order
    assert (again[0], again[1]) == (first[0], first[1])
    assert again[2]["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first[2]
    assert await events(api, incident["id"]) == ["notified"]
    status, problem, _ = await post(api, path, body, key=None)
    assert status == 409, problem


async def test_the_same_key_with_another_body_or_incident_is_refused_naming_the_header(make_api: MakeApi) -> None:
    api = await make_api(clock=ManualClock(STARTED))
    incident = await create_incident(api)
    other = await create_incident(api, title="another")
    path = f"/api/v1/incidents/{incident['id']}/events"
    assert (await post(api, path, {"type": "comment", "note": "first"}))[0] == 201
    elsewhere = f"/api/v1/incidents/{other['id']}/events"
    for target, body in (
        (path, {"type": "comment", "note": "second"}),
        (elsewhere, {"type": "comment", "note": "first"}),
    ):
        status, raw, headers = await post(api, target, body)
        assert status == 422, raw
        assert headers["Content-Type"].startswith("application/problem+json")
        assert b"Idempotency-Key" in raw and b"already used for a different request" in raw
    assert await events(api, incident["id"]) == ["comment"]
    assert await events(api, other["id"]) == []


async def test_different_callers_use_the_same_key_independently(make_api: MakeApi) -> None:
    """A key is the caller's: the agency's token and an analyst's may both send it, each for its own request."""
    api = await make_api(clock=ManualClock(STARTED))
    incident = await create_incident(api)
    path = f"/api/v1/incidents/{incident['id']}/events"
    assert (await post(api, path, {"type": "notified"}, role="analyst"))[0] == 201
    assert (await post(api, path, {"type": "acknowledged"}, role="agency"))[0] == 201
    assert (await post(api, path, {"type": "comment", "note": "x"}, role="admin"))[0] == 201
    assert await events(api, incident["id"]) == ["notified", "acknowledged", "comment"]
    assert await stored_keys(api) == 3


async def test_a_refused_request_keeps_no_key_and_a_malformed_key_is_refused(make_api: MakeApi) -> None:
    """The key is written in the transaction of the event: an event refused leaves no key to replay."""
    api = await make_api(clock=ManualClock(STARTED))
    incident = await create_incident(api)
    path = f"/api/v1/incidents/{incident['id']}/events"
    status, _, _ = await post(api, path, {"type": "resumed"})
    assert status == 409  # not paused
    assert await stored_keys(api) == 0
    assert (await post(api, path, {"type": "paused", "reason": "waiting for logs"}))[0] == 201
    for bad in ("", "\u0e01" * 3, "x" * 256):
        status, raw, _ = await post(api, path, {"type": "comment", "note": "x"}, key=bad)
        assert status == 422 and b"Idempotency-Key" in raw, (bad, raw)


async def test_keys_expire_after_the_retention_and_the_nightly_job_forgets_them(make_api: MakeApi) -> None:
    clock = ManualClock(STARTED)
    api = await make_api(clock=clock, idempotency_key_hours=24)
    incident = await create_incident(api)
    path = f"/api/v1/incidents/{incident['id']}/events"
    assert (await post(api, path, {"type": "comment", "note": "day one"}))[0] == 201
    clock.at = STARTED + timedelta(hours=23, minutes=59)
    assert (await post(api, path, {"type": "comment", "note": "day two"}))[0] == 422  # still taken
    assert await forget_idempotency_keys(api.runtime(clock.at), clock.at) == 0
    clock.at = STARTED + timedelta(hours=24, minutes=1)
    status, raw, headers = await post(api, path, {"type": "comment", "note": "day two"})
    assert status == 201 and "Idempotent-Replayed" not in headers, raw  # the old answer is forgotten
    assert await events(api, incident["id"]) == ["comment", "comment"]
    later = STARTED + timedelta(hours=48, minutes=2)
    assert await forget_idempotency_keys(api.runtime(later), later) == 1
    assert await stored_keys(api) == 0


async def test_the_nightly_forget_job_is_installed_without_remember_days(api: Api) -> None:
    scheduler = AsyncIOScheduler()
    install_forget(api.runtime(STARTED), scheduler)
    job = scheduler.get_job("idempotency-forget")
    assert job is not None and str(job.trigger) == "cron[hour='3', minute='30']"


async def webhook(aiohttp_server: AiohttpServer, hook: Hook) -> Hook:
    server: TestServer = await aiohttp_server(webhook_app(hook), host="127.0.0.1")
    hook.url = str(server.make_url("/hook"))
    return hook


async def test_a_retried_resend_replays_the_notification_instead_of_sending_it_twice(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    hook = await webhook(aiohttp_server, Hook(SECRET))
    api = await make_api(clock=ManualClock(STARTED))
    await api.agency("DOH", webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api, agency="DOH")
    path = f"/api/v1/incidents/{incident['id']}/notifications"
    first = await post(api, path, {"channel": "webhook", "resend": True})
    assert first[0] == 201, first[1]
    again = await post(api, path, {"channel": "webhook", "resend": True})
    assert (again[0], again[1]) == (first[0], first[1])
    assert len(hook.requests) == 1
    other = await post(api, path, {"channel": "webhook", "resend": True}, key='"another"')
    assert other[0] == 201 and len(hook.requests) == 2


async def test_a_duplicate_sent_while_the_first_is_in_flight_is_told_to_retry_later(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    hook = await webhook(aiohttp_server, Hook(SECRET, hold=asyncio.Event()))
    api = await make_api(clock=ManualClock(STARTED), retry_after_seconds=7)
    await api.agency("DOH", webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api, agency="DOH")
    path = f"/api/v1/incidents/{incident['id']}/notifications"
    first = asyncio.create_task(post(api, path, {"channel": "webhook"}))
    await asyncio.wait_for(hook.arrived.wait(), 10)
    status, raw, headers = await post(api, path, {"channel": "webhook"})
    assert status == 409 and headers["Retry-After"] == "7", raw
    assert b"Idempotency-Key" in raw
    assert hook.hold is not None
    hook.hold.set()
    assert (await first)[0] == 201
    status, _, headers = await post(api, path, {"channel": "webhook"})
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    assert len(hook.requests) == 1


async def test_the_openapi_document_declares_the_header_on_event_and_notification_posts(api: Api) -> None:
    status, spec = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    for path in ("/api/v1/incidents", "/api/v1/incidents/{id}/events", "/api/v1/incidents/{id}/notifications"):
        op = spec["paths"][path]["post"]
        [header] = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header" and not header["required"]
        assert "Idempotency-Key" in op["responses"]["409"]["description"]


async def test_an_incident_without_external_id_is_recorded_once_when_retried_under_a_key(api: Api) -> None:
    """Without external_id a retry would record a second incident; under the same key it replays the first."""
    body = {"agency": "MOF", "title": "Defacement", "severity": "high", "category": "intrusions/system-compromise",
            "detected_at": local(DETECTED)}  # fmt: skip
    first = await post(api, "/api/v1/incidents", body)
    assert first[0] == 201, first[1]
    again = await post(api, "/api/v1/incidents", body)
    assert (again[0], again[1], again[2]["Idempotent-Replayed"]) == (201, first[1], "true")
    assert (await post(api, "/api/v1/incidents", body, key=None))[0] == 201  # no key: recorded again
    status, page = await api.call("GET", "/api/v1/incidents", "auditor")
    assert status == 200 and len(page["items"]) == 2
