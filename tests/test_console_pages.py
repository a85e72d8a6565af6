"""The console without a browser: sign-in and its cookie, form tokens, session ends, agency scoping, languages."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from yarl import URL

from certmon.core.sessions import LANG_COOKIE, SESSION_COOKIE
from certmon.core.settings import Settings, SettingsError
from certmon.web import appkeys
from tests.conftest import Api
from tests.console import NOW, incident, name_agencies, visitor
from tests.notifying import ManualClock

ROW = re.compile(r'<tr class="row-(\w+)" data-incident="(\d+)" data-objective="(\w+)"')


@pytest.fixture
async def console(make_api: Callable[..., Any]) -> Api:
    api: Api = await make_api(clock=ManualClock(NOW))
    await name_agencies(api)
    return api


def cookie_header(response: Any, name: str) -> str:
    headers = [h for h in response.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]
    assert len(headers) == 1, headers
    return str(headers[0])


async def test_a_page_without_a_session_leads_to_the_sign_in_page(console: Api) -> None:
    """/ and an incident page send a visitor without a session to /login, which asks for a token in Thai first."""
    async with visitor(console) as v:
        for path in ("/", "/incidents/1", "/sla"):
            status, _, response = await v.get(path)
            assert status == 303
            assert response.headers["Location"].startswith("/login?next=")
        status, html, response = await v.get("/login")
    assert status == 200
    assert '<html lang="th">' in html
    assert '<label for="token">โทเค็น</label>' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in html and " style=" not in html  # nothing inline for the policy to allow


async def test_signing_in_sets_an_httponly_strict_cookie_and_stores_only_its_hash(console: Api) -> None:
    """The session cookie is HttpOnly and SameSite=Strict, not Secure over plain HTTP; the table keeps its SHA-256."""
    async with visitor(console) as v:
        response = await v.sign_in(console.tokens["analyst"])
        header = cookie_header(response, SESSION_COOKIE)
        session_id = header.split(";")[0].split("=", 1)[1]
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes
    async with console.app[appkeys.POOL].acquire() as conn:
        stored = await conn.fetch("SELECT * FROM console_sessions")
    assert [r["id_hash"] for r in stored] == [hashlib.sha256(session_id.encode()).digest()]
    assert all(session_id.encode() not in bytes(str(dict(r)), "utf-8") for r in stored)


@pytest.mark.parametrize(("trust_proxy", "secure"), [(True, True), (False, False)])
async def test_the_cookie_is_secure_behind_a_trusted_proxy_that_says_https(
    make_api: Callable[..., Any], trust_proxy: bool, secure: bool
) -> None:
    """X-Forwarded-Proto: https makes the cookie Secure only when the proxy is trusted (off by default)."""
    api = await make_api(clock=ManualClock(NOW), trust_proxy=trust_proxy)
    async with visitor(api, headers={"X-Forwarded-Proto": "https"}) as v:
        _, _, response = await v.get("/login")
    assert ("secure" in cookie_header(response, "certmon_signin").lower().split("; ")) is secure


async def test_a_post_without_its_form_token_is_refused_and_records_nothing(console: Api) -> None:
    """Without the session's form token (missing, wrong, or a cross-site POST with no cookie) a form is 403."""
    target = await incident(console, "Beacon", minutes_ago=20)
    path = f"/incidents/{target['id']}/events"
    async with visitor(console, "analyst") as v:
        missing = await v.post(path, {"action": "now", "milestone": "notified"}, token=False)
        wrong = await v.post(path, [("action", "now"), ("milestone", "notified"), ("csrf", "x" * 43)], token=False)
    async with visitor(console) as stranger:
        cross_site = await stranger.post(path, {"action": "now", "milestone": "notified"}, token=False)
        sign_in = await stranger.post("/login", {"token": console.tokens["analyst"]}, token=False)
    for status, html, _ in (missing, wrong, cross_site, sign_in):
        assert status == 403
        assert "ไม่มีสิทธิ์ทำรายการนี้" in html and "Traceback" not in html
    status, body = await console.call("GET", f"/api/v1/incidents/{target['id']}")
    assert body["notified_at"] is None


async def test_the_api_stays_bearer_only_and_ack_pages_stay_public(console: Api) -> None:
    """A console session opens nothing under /api/v1, and acknowledgement pages need no session."""
    async with visitor(console, "admin") as v:
        status, _, _ = await v.get("/api/v1/incidents")
        assert status == 401
        status, html, _ = await v.get("/ack/" + "A" * 43)
    assert status == 404
    assert "ลิงก์นี้ใช้ไม่ได้" in html


async def test_the_queue_lists_open_clocks_soonest_due_first(console: Api) -> None:
    """Breached (due 10 min ago), at risk (10 min left), pending (40 min left), then the business-hours clocks."""
    pending = await incident(console, "Pending one", minutes_ago=20)
    breached = await incident(console, "Breached one", minutes_ago=70)
    at_risk = await incident(console, "At-risk one", minutes_ago=50, agency="DGA")
    async with visitor(console, "analyst") as v:
        status, html, _ = await v.get("/queue/rows")
    assert status == 200
    rows = ROW.findall(html)
    assert rows[:3] == [
        ("breached", str(breached["id"]), "notify"),
        ("at_risk", str(at_risk["id"]), "notify"),
        ("pending", str(pending["id"]), "notify"),
    ]
    assert {r[2] for r in rows[3:]} == {"coordinate"}
    assert re.search(r'data-minutes="-10"', html) and re.search(r'data-minutes="10"', html)
    async with visitor(console, "analyst") as v:
        _, only, _ = await v.get("/queue/rows?state=breached&state=at_risk&q=ONE&sector=it-telecom")
    assert [r[1] for r in ROW.findall(only)] == [str(at_risk["id"])]


async def test_an_agency_session_sees_its_own_agency_only(console: Api) -> None:
    """MOF's session lists MOF's clocks, is told DGA's incident does not exist, and reads its own SLA page."""
    own = await incident(console, "MOF beacon", minutes_ago=30)
    other = await incident(console, "DGA beacon", minutes_ago=30, agency="DGA")
    async with visitor(console, "agency") as v:
        _, rows, _ = await v.get("/queue/rows?agency=DGA")
        status_queue, _, _ = await v.get("/?agency=DGA")
        _, queue, _ = await v.get("/")
        status_other, page, _ = await v.get(f"/incidents/{other['id']}")
        status_own, own_page, _ = await v.get(f"/incidents/{own['id']}")
        status_sla, _, sla = await v.get("/sla")
        status_dga, _, _ = await v.get("/agencies/DGA")
        status_mof, mof, _ = await v.get("/agencies/MOF")
    assert status_queue == 403  # an agency may not ask for another's queue
    assert {r[1] for r in ROW.findall(queue)} == {str(own["id"])}
    assert "DGA beacon" not in queue and "DGA beacon" not in rows
    assert status_other == 404 and "ไม่พบ" in page
    assert status_own == 200
    assert ">รับทราบแล้ว</button>" in own_page and ">แจ้งแล้ว</button>" not in own_page  # its side only
    assert status_sla == 303 and sla.headers["Location"] == "/agencies/MOF"
    assert status_dga == 403
    assert status_mof == 200 and "กระทรวงการคลัง" in mof


async def test_a_session_ends_when_idle_when_too_old_and_when_its_token_is_revoked(
    make_api: Callable[..., Any],
) -> None:
    """30 minutes unused, 12 hours after sign-in however busy, or a revoked token: the next page is the sign-in."""
    clock = ManualClock(NOW)
    api = await make_api(clock=clock)

    async def signed_in(v: Any) -> bool:
        status, _, response = await v.get("/")
        if status == 303:
            assert response.headers["Location"] == "/login?next=%2F&expired=1"
        return bool(status == 200)

    async with visitor(api, "analyst") as v:
        clock.at = NOW + timedelta(minutes=29)
        assert await signed_in(v)
        clock.at += timedelta(minutes=20)
        assert (await v.get("/queue/rows"))[0] == 200  # the page's own refresh does not count as use
        clock.at += timedelta(minutes=11)
        assert not await signed_in(v)
        assert (await v.get("/queue/rows"))[0] == 401
    clock.at = NOW
    async with visitor(api, "analyst") as v:
        for minutes in range(25, 12 * 60, 25):
            clock.at = NOW + timedelta(minutes=minutes)
            assert await signed_in(v)
        clock.at = NOW + timedelta(hours=12)
        assert not await signed_in(v)
    clock.at = NOW
    async with visitor(api, "auditor") as v:
        async with api.app[appkeys.POOL].acquire() as conn:
            await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'test-auditor'")
        assert not await signed_in(v)


async def test_signing_out_ends_the_session_for_good(console: Api) -> None:
    """After sign-out the old cookie opens nothing, even if a copy of it is sent again."""
    async with visitor(console, "analyst") as v:
        cookie = v.session.cookie_jar.filter_cookies(URL(v.base))[SESSION_COOKIE].value
        status, _, response = await v.post("/logout", {})
        assert status == 303 and response.headers["Location"] == "/login?bye=1"
        _, html, _ = await v.get("/login?bye=1")
        assert "ออกจากระบบเรียบร้อยแล้ว" in html
    async with visitor(console) as copy:
        copy.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
        status, _, _ = await copy.get("/")
    assert status == 303
    async with console.app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_the_language_is_thai_by_default_and_a_switch_is_remembered(console: Api) -> None:
    """?lang=en writes English and sets a cookie; later pages stay English until ?lang=th."""
    async with visitor(console) as v:
        _, html, response = await v.get("/login?lang=en")
        assert '<html lang="en">' in html and '<label for="token">Token</label>' in html
        assert "samesite=strict" in cookie_header(response, LANG_COOKIE).lower()
        _, again, _ = await v.get("/login")
        assert '<label for="token">Token</label>' in again
        _, thai, _ = await v.get("/login?lang=th")
        assert '<label for="token">โทเค็น</label>' in thai


async def test_times_are_bangkok_time_with_buddhist_era_years_on_thai_pages(console: Api) -> None:
    """Detected 06:30 UTC is 13:30 in Bangkok: 15 มี.ค. 2567 on the Thai page, 15 Mar 2024 on the English one."""
    created = await incident(console, "Beacon", minutes_ago=30)
    async with visitor(console, "analyst") as v:
        _, thai, _ = await v.get(f"/incidents/{created['id']}")
        _, english, _ = await v.get(f"/incidents/{created['id']}?lang=en")
    assert "15 มี.ค. 2567 13:30" in thai and "กระทรวงการคลัง" in thai
    assert "15 Mar 2024 13:30" in english and "Ministry of Finance" in english
    assert "UTC+07:00" in thai


async def test_a_refused_form_is_explained_on_the_page_in_the_readers_language(console: Api) -> None:
    """Recording notified twice is a 409 written on the incident page, in Thai or English, with no stack trace."""
    created = await incident(console, "Beacon", minutes_ago=30)
    path = f"/incidents/{created['id']}"
    async with visitor(console, "analyst") as v:
        await v.get(path)
        first, _, _ = await v.post(path + "/events", {"action": "now", "milestone": "notified"})
        second, thai, _ = await v.post(path + "/events", {"action": "now", "milestone": "notified"})
        await v.get(path + "?lang=en")
        no_reason, english, _ = await v.post(
            path + "/events", {"action": "correction", "milestone": "notified", "at": "2024-03-15T13:50", "reason": " "}
        )
    assert first == 303
    assert second == 409
    assert "ขัดกับข้อมูลที่บันทึกไว้" in thai and "บันทึกไว้แล้ว" in thai and "Traceback" not in thai
    assert no_reason == 422
    assert "Not valid" in english and "This field is required." in english


async def test_console_settings_are_read_from_the_environment() -> None:
    """Idle and absolute limits, proxy trust and the refresh interval; a refresh beyond 15 s is refused by name."""
    settings = Settings.from_env(
        {
            "CERTMON_SESSION_IDLE_MINUTES": "10",
            "CERTMON_SESSION_MAX_HOURS": "8",
            "CERTMON_TRUST_PROXY": "true",
            "CERTMON_CONSOLE_REFRESH_SECONDS": "5",
        }
    )
    assert (settings.session_idle_minutes, settings.session_max_hours) == (10, 8)
    assert settings.trust_proxy and settings.console_refresh_seconds == 5
    defaults = Settings.from_env({})
    assert (defaults.session_idle_minutes, defaults.session_max_hours, defaults.trust_proxy) == (30, 12, False)
    with pytest.raises(SettingsError, match="CERTMON_CONSOLE_REFRESH_SECONDS"):
        Settings.from_env({"CERTMON_CONSOLE_REFRESH_SECONDS": "30"})


async def test_a_form_sent_after_the_session_ended_records_nothing_and_leads_back_through_sign_in(
    make_api: Callable[..., Any],
) -> None:
    """An idle session's form is not carried out; the sign-in page then returns to the incident, not to the form."""
    clock = ManualClock(NOW)
    api = await make_api(clock=clock)
    created = await incident(api, "Beacon", minutes_ago=20)
    async with visitor(api, "analyst") as v:
        await v.get(f"/incidents/{created['id']}")
        clock.at = NOW + timedelta(minutes=45)
        status, _, response = await v.post(
            f"/incidents/{created['id']}/events", {"action": "now", "milestone": "notified"}
        )
    assert status == 303
    assert response.headers["Location"] == f"/login?next=%2Fincidents%2F{created['id']}&expired=1"
    _, stored = await api.call("GET", f"/api/v1/incidents/{created['id']}")
    assert stored["notified_at"] is None
