"""The console's administration pages (outbox, staff accounts, indicators) in headless Chromium at phone
width: signed in through the console's own form, an account created through the page, axe on each page."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.h5 import CHROMIUM, CHROMIUM_ARGS, PHONE, ROOT, Journey

ADMIN, PASSWORD = "ops-admin", "ops admin password 1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
expect = sync_api.expect


def test_admin_pages_work_and_are_accessible(start_server, tmp_path, request):
    # Password-only sign-in here (two-factor has its own browser test, tests/e2e/test_console_totp.py).
    server = start_server(LOAD_DEMO="false", STAFF_TOTP_ROLES="none")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "staff", "create", "--role", "admin", "--username", ADMIN, "--password-stdin"],
        input=PASSWORD + "\n", text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite://{tmp_path / 'e2e.sqlite3'}"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    journey = Journey.in_dir(tmp_path, request.node.name)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
            page.goto(server.url + "/console/staff")
            page.fill("input[name=username]", ADMIN)
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url.endswith("/console/staff")
            journey.check(page, "staff list")
            page.fill("#f-username", "desk-09")
            page.select_option("#f-role", "clerk")
            page.fill("#f-hall", "main")
            with page.expect_navigation():
                page.click("text=创建账号")
            expect(page.locator("[data-password]")).to_have_count(1)
            expect(page.locator("tr[data-username=desk-09]")).to_contain_text("大厅 main")
            journey.check(page, "staff created")
            for path in ("/console/notifications", "/console/notifications?status=failed", "/console/indicators"):
                response = page.goto(server.url + path)
                assert response is not None and response.status == 200, path
                journey.check(page, path)
        finally:
            browser.close()
    journey.assert_accessible()
