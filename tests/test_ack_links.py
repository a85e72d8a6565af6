"""Acknowledgement links as an agency meets them: opening one records nothing, its form's button acknowledges once.

The link arrives in a real e-mail (through an SMTP server on loopback); the pages are fetched without any token.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from certmon.web import appkeys
from tests.conftest import Api
from tests.notifying import (
    ACCEPTED,
    ACK_LINK,
    ManualClock,
    create_incident,
    give_contacts,
    local,
    notify,
    smtp_server,
    timeline,
)

ACKED = ACCEPTED + timedelta(minutes=10)


@dataclass
class Notified:
    api: Api
    clock: ManualClock
    incident: dict[str, Any]
    path: str  # the link's path, /ack/<token>, as read from the mail


@pytest.fixture
async def notified(make_api: Callable[..., Any]) -> AsyncIterator[Notified]:
    """An incident of MOF notified by e-mail at ACCEPTED, and the acknowledgement link its mail carried."""
    clock = ManualClock(ACCEPTED)
    async with smtp_server() as inbox:
        api = await make_api(clock=clock, smtp_url=f"smtp://127.0.0.1:{inbox.port}")
        await give_contacts(api)
        incident = await create_incident(api, title="Defacement of <b>www</b> & mail")
        status, body = await notify(api, incident["id"], "email")
        assert status == 201, body
        found = ACK_LINK.search(inbox.bodies()[0])
        assert found is not None
        yield Notified(api, clock, incident, found.group(1))


async def recorded(api: Api, incident_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The incident's milestones and timeline events: what a link must not change (its clocks move with time)."""
    incident, events = await timeline(api, incident_id)
    return {k: v for k, v in incident.items() if k.endswith("_at")}, events


async def page(api: Api, method: str, path: str) -> tuple[int, str, Any]:
    async with api.client.request(method, path) as response:  # no Authorization: the link is the credential
        return response.status, await response.text(), response.headers


async def test_opening_the_link_shows_a_confirmation_page_and_records_nothing(notified: Notified) -> None:
    """Mail scanners follow links: GET, however often, shows the incident and the button, and writes nothing."""
    api = notified.api
    before = await recorded(api, notified.incident["id"])
    for _ in range(3):
        status, html, headers = await page(api, "GET", notified.path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert 'method="post"' in html
        assert "รับทราบ / Acknowledge" in html
        assert "Agency MOF" in html and "MOF" in html
        assert f"#{notified.incident['id']}" in html
    assert await recorded(api, notified.incident["id"]) == before
    assert before[0]["acknowledged_at"] is None


async def test_the_page_escapes_the_title_and_keeps_the_link_out_of_referrers_and_caches(notified: Notified) -> None:
    status, html, headers = await page(notified.api, "GET", notified.path)
    assert status == 200
    assert "Defacement of &lt;b&gt;www&lt;/b&gt; &amp; mail" in html
    assert "<b>www</b>" not in html
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in headers["Content-Security-Policy"]


async def test_posting_the_form_records_acknowledged_at_that_moment_with_the_agency_as_actor(
    notified: Notified,
) -> None:
    api = notified.api
    notified.clock.at = ACKED
    status, html, _ = await page(api, "POST", notified.path)
    assert status == 200
    assert "บันทึกการรับทราบของหน่วยงานแล้ว" in html and "Your acknowledgement was recorded" in html
    incident, events = await timeline(api, notified.incident["id"])
    assert incident["acknowledged_at"] == local(ACKED)
    assert incident["notified_at"] == local(ACCEPTED)
    acknowledged = events[-1]
    assert acknowledged["type"] == "acknowledged"
    assert acknowledged["at"] == local(ACKED)
    assert acknowledged["actor"] == "agency:MOF"
    assert acknowledged["detail"]["via"] == "acknowledgement link"
    assert incident["objectives"]["acknowledge"]["stopped_at"] == local(ACKED)


async def test_a_second_post_shows_the_link_used_and_changes_nothing(notified: Notified) -> None:
    api = notified.api
    notified.clock.at = ACKED
    await page(api, "POST", notified.path)
    after_first = await recorded(api, notified.incident["id"])
    notified.clock.at = ACKED + timedelta(hours=1)
    for method in ("POST", "GET"):
        status, html, _ = await page(api, method, notified.path)
        assert status == 410
        assert "ถูกใช้ไปแล้ว" in html and "was used already" in html
    assert await recorded(api, notified.incident["id"]) == after_first


async def test_an_expired_link_shows_a_clear_page_and_records_nothing(notified: Notified) -> None:
    api = notified.api
    hours = api.app[appkeys.POLICY].acknowledgement_link_hours
    notified.clock.at = ACCEPTED + timedelta(hours=hours)
    before = await recorded(api, notified.incident["id"])
    for method in ("GET", "POST"):
        status, html, _ = await page(api, method, notified.path)
        assert status == 410
        assert "หมดอายุ" in html and "expired" in html
    assert await recorded(api, notified.incident["id"]) == before


@pytest.mark.parametrize("token", ["A" * 43, "not-a-token", "x" * 200])
async def test_an_unknown_link_is_404_with_a_page_that_says_so(notified: Notified, token: str) -> None:
    for method in ("GET", "POST"):
        status, html, _ = await page(notified.api, method, f"/ack/{token}")
        assert status == 404
        assert "This link is not known" in html


async def test_a_link_posted_after_an_analyst_recorded_the_acknowledgement_changes_nothing_and_is_spent(
    notified: Notified,
) -> None:
    api = notified.api
    status, _ = await api.call(
        "POST",
        f"/api/v1/incidents/{notified.incident['id']}/events",
        "analyst",
        json={"type": "acknowledged", "at": ACKED.isoformat(), "note": "by phone"},
    )
    assert status == 201
    before = await recorded(api, notified.incident["id"])
    notified.clock.at = ACKED + timedelta(minutes=5)
    status, html, _ = await page(api, "POST", notified.path)
    assert status == 200
    assert "had already been recorded" in html
    assert await recorded(api, notified.incident["id"]) == before
    status, _, _ = await page(api, "POST", notified.path)
    assert status == 410


async def test_only_the_tokens_hash_is_stored_and_the_token_is_not_logged(
    notified: Notified, capsys: pytest.CaptureFixture[str]
) -> None:
    token = notified.path.removeprefix("/ack/")
    await page(notified.api, "GET", notified.path)
    await page(notified.api, "POST", notified.path)
    conn = await asyncpg.connect(notified.api.database_url)
    try:
        rows = await conn.fetch("SELECT * FROM ack_links")
    finally:
        await conn.close()
    [row] = rows
    assert row["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert token not in repr(dict(row))
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert "/ack/{token}" in captured.out
