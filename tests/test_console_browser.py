"""An analyst's and an agency's shift in Debian's Chromium, against the real service on a loopback port.

One browser serves the whole module; each test gets its own database, service (at the fixed instant NOW, its queue
refreshing every second) and browser context.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import Api
from tests.console import NOW, base_of, browser_sign_in, chromium, incident, name_agencies, tab
from tests.notifying import SECRET, Hook, ManualClock, webhook_app

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

AiohttpServer = Callable[..., Any]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@dataclass
class Served:
    api: Api
    clock: ManualClock
    base: str


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> Served:
    clock = ManualClock(NOW)
    api: Api = await make_api(clock=clock, console_refresh_seconds=1)
    await name_agencies(api)
    return Served(api, clock, base_of(api))


async def queue_order(page: Page) -> list[tuple[str, str, str]]:
    rows = page.locator("#queue tbody tr")
    return [
        (
            await row.get_attribute("data-incident") or "",
            await row.get_attribute("data-objective") or "",
            await row.get_attribute("data-state") or "",
        )
        for row in await rows.all()
    ]


async def figures(page: Page) -> list[str]:
    return [text.strip() for text in await page.locator(".figure").all_inner_texts()]


async def test_an_analyst_signs_in_and_the_queue_shows_soonest_due_first_and_updates_itself(
    browser: Browser, served: Served
) -> None:
    """Due order with minutes left; an incident created through the API while the page is open, and a clock that
    stops, both show without a reload."""
    api = served.api
    pending = await incident(api, "Phishing kit on the tax portal", minutes_ago=20)
    breached = await incident(api, "C2 beacon from the payroll server", minutes_ago=70)
    at_risk = await incident(api, "Defacement of www", minutes_ago=50, agency="DGA")
    async with tab(browser, served.base) as page:
        await page.goto("/")
        assert re.search(r"/login\?next=", page.url)
        await browser_sign_in(page, api.tokens["analyst"])
        order = await queue_order(page)
        assert order[:3] == [
            (str(breached["id"]), "notify", "breached"),
            (str(at_risk["id"]), "notify", "at_risk"),
            (str(pending["id"]), "notify", "pending"),
        ]
        first = page.locator("#queue tbody tr").first
        assert await first.locator("td.left").inner_text() == "-10"
        assert await first.locator(".state").inner_text() == "เกินกำหนด"
        assert "กระทรวงการคลัง" in await first.inner_text()

        arriving = await incident(api, "Ransomware note on a file server", minutes_ago=65)
        await page.locator(f'#queue tr[data-incident="{arriving["id"]}"][data-objective="notify"]').wait_for(
            timeout=30_000
        )
        assert [r[0] for r in (await queue_order(page))[:2]] == [str(breached["id"]), str(arriving["id"])]

        status, _ = await api.call(
            "POST", f"/api/v1/incidents/{pending['id']}/events", "analyst", json={"type": "notified"}
        )
        assert status == 201
        gone = page.locator(f'#queue tr[data-incident="{pending["id"]}"][data-objective="notify"]')
        await gone.wait_for(state="detached", timeout=30_000)
        assert "ใกล้ครบกำหนด 1" in await page.locator("#queue-announce").inner_text()


async def test_one_click_records_notified_and_a_correction_needs_a_reason(browser: Browser, served: Served) -> None:
    """ "แจ้งแล้ว" records notified at the service's now; a correction at a typed Bangkok time keeps the reason and
    the time it replaced; a time before detection is refused on the page, in Thai."""
    api = served.api
    target = await incident(api, "C2 beacon from the payroll server", minutes_ago=30)
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["analyst"])
        await page.goto(f"/incidents/{target['id']}")
        await page.get_by_role("button", name="แจ้งแล้ว", exact=True).click()
        await page.get_by_role("status").filter(has_text="บันทึกแล้ว").wait_for()
        assert await page.get_by_role("button", name="แจ้งแล้ว", exact=True).count() == 0
        notify = page.locator('#clocks tr[data-objective="notify"]')
        assert await notify.get_attribute("data-state") == "met"
        timeline = page.locator("#timeline tbody")
        assert "แจ้งแล้ว" in await timeline.inner_text() and "test-analyst" in await timeline.inner_text()
        assert "15 มี.ค. 2567 14:00" in await timeline.inner_text()

        await page.locator("#at-milestone").select_option("analysed")
        await page.locator("#at-time").fill("2024-03-15T13:35")
        await page.get_by_role("button", name="บันทึกตามเวลาที่ระบุ").click()
        await page.get_by_role("status").filter(has_text="บันทึกแล้ว").wait_for()

        await page.locator("#correct-milestone").select_option("notified")
        await page.locator("#correct-time").fill("2024-03-15T13:00")
        await page.locator("#correct-reason").fill("the mail went out before the button was pressed")
        await page.get_by_role("button", name="บันทึกการแก้ไข").click()
        problem = page.locator("#problem")
        await problem.wait_for()
        assert "เวลาที่ระบุเร็วกว่าเวลาที่ตรวจพบเหตุการณ์" in await problem.inner_text()
        assert await page.evaluate("document.activeElement.id") == "problem"
        assert await page.locator("#correct-reason").input_value() == "the mail went out before the button was pressed"

        await page.locator("#correct-time").fill("2024-03-15T13:40")
        await page.get_by_role("button", name="บันทึกการแก้ไข").click()
        await page.get_by_role("status").filter(has_text="บันทึกแล้ว").wait_for()
        correction = page.locator('#timeline tr[data-kind="correction"]')
        text = await correction.inner_text()
        assert "แก้ไขเวลา: แจ้งแล้ว" in text
        assert "the mail went out before the button was pressed" in text
        assert "15 มี.ค. 2567 13:40" in text and "เดิม 15 มี.ค. 2567 14:00" in text
    _, stored = await api.call("GET", f"/api/v1/incidents/{target['id']}")
    assert stored["notified_at"].startswith("2024-03-15T")
    assert stored["objectives"]["notify"]["delay_seconds"] == 600.0


async def test_excluding_from_the_queue_with_one_reason_changes_the_sla_page(browser: Browser, served: Served) -> None:
    """Two breached incidents excluded together lift this month's compliance from 33.3 % to 100.0 % (green)."""
    api = served.api
    met = await incident(api, "Met in time", minutes_ago=90, notified_at=(NOW - timedelta(minutes=60)).isoformat())
    first = await incident(api, "Scanner noise 1", minutes_ago=70)
    second = await incident(api, "Scanner noise 2", minutes_ago=80, agency="DGA")
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["analyst"])
        await page.goto("/sla")
        assert (await figures(page))[0] == "33.3 %"
        assert "แดง" in await page.locator(".status").first.inner_text()
        await page.goto("/")
        for target in (first, second):
            await page.get_by_label(re.compile(rf"^เลือก #{target['id']} \(แจ้งเตือน")).check()
        await page.get_by_label("ไม่นับรวมเหตุการณ์ที่เลือกใน SLA: เหตุผล (จำเป็น)").fill("false positive: scanner test")
        await page.get_by_role("button", name="ไม่นับรวมเหตุการณ์ที่เลือก").click()
        await page.get_by_role("status").filter(has_text="ไม่นับรวมเหตุการณ์ที่เลือกแล้ว 2 รายการ").wait_for()
        shown = {r[0] for r in await queue_order(page)}
        assert str(first["id"]) not in shown and str(second["id"]) not in shown
        await page.get_by_role("link", name="ผลการดำเนินงาน SLA").click()
        assert (await figures(page))[0] == "100.0 %"
        assert "เขียว" in await page.locator(".status").first.inner_text()
    _, excluded = await api.call("GET", f"/api/v1/incidents/{first['id']}")
    assert excluded["excluded"] and excluded["exclusion_reason"] == "false positive: scanner test"
    assert met["id"]


async def test_an_agency_sees_only_its_own_incidents_and_records_its_side(browser: Browser, served: Served) -> None:
    """MOF's token lists MOF's incidents only, records its acknowledgement with one click, and reads its SLA page."""
    api = served.api
    own = await incident(api, "MOF beacon", minutes_ago=30, notified_at=(NOW - timedelta(minutes=10)).isoformat())
    other = await incident(api, "DGA beacon", minutes_ago=30, agency="DGA")
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["agency"])
        shown = {r[0] for r in await queue_order(page)}
        assert shown == {str(own["id"])}
        assert await page.get_by_text("DGA beacon").count() == 0
        await page.goto(f"/incidents/{other['id']}")
        assert "ไม่พบเหตุการณ์นี้" in await page.locator("#problem").inner_text()
        await page.goto(f"/incidents/{own['id']}")
        assert await page.get_by_role("button", name="แจ้งแล้ว", exact=True).count() == 0
        await page.get_by_role("button", name="รับทราบแล้ว", exact=True).click()
        await page.get_by_role("status").filter(has_text="บันทึกแล้ว").wait_for()
        ack = page.locator('#clocks tr[data-objective="acknowledge"]')
        assert await ack.get_attribute("data-state") == "met"
        await page.get_by_role("link", name="หน่วยงานของฉัน").click()
        await page.wait_for_url(re.compile(r"/agencies/MOF$"))
        assert "กระทรวงการคลัง" in await page.locator("main").inner_text()


async def test_a_form_posted_from_another_site_or_without_its_token_is_refused(
    browser: Browser, served: Served
) -> None:
    """A cross-site form (its SameSite=Strict cookie stays home) and a same-site POST without the token are 403."""
    api = served.api
    target = await incident(api, "Beacon", minutes_ago=30)
    action = f"{served.base}/incidents/{target['id']}/events"
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["analyst"])
        status = await page.evaluate(
            """url => fetch(url, {method: "POST", body: new URLSearchParams({action: "now", milestone: "notified"})})
                .then(r => r.status)""",
            action,
        )
        assert status == 403
        attacker = await page.context.new_page()
        await attacker.set_content(
            f'<form method="post" action="{action}"><input name="action" value="now">'
            '<input name="milestone" value="notified"><button>win a prize</button></form>'
        )
        async with attacker.expect_navigation() as navigation:
            await attacker.get_by_role("button").click()
        response = await navigation.value
        assert response is not None and response.status == 403
        assert "ไม่มีสิทธิ์ทำรายการนี้" in await attacker.locator("main").inner_text()
    _, stored = await api.call("GET", f"/api/v1/incidents/{target['id']}")
    assert stored["notified_at"] is None


async def test_signing_out_and_an_idle_session_lead_back_to_the_sign_in_page(browser: Browser, served: Served) -> None:
    """Sign-out ends the session; 30 idle minutes later the queue stops refreshing and says so."""
    api = served.api
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["analyst"])
        await page.get_by_role("button", name="ออกจากระบบ").click()
        await page.get_by_text("ออกจากระบบเรียบร้อยแล้ว").wait_for()
        await page.goto("/")
        assert "/login?" in page.url
        await browser_sign_in(page, api.tokens["analyst"])
        served.clock.at = NOW + timedelta(minutes=31)
        await page.locator("#queue-ended").wait_for(state="visible", timeout=15_000)
        await page.reload()
        await page.get_by_text("เซสชันสิ้นสุดแล้ว โปรดเข้าสู่ระบบอีกครั้ง").wait_for()


async def test_the_language_switch_is_remembered_from_page_to_page(browser: Browser, served: Served) -> None:
    """English once chosen stays, signed in or not, until Thai is chosen again."""
    api = served.api
    async with tab(browser, served.base) as page:
        await page.goto("/login")
        await page.get_by_role("link", name="English").click()
        await page.get_by_label("Token").fill(api.tokens["analyst"])
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Queue: open SLA clocks").wait_for()
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_role("link", name="SLA").click()
        await page.get_by_role("heading", name="SLA compliance").wait_for()
        await page.get_by_role("link", name="ภาษาไทย").click()
        await page.get_by_role("heading", name="ผลการดำเนินงานตาม SLA").wait_for()
        await page.get_by_role("link", name="คิวงาน").click()
        assert await page.get_attribute("html", "lang") == "th"


async def test_a_new_incident_from_the_form_and_its_agency_notified_by_webhook(
    browser: Browser, served: Served, aiohttp_server: AiohttpServer
) -> None:
    """The form records an incident of the agency found by typing; "notify" sends the signed webhook, whose
    acceptance is the notified milestone."""
    api = served.api
    hook = Hook(SECRET)
    server = await aiohttp_server(webhook_app(hook), host="127.0.0.1")
    hook.url = str(server.make_url("/hook"))
    status, body = await api.call(
        "PATCH", "/api/v1/agencies/MOF", json={"webhook": {"url": hook.url, "secret": SECRET}}
    )
    assert status == 200, body
    async with tab(browser, served.base) as page:
        await browser_sign_in(page, api.tokens["analyst"])
        await page.get_by_role("link", name="บันทึกเหตุการณ์ใหม่").click()
        await page.get_by_label("หน่วยงาน (พิมพ์รหัสหรือชื่อเพื่อค้นหา)").fill("MOF")
        await page.get_by_label("ชื่อเรื่อง").fill("Credential phishing against the treasury")
        await page.get_by_label("ความรุนแรง").select_option("critical")
        await page.get_by_label("ประเภท (RSIT)").select_option("fraud/phishing")
        await page.get_by_label("ระดับการเปิดเผย (TLP)").select_option("TLP:AMBER")
        await page.get_by_label("เวลาที่ตรวจพบ (เวลากรุงเทพฯ)").fill("2024-03-15T13:45")
        await page.get_by_role("button", name="บันทึกเหตุการณ์").click()
        await page.get_by_role("status").filter(has_text="บันทึกเหตุการณ์ใหม่แล้ว").wait_for()
        incident_id = page.url.split("/incidents/")[1].split("?")[0]
        await page.get_by_label("เว็บฮุก").check()
        await page.get_by_role("button", name="ส่งการแจ้งเตือน").click()
        await page.get_by_role("status").filter(has_text="ส่งการแจ้งเตือนแล้ว").wait_for()
        assert await page.locator('#clocks tr[data-objective="notify"]').get_attribute("data-state") == "met"
    assert len(hook.requests) == 1
    _, stored = await api.call("GET", f"/api/v1/incidents/{incident_id}")
    assert (stored["agency"], stored["severity"], stored["category"], stored["tlp"]) == (
        "MOF", "critical", "fraud/phishing", "TLP:AMBER"
    )  # fmt: skip
    assert stored["detected_at"].startswith("2024-03-15T")
    assert stored["source"] == "console" and stored["notified_at"] is not None
