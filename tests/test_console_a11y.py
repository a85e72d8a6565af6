"""Every console page in Chromium: no serious or critical axe-core violation in Thai or English, and a shift's
essentials done with the keyboard alone. The screenshots in docs/screenshots/ are made here
(CERTMON_UPDATE_SCREENSHOTS=1 writes them there; otherwise they go to the test's temporary directory).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import Api
from tests.console import (
    NOW,
    axe_problems,
    base_of,
    browser_sign_in,
    chromium,
    incident,
    name_agencies,
    screenshot,
    tab,
)
from tests.notifying import ManualClock

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

MORE_AGENCIES = (
    ("PEA", "Provincial Electricity Authority", "การไฟฟ้าส่วนภูมิภาค", "energy-utilities"),
    ("MOPH", "Ministry of Public Health", "กระทรวงสาธารณสุข", "public-health"),
    ("BOT", "Bank of Thailand", "ธนาคารแห่งประเทศไทย", "banking-finance"),
)
CODES = ("MOF", "DGA", "PEA", "MOPH", "BOT")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def a_month_of_work(api: Api) -> dict[str, Any]:
    """Agencies of several sectors, five months of the fiscal year decided, today's open clocks in every state, and
    survey answers: what a CERT's console shows on an ordinary afternoon."""
    await name_agencies(api)
    for code, name, name_th, sector in MORE_AGENCIES:
        await api.agency(code, sector=sector, name=name, name_th=name_th)
    number = 0
    for month_start in ("2023-10-10", "2023-11-10", "2023-12-11", "2024-01-10", "2024-02-12", "2024-03-11"):
        for i in range(10):
            number += 1
            detected = f"{month_start}T{9 + i % 8:02d}:{(7 * i) % 60:02d}:00+07:00"
            late = (number * 7) % 23 == 0 or (i == 3 and month_start.startswith("2024-02"))
            minutes = 75 + i if late else 12 + 4 * i
            status, body = await api.call(
                "POST",
                "/api/v1/incidents",
                "analyst",
                json={
                    "agency": CODES[i % len(CODES)],
                    "title": f"Phishing report {number}",
                    "severity": ("critical", "high", "medium", "low")[i % 4],
                    "category": "fraud/phishing",
                    "detected_at": detected,
                    "notified_at": _plus(detected, minutes),
                    "acknowledged_at": _plus(detected, minutes + 25),
                    "contained_at": _plus(detected, minutes + 180),
                    "resolved_at": _plus(detected, minutes + 1440),
                    "external_id": f"TC-{number:04d}",
                    "source": "thaicert",
                },
            )
            assert status == 201, body
    open_ones = {
        "breached": await incident(api, "C2 beacon from the payroll server", minutes_ago=70, external_id="SOC-1201"),
        "at_risk": await incident(api, "Defacement of www", minutes_ago=50, agency="DGA", external_id="SOC-1202"),
        "pending": await incident(api, "Ransomware note on a file server", minutes_ago=20, agency="PEA"),
        "paused": await incident(api, "Data leak on a paste site", minutes_ago=40, agency="MOPH", tlp="TLP:AMBER"),
    }
    status, body = await api.call(
        "POST",
        f"/api/v1/incidents/{open_ones['paused']['id']}/events",
        "analyst",
        json={"type": "paused", "reason": "waiting for the hospital's web server logs"},
    )
    assert status == 201, body
    for i in range(18):
        status, body = await api.call(
            "POST",
            "/api/v1/surveys/responses",
            json={
                "service": "security-services" if i % 3 else "cii-services",
                "agency": CODES[i % len(CODES)],
                "submitted_at": (NOW - timedelta(days=3 + i * 5)).isoformat(),
                "answers": {"overall": 4 + (i % 2)}
                if i % 3
                else {"guidance": 4, "response": 5, "exercises": 4, "expertise": 5, "overall": 4},
            },
        )
        assert status == 201, body
    return open_ones


def _plus(iso: str, minutes: int) -> str:
    return (datetime.fromisoformat(iso) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
async def busy(make_api: Callable[..., Any]) -> tuple[Api, dict[str, Any]]:
    api: Api = await make_api(clock=ManualClock(NOW), console_refresh_seconds=5)
    return api, await a_month_of_work(api)


async def check(page: Page, where: str, found: dict[str, list[dict[str, Any]]]) -> None:
    problems = await axe_problems(page)
    if problems:
        found[where] = problems


async def test_every_page_has_no_serious_accessibility_violation_in_thai_or_english(
    browser: Browser, busy: tuple[Api, dict[str, Any]], tmp_path: Path
) -> None:
    """Sign-in, queue, incident (also showing a refusal), new incident, SLA, agency and error pages, both languages."""
    api, open_ones = busy
    target = open_ones["at_risk"]["id"]
    found: dict[str, list[dict[str, Any]]] = {}
    async with tab(browser, base_of(api)) as page:
        for lang in ("th", "en"):
            await page.goto(f"/login?lang={lang}")
            await check(page, f"login {lang}", found)
            if lang == "th":
                await screenshot(page, "login", tmp_path)
                await browser_sign_in(page, api.tokens["analyst"])
            pages = {
                "queue": "/",
                "incident": f"/incidents/{target}",
                "new-incident": "/incidents/new",
                "sla": "/sla",
                "agency": "/agencies/MOF",
                "error": "/incidents/999999",
            }
            for name, path in pages.items():
                await page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}")
                await check(page, f"{name} {lang}", found)
                if lang == "th" and name != "error":
                    await screenshot(page, name, tmp_path)
            await page.goto(f"/incidents/{target}?lang={lang}")
            await page.locator("#at-milestone").select_option("notified")
            await page.locator("#at-time").fill("2024-03-15T12:00")  # before its detection at 13:10
            await page.locator("#at-note").press("Enter")
            await page.locator("#problem").wait_for()
            await check(page, f"incident refusal {lang}", found)
            if lang == "en":
                await page.goto("/?lang=en")
                await screenshot(page, "queue-en", tmp_path)
    assert not found, found


async def test_the_keyboard_alone_signs_in_finds_an_incident_and_records_a_milestone(
    browser: Browser, busy: tuple[Api, dict[str, Any]]
) -> None:
    """Tab to the token and Enter; "/" jumps to the search; Tab reaches the incident and its "แจ้งแล้ว" button,
    each showing where the focus is."""
    api, open_ones = busy
    target = open_ones["pending"]
    async with tab(browser, base_of(api)) as page:
        await page.goto("/login")
        await tab_to(page, "#token")
        await page.keyboard.type(api.tokens["analyst"])
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/$"))
        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.id") == "q"
        await page.keyboard.type("Ransomware")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"q=Ransomware"))
        await tab_to(page, f'a[href="/incidents/{target["id"]}"]')
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(rf"/incidents/{target['id']}$"))
        await tab_to(page, 'button[value="notified"]')
        await page.keyboard.press("Enter")
        await page.get_by_role("status").filter(has_text="บันทึกแล้ว").wait_for()
    _, stored = await api.call("GET", f"/api/v1/incidents/{target['id']}")
    assert stored["notified_at"] is not None


async def tab_to(page: Page, selector: str, presses: int = 120) -> None:
    """Press Tab until the element has the focus, and check that the focus is drawn."""
    for _ in range(presses):
        if await page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} has the focus but shows no outline"
            return
        await page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached {selector}")
