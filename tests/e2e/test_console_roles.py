"""Two roles in one server, both signing in with TOTP in Chromium: a reviewer works an overdue case (PDF
preview, next step; the citizen's progress shows it), an administrator edits, diffs and publishes a guide
(the public guide shows it), and the audit log names each of them for each write; axe on every page.

The case setup (a citizen's case with a real PDF and JPEG, moved past its promised date) is
test_console_review's; each staff member enrols an authenticator at first sign-in, codes from pyotp.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import httpx
import pyotp
import pytest

from tests.e2e import h5
from tests.e2e import test_console_review as review

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python not installed")
expect = sync_api.expect
expect.set_options(timeout=15_000)

service = review.service  # the same server fixture: demo catalogue, SQLite file, WeChat fake
GUIDE = "4308-XK-SS-001"  # demo 营业执照设立登记
DESKTOP = {"width": 1280, "height": 900}


def _create_staff(svc: h5.Service, role: str, name: str, *scope: str) -> tuple[str, str]:
    """A staff account with a display name, made with the CLI: (username, password)."""
    username, password = f"{role}-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    svc.cli("staff", "create", "--role", role, "--username", username, "--name", name, *scope, "--password-stdin",
            stdin=password + "\n")  # fmt: skip
    return username, password


def _sign_in_enrolling(page: Any, journey: h5.Journey, url: str, username: str, password: str, who: str) -> None:
    """First sign-in through /console/login: password, then enrol an authenticator with a code from its key."""
    journey.visit(page, url + "/console/login", f"{who} login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/console/login/enrol$"))
    journey.check(page, f"{who} enrol")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("应用中显示的 6 位验证码").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="确认绑定并登录").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    journey.check(page, f"{who} recovery codes")
    page.get_by_role("link", name="我已保存，进入工作台").click()
    expect(page.get_by_role("heading", name="工作台")).to_be_visible()
    journey.check(page, f"{who} console home")


def _audit_rows(page: Any, journey: h5.Journey, url: str, object_id: str, label: str) -> list[list[str]]:
    """The audit log searched by object (as the admin): each row's cells."""
    journey.visit(page, f"{url}/console/audit?object_id={object_id}", label)
    expect(page.get_by_role("heading", name=re.compile(r"共 \d+ 条"))).to_be_visible()
    return page.locator("main table tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))"
    )


def test_a_reviewer_and_an_admin_sign_in_with_totp_work_and_the_audit_log_names_them(service, tmp_path, request):
    svc, db = service
    url = svc.url
    case_no, department, citizen = review._submit(svc)
    reviewer, reviewer_password = _create_staff(svc, "reviewer", "孙审核", "--department", department)
    admin, admin_password = _create_staff(svc, "admin", "吴管理")
    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    errors: list[str] = []
    new_summary = f"材料齐全当场办结（{secrets.token_hex(3)}）"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            # -- the reviewer, in a browser of their own --------------------------------------------------
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            page = context.new_page()
            journey.watch(page)
            _sign_in_enrolling(page, journey, url, reviewer, reviewer_password, "reviewer")

            # Accept the new case (it gets a promised date), then it falls past that date.
            journey.visit(page, f"{url}/console/cases?view=all", "queue all")
            page.get_by_role("link", name=case_no).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(f"办件 {case_no}")
            accept = page.locator("form", has=page.locator('input[name="action"][value="accept"]'))
            accept.get_by_label(re.compile("告知申请人的文字")).fill("材料齐全，已受理")
            accept.get_by_role("button", name="已受理").click()
            expect(page.get_by_role("status")).to_contain_text("已执行：已受理")
            review._past_due(db, case_no)

            # Opened from the overdue queue; its PDF loads in the page; the next allowed step is taken.
            journey.visit(page, f"{url}/console/cases?view=overdue", "queue overdue")
            row = page.locator(f'tr[data-case="{case_no}"]')
            expect(row).to_contain_text("已超期")
            with page.expect_response(lambda r: "/materials/" in r.url and r.request.resource_type != "image") as info:
                row.get_by_role("link", name=case_no).click()
            pdf = info.value
            assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
            assert pdf.url in page.locator("main iframe").evaluate_all("fs => fs.map(f => f.src)")
            journey.check(page, "case overdue")
            step = page.locator("form", has=page.locator('input[name="action"][value="start_review"]'))
            step.get_by_role("button", name="审查中").click()
            expect(page.get_by_role("status")).to_contain_text("已执行：审查中")
            journey.check(page, "case under review")
            context.close()

            # The citizen's progress shows the step (their own case API, then the receipt's progress page).
            mine = httpx.get(f"{url}/api/v1/cases/{case_no}", headers=citizen)
            assert mine.status_code == 200, mine.text
            assert mine.json()["status"] == "under_review"
            assert any("审查" in str(t) for t in mine.json()["timeline"]), mine.json()["timeline"]
            progress_url = mine.json()["receipt"]["progress_url"]
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
            context.on("weberror", lambda e: errors.append(str(e.error)))
            page = context.new_page()
            journey.watch(page)
            journey.visit(page, url + "/p/" + progress_url.rsplit("/p/", 1)[1], "citizen progress")
            expect(page.locator("main")).to_contain_text("审查中")
            context.close()

            # -- the administrator, in another browser ----------------------------------------------------
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            page = context.new_page()
            journey.watch(page)
            _sign_in_enrolling(page, journey, url, admin, admin_password, "admin")
            page.goto(url + "/console")
            page.get_by_role("link", name="事项目录管理").click()
            page.get_by_label("事项名称或编码").fill(GUIDE)
            page.get_by_role("button", name="查找").click()
            journey.check(page, "matters")
            page.get_by_role("link", name="营业执照设立登记").click()
            page.get_by_role("link", name="新建草稿（从已发布版本开始）").click()
            journey.check(page, "draft editor")
            page.get_by_label("简介").fill(new_summary)
            page.get_by_role("button", name="保存草稿并查看差异").click()
            expect(page.get_by_role("heading", name="草稿与已发布版本的差异")).to_be_visible()
            expect(page.locator('[data-field="summary"]')).to_contain_text(new_summary)
            journey.check(page, "diff")
            page.get_by_role("button", name="发布").click()
            expect(page.get_by_role("status")).to_contain_text("已发布")
            page.get_by_role("link", name="查看公众办事指南").click()
            expect(page.get_by_text(new_summary)).to_be_visible()
            journey.check(page, "public guide")

            # The staff page shows who has two-factor; the reviewer's is reset (after a confirmation step).
            journey.visit(page, url + "/console/staff", "staff")
            row = page.locator(f'tr[data-username="{reviewer}"]')
            expect(row.locator("[data-totp]")).to_have_attribute("data-totp", "on")
            row.get_by_text("重置两步验证").click()
            journey.check(page, "staff reset confirmation")
            row.get_by_role("button", name=f"确认重置 {reviewer} 的两步验证").click()
            expect(page.get_by_role("status")).to_contain_text(f"{reviewer} 的两步验证已重置")
            row = page.locator(f'tr[data-username="{reviewer}"]')
            expect(row.locator("[data-totp]")).to_have_attribute("data-totp", "off")
            journey.check(page, "staff after reset")
            reset_rows = _audit_rows(page, journey, url, reviewer, "audit staff")
            assert ("staff.reset_2fa", "吴管理") in {(c[3].strip(), c[1].split("\n")[0].strip()) for c in reset_rows}

            # -- the audit log names who did each write -----------------------------------------------------
            case_rows = _audit_rows(page, journey, url, case_no, "audit case")
            done = {(cells[3].strip(), cells[1].split("\n")[0].strip()) for cells in case_rows}
            assert {("case.accept", "孙审核"), ("case.start_review", "孙审核")} <= done, case_rows
            guide_rows = _audit_rows(page, journey, url, GUIDE, "audit guide")
            done = {(cells[3].strip(), cells[1].split("\n")[0].strip()) for cells in guide_rows}
            assert {("catalogue.draft", "吴管理"), ("catalogue.publish", "吴管理")} <= done, guide_rows
            context.close()
        finally:
            browser.close()
    assert errors == [], errors
    journey.assert_accessible()
