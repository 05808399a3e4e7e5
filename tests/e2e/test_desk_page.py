"""The front-desk page (/desk) in real headless Chromium, driven like a clerk with a USB barcode scanner.

A real `python -m app run` process with the demo catalogue; a clerk and an admin from the CLI, a citizen
token from `dev token`; the admin opens the hall all day so the next slot can be booked and checked in
on the real clock; the citizen books it; then the browser signs in at /console/login, scans the ticket
(typed character by character and Enter, as a scanner does), scans it again, scans garbage,
undoes, issues a walk-in number.

Sync Playwright in a plain (non-async) test: pytest-asyncio's auto mode only takes `async def` tests, and
no event loop runs in this thread while the test body runs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app import clock, workdays
from tests.e2e.staff_login import staff_bearer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
QUEUE_RE = re.compile(r"^[A-G]\d{3}$")
HAN = re.compile(r"[\u4e00-\u9fff]")
CLERK, CLERK_PASSWORD = "desk-clerk", "clerk password 123"
ADMIN, ADMIN_PASSWORD = "desk-admin", "admin password 123"
EARLY_MINUTES = 240

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
expect = sync_api.expect


def _cli(server, database_url: str, *args: str, stdin: str | None = None) -> str:
    """`python -m app ...` with the server's database and base URL (the tokens' issuer); its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin, text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "BASE_URL": server.url},
    )  # fmt: skip
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _prepare(server, database_url: str) -> tuple[str, dict, list[dict]]:
    """Clerk, admin, an all-day calendar for hall main, a booking of its next slot: (ticket, booking, materials)."""
    url = server.url
    _cli(server, database_url, "staff", "create", "--role", "clerk", "--hall", "main", "--username", CLERK,
         "--name", "前台一号", "--password-stdin", stdin=CLERK_PASSWORD + "\n")  # fmt: skip
    _cli(server, database_url, "staff", "create", "--role", "admin", "--username", ADMIN, "--password-stdin",
         stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    phone = "199" + f"{uuid.uuid4().int % 10**8:08d}"
    citizen = _cli(server, database_url, "dev", "token", "--citizen", phone, "--loa", "2").strip().splitlines()[-1]

    admin = staff_bearer(url, ADMIN, ADMIN_PASSWORD)
    config = {
        "hours": {str(d): [["00:00", "23:59"]] for d in range(1, 8)},
        "early_minutes": EARLY_MINUTES,
        "cutoff_minutes": 0,
    }
    put = httpx.put(url + "/api/v1/admin/halls/main/schedule", json=config, headers=admin)
    assert put.status_code == 200, put.text

    today = clock.today()
    if workdays.day_kind(today) == "holiday":
        pytest.skip(f"{today} is a statutory holiday: hall main has no hours whatever its calendar says")

    listing = httpx.get(url + "/api/v1/matters", params={"page_size": 100}).json()["items"]
    matter = None
    for item in listing:
        detail = httpx.get(url + f"/api/v1/matters/{item['code']}").json()
        if detail["hall"]["code"] == "main" and detail["booking"] and detail["status"] == "active":
            matter = detail
            break
    assert matter is not None, "the demo catalogue has no bookable matter in hall main"

    slots = httpx.get(url + f"/api/v1/matters/{matter['code']}/slots", headers=_bearer(citizen))
    assert slots.status_code == 200, slots.text
    bookable = [s for s in slots.json()["items"] if s["bookable"]]
    if not bookable:
        pytest.skip("no bookable slot of hall main now (holiday or closure)")
    slot = bookable[0]
    starts = dt.datetime.fromisoformat(slot["starts_at"])
    if starts - dt.datetime.now(dt.UTC) > dt.timedelta(minutes=EARLY_MINUTES - 5):
        pytest.skip(f"the next open slot starts at {slot['starts_at']}: too far ahead to check in now (holiday?)")

    booked = httpx.post(
        url + "/api/v1/bookings",
        json={"matter_code": matter["code"], "slot_id": slot["slot_id"]},
        headers={**_bearer(citizen), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    assert booking["ticket"], booking
    return booking["ticket"], booking, matter["materials"]


def _scan(page, text: str) -> dict:
    """Type like a scanner into whatever has focus (the scan field), Enter; the API's answer."""
    expect(page.locator("#scan")).to_be_focused()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/desk/checkins") and r.request.method == "POST") as info:
        page.keyboard.type(text)
        page.keyboard.press("Enter")
    response = info.value
    assert response.status == 200, response.text()
    return response.json()


def _px(locator) -> float:
    return float(locator.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))


def test_desk_page_scan_checkin_walkin_undo_in_chromium(start_server, tmp_path):
    database_url = f"sqlite://{tmp_path / 'desk.sqlite3'}"
    server = start_server(DATABASE_URL=database_url)
    ticket, booking, materials = _prepare(server, database_url)

    console_errors: list[dict] = []
    page_errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            context.set_default_timeout(15_000)
            page = context.new_page()

            def on_console(message) -> None:
                if message.type == "error":
                    console_errors.append({"text": message.text, "url": message.location.get("url", "")})

            page.on("console", on_console)
            page.on("pageerror", lambda e: page_errors.append(str(e)))

            # -- signed out, the desk sends the clerk to the console's sign-in and back -----------------
            response = page.goto(server.url + "/desk")
            assert response is not None and response.status == 200
            expect(page).to_have_url(re.compile(r"/console/login\?next=/desk$"))
            page.fill("#f-username", CLERK)
            page.fill("#f-password", "not the password")
            page.click("button[type=submit]")
            expect(page.locator("[role=alert]").first).to_contain_text("用户名或密码错误")
            expect(page.locator("#scan")).to_have_count(0)

            # -- sign in: the desk, its Content-Security-Policy, the scan field has focus -------------
            page.fill("#f-password", CLERK_PASSWORD)
            with page.expect_response(lambda r: r.url.endswith("/desk") and r.request.method == "GET") as info:
                page.click("button[type=submit]")
            csp = info.value.headers.get("content-security-policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], csp
            expect(page).to_have_title(re.compile("窗口签到"))
            expect(page.locator("#desk")).to_be_visible()
            expect(page.locator("#logout")).to_be_visible()
            expect(page.locator("#scan")).to_be_focused()
            expect(page.locator("#result .idle")).to_have_text("等待扫码…")
            assert page.evaluate("window.sessionStorage.length") == 0  # no token in script's reach

            # The counter: typed elsewhere, then a click on the page gives the focus back to the scan field.
            page.fill("#counter", "D03")
            page.locator("#counter").dispatch_event("change")
            expect(page.locator("#scan")).not_to_be_focused()
            page.click("#result")
            expect(page.locator("#scan")).to_be_focused()

            result = page.locator("#result")
            queue = page.locator("#result .queue")

            # -- scan the ticket: checked in, a queue number in large text, the materials ----------
            first = _scan(page, ticket)
            assert first["result"] == "checked_in", first
            expect(result).to_have_attribute("data-result", "checked_in")
            expect(result).to_have_class("ok")
            expect(result.locator(".verdict")).to_have_text("签到成功")
            expect(queue).to_be_visible()
            expect(queue).to_have_text(QUEUE_RE)
            q1 = queue.inner_text()
            assert q1 == first["queue_no"]
            assert _px(queue) >= 60, "the queue number is not large text"
            expect(result.locator(".message")).to_have_text("签到成功，请等候叫号")
            expect(result.locator("dl")).to_contain_text(booking["matter"]["name"])
            expect(result.locator("dl")).to_contain_text(booking["date"])
            expect(result).to_contain_text("请核对材料")
            items = result.locator("ul li")
            expect(items).to_have_count(len(materials))
            for i, material in enumerate(materials):
                expect(items.nth(i)).to_contain_text(material["name"])
            expect(page.locator("#undo")).to_be_visible()
            expect(page.locator("#scan")).to_be_focused()
            expect(page.locator("#scan")).to_have_value("")
            expect(page.locator("#recent li b").first).to_have_text(q1)
            # One screenshot (not committed): the check-in result with its number and materials.
            page.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
            keep = os.environ.get("E2E_SCREENSHOT_DIR")
            if keep:
                shutil.copy(tmp_path / "desk.png", Path(keep) / "desk.png")

            # -- undo: the number is struck through in the recent list, focus back on the scan field
            with page.expect_response(lambda r: "/undo" in r.url) as info:
                page.click("#undo")
            assert info.value.status == 200, info.value.text()
            expect(result).to_have_class("warn")
            expect(result.locator(".verdict")).to_have_text(f"已撤销签到 {q1}")
            expect(page.locator("#recent li.undone b")).to_have_text([q1])
            expect(page.locator("#scan")).to_be_focused()

            # -- the booking admits its holder again: a new number ------------------------------------
            second = _scan(page, ticket)
            assert second["result"] == "checked_in", second
            q2 = second["queue_no"]
            assert q2 != q1
            expect(queue).to_have_text(q2)
            expect(result).to_have_attribute("data-result", "checked_in")
            expect(result).to_have_class("ok")
            expect(page.locator("#scan")).to_be_focused()

            # -- the same ticket again: already checked in, amber ------------------------------------
            again = _scan(page, ticket)
            assert again["result"] == "already_checked_in", again
            expect(result).to_have_attribute("data-result", "already_checked_in")
            expect(result).to_have_class("warn")
            expect(result.locator(".verdict")).to_have_text("已签到过")
            expect(queue).to_have_text(q2)
            expect(result.locator(".message")).to_contain_text(q2)
            expect(result.locator(".message")).to_contain_text("D03")
            expect(page.locator("#undo")).to_have_count(0)
            expect(page.locator("#scan")).to_be_focused()

            # -- garbage: invalid, red, a Chinese message ---------------------------------------------
            bad = _scan(page, "HELLO-NOT-A-TICKET-12345")
            assert bad["result"] == "invalid", bad
            expect(result).to_have_attribute("data-result", "invalid")
            expect(result).to_have_class("bad")
            expect(result.locator(".verdict")).to_have_text("无效预约码")
            expect(result.locator(".message")).to_have_text(bad["message"])
            assert HAN.search(result.locator(".message").inner_text())
            expect(queue).to_have_count(0)
            expect(page.locator("#scan")).to_be_focused()
            expect(page.locator("#scan")).to_have_value("")

            # -- two codes read back to back while the first answer is slow: both are sent, in order ----
            sent: list[str] = []

            def slow(route) -> None:
                sent.append(route.request.post_data_json["ticket"])
                time.sleep(1.0 if len(sent) == 1 else 0)
                route.continue_()

            page.route("**/api/v1/desk/checkins", slow)
            with page.expect_response(lambda r: r.url.endswith("/api/v1/desk/checkins")):
                page.keyboard.type("FIRST-QUEUED-SCAN")
                page.keyboard.press("Enter")
                page.keyboard.type("SECOND-QUEUED-SCAN")
                page.keyboard.press("Enter")
            for _ in range(50):  # the second request leaves once the first answer is back
                if len(sent) == 2:
                    break
                page.wait_for_timeout(100)
            assert sent == ["FIRST-QUEUED-SCAN", "SECOND-QUEUED-SCAN"], sent
            expect(result).to_have_attribute("data-result", "invalid")
            expect(page.locator("#scan")).to_be_focused()
            page.unroute("**/api/v1/desk/checkins")

            # -- walk-in: a number of the chosen section ---------------------------------------------
            page.select_option("#walkin-section", "tax")
            with page.expect_response(lambda r: r.url.endswith("/api/v1/desk/tickets")) as info:
                page.click("#walkin")
            assert info.value.status == 201, info.value.text()
            walk_in = info.value.json()
            expect(result).to_have_attribute("data-result", "walk_in")
            expect(result).to_have_class("ok")
            expect(queue).to_have_text(QUEUE_RE)
            expect(queue).to_have_text(walk_in["queue_no"])
            assert walk_in["queue_no"].startswith("E")
            expect(result.locator(".message")).to_have_text(walk_in["section_name"])
            expect(page.locator("#side-error")).to_have_text("")
            expect(page.locator("#scan")).to_be_focused()

            # -- the recent list: latest first, the undone one struck through -------------------------
            recent = page.locator("#recent li b")
            expect(recent).to_have_text([walk_in["queue_no"], q2, q1])
            expect(page.locator("#recent li").first).to_contain_text("现场")
            expect(page.locator("#recent li").nth(1)).to_contain_text("预约")
            expect(page.locator("#recent li.undone b")).to_have_text([q1])

        finally:
            browser.close()

    assert page_errors == []
    # Chromium logs every non-2xx answer as a console error: the 401 of the deliberate wrong password is
    # the only one expected, with the console sign-in page's /favicon.ico (console/base.html declares no icon).
    expected = [e for e in console_errors if e["url"].endswith(("/console/login", "/favicon.ico"))]
    unexpected = [e for e in console_errors if e not in expected]
    assert unexpected == [], unexpected
    assert all("Failed to load resource" in e["text"] for e in expected), expected
    assert (tmp_path / "desk.png").stat().st_size > 10_000
