"""The reviewer's workbench in real headless Chromium: a case applied for through the API with a real PDF and
JPEG, accepted from the console, past its promised date, opened from the overdue queue (red, labelled), its
PDF preview loading in the page, the next step taken; axe on the queue and the case page.

The reviewer's console session is the cookie holding an access token from the staff login API (the console's
own sign-in form is another helper's). The promised date is moved into the past in the database: the server
runs on the real clock.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import h5
from tests.e2e.conftest import Server
from tests.fakes.wechat import FakeWeChat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
expect = sync_api.expect
MATTER = "4308-XK-SS-003"  # the demo matter applied for online: a PDF form and an ID photo
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[h5.Service, Path]]:
    """`python -m app run` with the demo catalogue (WeChat = the fake); the service and its SQLite file."""
    db = tmp_path / "console.sqlite3"
    with FakeWeChat() as fake:
        server = Server(
            {"APP_ENV": "development", "LOAD_DEMO": "true", "SMS_SENDER": "console", "REALNAME_VERIFIER": "dev",
             "DATABASE_URL": f"sqlite://{db}", "ACCESS_LOG": "false", **h5.wechat_env(fake)},
            tmp_path / "server.log",
        )  # fmt: skip
        try:
            server.wait_ready()
            yield h5.Service(server, fake, f"sqlite://{db}"), db
        finally:
            server.stop()


def _submit(service: h5.Service) -> tuple[str, str, dict[str, str]]:
    """A citizen's case with a real PDF and JPEG: (case number, department, the citizen's bearer header)."""
    phone = h5.new_phone()
    token = service.cli("dev", "token", "--citizen", phone, "--loa", "2").strip().splitlines()[-1]
    citizen = {"Authorization": f"Bearer {token}"}
    guide = httpx.get(f"{service.url}/api/v1/matters/{MATTER}").json()
    materials = []
    for spec in guide["materials"]:
        if not spec.get("required", True) and materials:
            continue
        data, name = (
            (h5.one_page_pdf(), "申请书.pdf") if "jpg" not in spec["file_types"] else (h5.small_jpeg(), "证.jpg")
        )
        up = httpx.post(f"{service.url}/api/v1/uploads", headers=citizen,
                        files={"file": (name, data, "application/octet-stream")})  # fmt: skip
        assert up.status_code == 201, up.text
        materials.append({"name": spec["name"], "upload_ids": [up.json()["id"]]})
    from auth.idcard import make_id_number

    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "赵六", "id_number": make_id_number()},
        "form": {},
        "materials": materials,
        "delivery": {"method": "window"},
    }
    r = httpx.post(f"{service.url}/api/v1/cases", json=body,
                   headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["case_no"], guide["department"]["code"], citizen


def _reviewer_token(service: h5.Service, department: str) -> str:
    """A reviewer of the department made with the CLI; an access token from the staff login API."""
    return service.staff("reviewer", department=department)["Authorization"].removeprefix("Bearer ")


def _past_due(db: Path, case_no: str) -> None:
    """Move the case's promised date into the past (the server runs on the real clock)."""
    past = (dt.date.today() - dt.timedelta(days=5)).isoformat()
    with sqlite3.connect(db) as conn:
        changed = conn.execute(
            "UPDATE case_record SET due_on = ?, warn_on = ? WHERE case_no = ?", (past, past, case_no)
        ).rowcount
    assert changed == 1


def test_reviewer_opens_an_overdue_case_from_the_queue_previews_its_pdf_and_takes_the_next_step(
    service, tmp_path, request
):
    svc, db = service
    case_no, department, _ = _submit(svc)
    token = _reviewer_token(svc, department)
    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            context.add_cookies([{"name": "zd_st", "value": token, "url": svc.url}])
            page = context.new_page()
            journey.watch(page)

            # Accept the new case from its page, with the text for the citizen and an internal note.
            journey.visit(page, f"{svc.url}/console/cases?view=all", "queue all")
            page.get_by_role("link", name=case_no).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(f"办件 {case_no}")
            journey.check(page, "case submitted")
            accept = page.locator("form", has=page.locator('input[name="action"][value="accept"]'))
            accept.get_by_label(re.compile("告知申请人的文字")).fill("材料齐全，已受理")
            accept.get_by_label(re.compile("内部备注")).fill("已核对原件照片")
            accept.get_by_role("button", name="已受理").click()
            expect(page.get_by_role("status")).to_contain_text("已执行：已受理")

            # Past its promised date: red and labelled in the overdue queue, opened from there.
            _past_due(db, case_no)
            journey.visit(page, f"{svc.url}/console/cases?view=overdue", "queue overdue")
            row = page.locator(f'tr[data-case="{case_no}"]')
            expect(row).to_have_class(re.compile(r"\bsla-red\b"))
            expect(row).to_contain_text("已超期")
            with page.expect_response(lambda r: "/materials/" in r.url and r.request.resource_type != "image") as info:
                row.get_by_role("link", name=case_no).click()
            pdf = info.value
            assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
            assert pdf.headers["x-content-type-options"] == "nosniff"
            assert pdf.headers["content-disposition"].startswith("inline")
            frames = page.locator("main iframe").evaluate_all("fs => fs.map(f => f.src)")
            assert pdf.url in frames, (pdf.url, frames)
            image = page.locator("main img").first
            expect(image).to_be_visible()
            assert image.evaluate("i => i.complete && i.naturalWidth > 0")
            expect(page.locator("body")).to_contain_text("已核对原件照片")
            journey.check(page, "case overdue")

            # The state machine allows the review now: take it.
            review = page.locator("form", has=page.locator('input[name="action"][value="start_review"]'))
            review.get_by_role("button", name="审查中").click()
            expect(page.get_by_role("status")).to_contain_text("已执行：审查中")
            forms = page.locator('input[name="action"]')
            assert sorted(forms.evaluate_all("xs => xs.map(x => x.value)")) == ["approve", "deny", "suspend"]
            journey.check(page, "case under review")
        finally:
            browser.close()
    assert errors == [], errors
    journey.assert_accessible()
    progress = httpx.get(f"{svc.url}/api/v1/staff/cases/{case_no}", headers={"Authorization": f"Bearer {token}"})
    assert progress.json()["status"] == "under_review"


def test_reviewer_answers_and_publishes_a_question_and_verifies_a_rectification(service, tmp_path, request):
    """Questions and rectifications in the browser, axe on each page: answer, masking preview, publish, verify."""
    svc, _ = service
    case_no, department, citizen = _submit(svc)
    asked = httpx.post(f"{svc.url}/api/v1/matters/{MATTER}/questions", headers=citizen,
                       json={"text": "外地户籍能办吗？我的电话 13812345678"})  # fmt: skip
    assert asked.status_code == 201, asked.text
    reviewer = _reviewer_token(svc, department)
    for action in ("accept", "start_review", "approve", "deliver", "complete"):
        moved = httpx.post(f"{svc.url}/api/v1/staff/cases/{case_no}/actions", json={"action": action},
                           headers={"Authorization": f"Bearer {reviewer}"})  # fmt: skip
        assert moved.status_code == 200, moved.text
    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            context.add_cookies([{"name": "zd_st", "value": reviewer, "url": svc.url}])
            page = context.new_page()
            journey.watch(page)
            journey.visit(page, f"{svc.url}/console/questions", "questions")
            page.get_by_role("link", name=re.compile("外地户籍能办吗")).click()
            journey.check(page, "question")
            page.get_by_label("答复内容").fill("可以，携带身份证原件到窗口办理。")
            page.get_by_role("button", name="提交答复").click()
            expect(page.get_by_role("status")).to_contain_text("已答复")
            expect(page.locator("#preview-question")).to_contain_text("***")
            expect(page.locator("#preview-question")).not_to_contain_text("13812345678")
            journey.check(page, "question answered")
            page.get_by_role("button", name="公开为常见问题").click()
            expect(page.get_by_role("status")).to_contain_text("已公开为常见问题")

            # The citizen rates the completed case badly: a rectification for the department.
            body = {
                "subject_type": "case",
                "subject_id": case_no,
                "level": 1,
                "tags": ["多次跑腿"],
                "comment": "跑了三次",
            }
            rated = httpx.post(f"{svc.url}/api/v1/ratings", headers=citizen, json=body)
            assert rated.status_code == 201, rated.text
            journey.visit(page, f"{svc.url}/console/rectifications", "rectifications")
            page.get_by_role("link", name=re.compile("跑了三次")).click()
            journey.check(page, "rectification")
            verify = page.locator("form", has=page.locator('input[name="action"][value="verify"]'))
            verify.get_by_label(re.compile("内部记录")).fill("已调取窗口录像核实")
            verify.get_by_role("button", name="核实情况").click()
            expect(page.get_by_role("status")).to_contain_text("已完成：核实情况")
            journey.check(page, "rectification verified")
        finally:
            browser.close()
    assert errors == [], errors
    journey.assert_accessible()
    guide = httpx.get(f"{svc.url}/api/v1/matters/{MATTER}").json()
    assert guide["consult_faq"] and "13812345678" not in guide["consult_faq"][0]["question"]
