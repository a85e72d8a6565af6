"""What the console tests share: a fixed instant, incidents around it, a cookie-keeping client that signs in as a
browser does, and Debian's Chromium driven by Playwright with the axe-core accessibility engine.

The console's times depend on the service's clock only: NOW is 14:00 in Bangkok on Friday 15 March 2024 (FY2567), a
moment long past, so that no check of "not in the future" depends on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.conftest import Api
from tests.external import require_module, require_program

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

NOW = datetime(2024, 3, 15, 7, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
UPDATE_SCREENSHOTS = os.environ.get("CERTMON_UPDATE_SCREENSHOTS") == "1"
VIEWPORT = {"width": 1280, "height": 800}


async def name_agencies(api: Api) -> None:
    """The conftest's agencies MOF and DGA, with their Thai names and sectors."""
    for code, name, name_th, sector in (
        ("MOF", "Ministry of Finance", "กระทรวงการคลัง", "banking-finance"),
        ("DGA", "Digital Government Development Agency", "สำนักงานพัฒนารัฐบาลดิจิทัล", "it-telecom"),
    ):
        status, body = await api.call(
            "PATCH", f"/api/v1/agencies/{code}", json={"name": name, "name_th": name_th, "sector": sector}
        )
        assert status == 200, body


async def incident(api: Api, title: str, minutes_ago: float, agency: str = "MOF", **fields: Any) -> dict[str, Any]:
    """A high-severity incident detected so many minutes before NOW, recorded through the API."""
    body = {
        "agency": agency,
        "title": title,
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    }
    status, created = await api.call("POST", "/api/v1/incidents", "analyst", json=body)
    assert status == 201, created
    return dict(created)


class Visitor:
    """A client that keeps cookies, follows no redirect, and fills forms with their token, as a browser would."""

    def __init__(self, api: Api, headers: dict[str, str] | None = None) -> None:
        self.base = str(api.client.make_url("/")).rstrip("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers)
        self.csrf = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base + path, allow_redirects=False, **kw) as response:
            html = await response.text()
        found = CSRF.search(html)
        if found and path != "/login" and not path.startswith("/login?"):
            self.csrf = found.group(1)
        return response.status, html, response

    async def post(
        self, path: str, data: dict[str, Any] | list[tuple[str, str]], *, token: bool = True, **kw: Any
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if token:
            fields.append(("csrf", self.csrf))
        async with self.session.post(self.base + path, data=fields, allow_redirects=False, **kw) as response:
            return response.status, await response.text(), response

    async def sign_in(self, token: str) -> aiohttp.ClientResponse:
        status, html, _ = await self.get("/login")
        assert status == 200, html
        found = CSRF.search(html)
        assert found is not None
        fields = {"csrf": found.group(1), "token": token, "next": "/"}
        status, html, response = await self.post("/login", fields, token=False)
        assert status == 303, html
        status, html, _ = await self.get("/")
        assert status == 200, html
        return response


@contextlib.asynccontextmanager
async def visitor(api: Api, role: str | None = None, **kw: Any) -> AsyncIterator[Visitor]:
    v = Visitor(api, **kw)
    try:
        if role is not None:
            await v.sign_in(api.tokens[role])
        yield v
    finally:
        await v.close()


# The browser side


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium under Playwright; the test skips (or fails, with CERTMON_REQUIRE_ALL=1) without either."""
    require_module("playwright")
    path = require_program("chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=["--disable-gpu"])
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def tab(browser: Browser, base: str) -> AsyncIterator[Page]:
    """A page in a context of its own (its own cookies), that fails the test on a Content-Security-Policy refusal
    or a script error."""
    context = await browser.new_context(base_url=base, viewport=VIEWPORT, locale="th-TH", timezone_id="Asia/Bangkok")
    context.set_default_timeout(10_000)
    problems: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} at {message.location['url']}:{message.location['lineNumber']}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        await context.close()
    assert not problems, problems


def base_of(api: Api) -> str:
    return str(api.client.make_url("/")).rstrip("/")


async def browser_sign_in(page: Page, token: str, *, label: str = "โทเค็น") -> None:
    await page.goto("/")
    await page.get_by_label(label).fill(token)
    await page.get_by_label(label).press("Enter")
    await page.wait_for_url(re.compile(r"/$"))


async def axe_problems(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    await page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + ": " + n.failureSummary),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A screenshot of the page; into docs/screenshots/ with CERTMON_UPDATE_SCREENSHOTS=1, else beside the test."""
    target = (SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path) / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret would take an inline style, which the pages' policy refuses.
    await page.screenshot(path=str(target), caret="initial")
    return target


async def until(what: str, check: Callable[[], Awaitable[Any]], seconds: float = 30.0) -> Any:
    """Poll check until it returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
