"""The front desk on a handheld (390×844) in real Chromium: the clerk signs in through /console/login,
scans a ticket (no sideways scrolling), calls the number, and the hall's screen (/display/main, open in
another browser) shows it without reloading. axe on both pages: zero serious/critical.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.h5 import Journey
from tests.e2e.staff_login import staff_bearer
from tests.e2e.test_desk_page import (
    ADMIN,
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    CLERK,
    CLERK_PASSWORD,
    QUEUE_RE,
    _prepare,
    _scan,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
axe = pytest.importorskip("axe_playwright_python", reason="axe-playwright-python not installed")
expect = sync_api.expect


def _counter_for(url: str, section: str) -> str:
    """A counter of hall main serving this section (when the hall lists counters), else a free code."""
    admin = staff_bearer(url, ADMIN, ADMIN_PASSWORD)
    listed = httpx.get(url + "/api/v1/admin/halls/main/counters", headers=admin)
    assert listed.status_code == 200, listed.text
    items = listed.json().get("items") or listed.json().get("counters") or []
    for item in items:
        if item["section"] == section and item.get("active", True):
            return item["code"]
    return "B01" if not items else items[0]["code"]


def test_clerk_on_a_handheld_scans_and_calls_and_the_screen_shows_it(start_server, tmp_path, request):
    database_url = f"sqlite://{tmp_path / 'desk.sqlite3'}"
    server = start_server(DATABASE_URL=database_url)
    ticket, booking, _ = _prepare(server, database_url)
    counter = _counter_for(server.url, booking["section"])
    journey = Journey.in_dir(tmp_path, request.node.name)
    page_errors: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            tv = browser.new_context(viewport={"width": 1280, "height": 720}, locale="zh-CN").new_page()
            tv.on("pageerror", lambda e: page_errors.append(str(e)))
            journey.watch(tv)
            response = tv.goto(server.url + "/display/main")
            assert response is not None and response.status == 200
            expect(tv.locator("#now-body")).to_contain_text("暂无叫号")
            journey.check(tv, "display before any call")

            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            journey.watch(page)

            # -- sign in through the console: back on the desk, the scan field focused ------------------
            page.goto(server.url + "/desk")
            expect(page).to_have_url(re.compile(r"/console/login\?next=/desk$"))
            page.fill("#f-username", CLERK)
            page.fill("#f-password", CLERK_PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(re.compile(r"/desk$"))
            expect(page.locator("#scan")).to_be_focused()
            assert page.evaluate("window.sessionStorage.length") == 0
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            journey.check(page, "desk on a handheld")

            # -- the counter number is kept on this device -----------------------------------------------
            page.fill("#counter", counter)
            page.locator("#counter").dispatch_event("change")
            page.click("#result")
            expect(page.locator("#scan")).to_be_focused()

            # -- scan: checked in, large and green, still no sideways scrolling --------------------------
            answer = _scan(page, ticket)
            assert answer["result"] == "checked_in", answer
            result = page.locator("#result")
            expect(result).to_have_class("ok")
            expect(result.locator(".queue")).to_have_text(QUEUE_RE)
            number = answer["queue_no"]
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            journey.check(page, "desk after a check-in")

            # -- call next: the desk shows the number (booked), the screen shows it without reloading ---
            with page.expect_response(lambda r: r.url.endswith("/call-next")) as info:
                page.click("#call-next")
            assert info.value.status == 200, info.value.text()
            expect(page.locator("#called")).to_have_text(number)
            expect(page.locator("#called-kind")).to_have_text("预约")
            expect(page.locator("#scan")).to_be_focused()
            expect(tv.locator("#now-no")).to_have_text(number, timeout=15_000)
            expect(tv.locator("#now-counter")).to_have_text(counter)
            expect(tv.locator("#calls li").first).to_contain_text(number)
            journey.check(tv, "display after a call")

            # -- recall and skip -----------------------------------------------------------------------
            with page.expect_response(lambda r: r.url.endswith("/recall")) as info:
                page.click("#recall")
            assert info.value.status == 200
            with page.expect_response(lambda r: r.url.endswith("/skip")) as info:
                page.click("#skip")
            assert info.value.status == 200
            expect(page.locator("#side-error")).to_have_text(f"已过号 {number}")

            # -- the counter survives a new sign-in on this device ------------------------------------
            page.reload()
            expect(page.locator("#counter")).to_have_value(counter)
        finally:
            browser.close()

    assert page_errors == []
    journey.assert_accessible()
