"""An administrator enrols an authenticator and signs in with TOTP in Chromium; axe on every sign-in page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e import h5

ROOT = Path(__file__).resolve().parents[2]
ADMIN, ADMIN_PASSWORD = "totp-admin", "totp admin password 1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
expect = sync_api.expect


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for one test."""
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _next_step_code(secret: str, after: str) -> str:
    """A code of a later step than `after`'s (a used code is refused within its window): wait if needed."""
    totp = pyotp.TOTP(secret)
    code = totp.now()
    while code == after:
        time.sleep(1)
        code = totp.now()
    return code


def test_an_admin_enrols_and_signs_in_with_totp_in_chromium(start_server, browser, tmp_path, request):
    server = start_server(APP_ENV="development", LOAD_DEMO="false")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "staff", "create", "--role", "admin", "--username", ADMIN, "--password-stdin"],
        input=ADMIN_PASSWORD + "\n", text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite://{tmp_path / 'e2e.sqlite3'}", "BASE_URL": server.url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    journey.watch(page)
    try:
        # -- password ---------------------------------------------------------------------------
        journey.visit(page, server.url + "/console/login", "login")
        page.get_by_label("用户名").fill(ADMIN)
        page.get_by_label("密码").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="登录").click()
        expect(page).to_have_url(re.compile(r"/console/login/enrol$"))

        # -- enrolment: a QR code and the key typed by hand ------------------------------------
        expect(page.get_by_role("heading", name="绑定两步验证")).to_be_visible()
        expect(page.get_by_role("img", name="两步验证绑定二维码")).to_be_visible()
        journey.check(page, "enrol")
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        page.get_by_label("应用中显示的 6 位验证码").fill(wrong)
        page.get_by_role("button", name="确认绑定并登录").click()
        expect(page.locator("#code-err")).to_be_visible()
        journey.check(page, "enrol-wrong-code")
        used = pyotp.TOTP(secret).now()
        page.get_by_label("应用中显示的 6 位验证码").fill(used)
        page.get_by_role("button", name="确认绑定并登录").click()

        # -- recovery codes, shown once; then the console -----------------------------------------
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        journey.check(page, "recovery-codes")
        page.get_by_role("link", name="我已保存，进入工作台").click()
        expect(page.get_by_role("heading", name="工作台")).to_be_visible()
        page.get_by_role("button", name="退出", exact=True).click()
        expect(page).to_have_url(re.compile(r"/console/login"))

        # -- signing in again: password, then the code ---------------------------------------------
        page.get_by_label("用户名").fill(ADMIN)
        page.get_by_label("密码").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="登录").click()
        expect(page).to_have_url(re.compile(r"/console/login/code$"))
        journey.check(page, "code")
        page.get_by_label("验证码或恢复码").fill(_next_step_code(secret, used))
        page.get_by_role("button", name="验证并登录").click()
        expect(page).to_have_url(re.compile(r"/console$"))
        expect(page.get_by_role("heading", name="工作台")).to_be_visible()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["zd_st"]["httpOnly"] and cookies["zd_st"]["sameSite"] == "Strict"
        assert page.evaluate("document.cookie").find("zd_st") == -1
        assert page.evaluate("Object.keys(sessionStorage).length") == 0
    finally:
        context.close()
    assert errors == []
    journey.assert_accessible()
