"""一件事 in the reviewer's workbench, in real headless Chromium: a citizen applies for the demo 企业开办一件事
through the API; the lead department (scjgj) accepts it and approves 营业执照 (stage 1) through the API; the
住房公积金 reviewer (gjjzx) finds its part in the console queue with the bundle's number, name and stage, asks
for a clearer ID from the part's page, and after the citizen's resubmission reviews and approves it; the lead's
reviewer opens the bundle page with its stages, parts, hold-ups and merged timeline (desktop and 390 px).
axe and a screenshot on every page.
"""

from __future__ import annotations

import re
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
BUNDLE = "4308-YJS-QYKB-001"  # 企业开办一件事: lead scjgj; stage 2 includes 住房公积金单位缴存登记 (gjjzx)
ID = "法定代表人、股东及经办人身份证明"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[h5.Service]:
    """`python -m app run` with the demo catalogue (WeChat = the fake)."""
    db = tmp_path / "bundle.sqlite3"
    with FakeWeChat() as fake:
        server = Server(
            {"APP_ENV": "development", "LOAD_DEMO": "true", "SMS_SENDER": "console", "REALNAME_VERIFIER": "dev",
             "DATABASE_URL": f"sqlite://{db}", "ACCESS_LOG": "false", **h5.wechat_env(fake)},
            tmp_path / "server.log",
        )  # fmt: skip
        try:
            server.wait_ready()
            yield h5.Service(server, fake, f"sqlite://{db}")
        finally:
            server.stop()


def _upload(svc: h5.Service, citizen: dict[str, str], types: list[str]) -> str:
    data, name = (h5.small_jpeg(), "证.jpg") if "jpg" in types else (h5.one_page_pdf(), "材料.pdf")
    files = {"file": (name, data, "application/octet-stream")}
    up = httpx.post(f"{svc.url}/api/v1/uploads", headers=citizen, files=files)
    assert up.status_code == 201, up.text
    return up.json()["id"]


def _apply(svc: h5.Service) -> tuple[str, dict[str, str]]:
    """The citizen's 企业开办一件事 with every required material uploaded once: (bundle number, bearer header)."""
    token = svc.cli("dev", "token", "--citizen", h5.new_phone(), "--loa", "3").strip().splitlines()[-1]
    citizen = {"Authorization": f"Bearer {token}"}
    guide = httpx.get(f"{svc.url}/api/v1/matters/{BUNDLE}").json()
    materials = [
        {"name": m["name"], "upload_ids": [_upload(svc, citizen, m["file_types"])]}
        for m in guide["materials"]
        if m.get("required", True)
    ]
    from auth.idcard import make_id_number

    body = {
        "matter_code": BUNDLE,
        "applicant": {"kind": "self", "name": "钱七", "id_number": make_id_number()},
        "form": {},
        "materials": materials,
        "delivery": {"method": "window"},
    }
    r = httpx.post(f"{svc.url}/api/v1/cases", json=body, headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "bundle"
    return r.json()["case_no"], citizen


def _act(svc: h5.Service, staff: dict[str, str], case_no: str, action: str) -> dict:
    r = httpx.post(f"{svc.url}/api/v1/staff/cases/{case_no}/actions", json={"action": action}, headers=staff)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_member_department_reviews_its_part_and_the_lead_follows_the_bundle(service, tmp_path, request):
    svc = service
    no, citizen = _apply(svc)
    lead = svc.staff("reviewer", department="scjgj")
    fund = svc.staff("reviewer", department="gjjzx")
    _act(svc, lead, no, "accept")
    _act(svc, lead, f"{no}-01", "start_review")
    _act(svc, lead, f"{no}-01", "approve")
    whole = httpx.get(f"{svc.url}/api/v1/staff/cases/{no}", headers=lead).json()
    (part,) = [p["case_no"] for p in whole["bundle"]["stages"][1]["parts"] if p["department"] == "gjjzx"]

    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            # The 住房公积金 reviewer: its part in the queue, with the bundle it belongs to.
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            token = fund["Authorization"].removeprefix("Bearer ")
            context.add_cookies([{"name": "zd_st", "value": token, "url": svc.url}])
            page = context.new_page()
            journey.watch(page)
            journey.visit(page, f"{svc.url}/console/cases?view=all", "fund queue")
            rows = page.locator("tbody tr")
            expect(rows).to_have_count(1)  # its own part only
            row = page.locator(f'tr[data-case="{part}"]')
            expect(row).to_contain_text("一件事·分件")
            expect(row).to_contain_text(f"属于「企业开办一件事」{no}，第 2 阶段")
            row.get_by_role("link", name=part).click()

            # The part's page: the bundle's panel, a correction of its own materials, no accept or delivery.
            expect(page.get_by_role("heading", level=1)).to_contain_text(f"办件 {part}")
            panel = page.get_by_role("region", name="所属「一件事」")
            expect(panel).to_contain_text(f"企业开办一件事（{BUNDLE}）")
            expect(panel).to_contain_text("scjgj")
            expect(panel).to_contain_text("第 2 阶段：刻章、申领发票、社保和公积金登记")
            offered = page.locator('input[name="action"]').evaluate_all("xs => xs.map(x => x.value)")
            assert offered == ["request_correction", "start_review", "suspend"], offered
            journey.check(page, "fund part")
            correction = page.locator("form", has=page.locator('input[name="action"][value="request_correction"]'))
            correction.get_by_label(ID).check()
            correction.get_by_label("原因").fill("身份证明照片不清晰，请重新上传")
            correction.get_by_role("button", name="部门要求补正（暂停计时）").click()
            expect(page.get_by_role("status")).to_contain_text("已执行：部门要求补正")
            expect(page.locator("main")).to_contain_text("待补正材料")
            journey.check(page, "fund part correction asked")

            # The citizen answers on the part's number; the part is back, reviewed and approved.
            new = _upload(svc, citizen, ["jpg"])
            body = {"materials": [{"name": ID, "upload_ids": [new]}]}
            r = httpx.post(f"{svc.url}/api/v1/cases/{part}/resubmit", json=body, headers=citizen)
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
            page.reload()
            page.locator("form", has=page.locator('input[name="action"][value="start_review"]')).get_by_role(
                "button", name="审查中"
            ).click()
            expect(page.get_by_role("status")).to_contain_text("已执行：审查中")
            page.locator("form", has=page.locator('input[name="action"][value="approve"]')).get_by_role(
                "button", name="审批通过"
            ).click()
            expect(page.get_by_role("status")).to_contain_text("已执行：审批通过")
            journey.check(page, "fund part approved")
            context.close()

            # The lead's reviewer: the whole, stage by stage, with what still holds it up.
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            token = lead["Authorization"].removeprefix("Bearer ")
            context.add_cookies([{"name": "zd_st", "value": token, "url": svc.url}])
            page = context.new_page()
            journey.watch(page)
            journey.visit(page, f"{svc.url}/console/cases?view=all", "lead queue")
            expect(page.locator(f'tr[data-case="{no}"]')).to_contain_text("一件事")
            page.get_by_role("link", name=no, exact=True).click()
            region = page.get_by_role("region", name="「一件事」办理进度")
            expect(region).to_contain_text("当前阶段第 2 阶段")
            expect(page.locator('[data-stage="1"]')).to_have_attribute("data-state", "done")
            expect(page.locator('[data-stage="2"]')).to_have_attribute("data-state", "running")
            expect(page.locator(f'tr[data-part="{part}"]')).to_contain_text("审批通过")
            expect(page.locator(f'tr[data-part="{part}"]')).to_contain_text("gjjzx")
            expect(page.locator("ul.holding li")).to_have_count(3)  # 公章, 发票, 社保 still running
            expect(page.locator("main")).to_contain_text(f"住房公积金单位缴存登记（{part}）")  # the merged timeline
            journey.check(page, "lead bundle")
            page.set_viewport_size(PHONE)
            journey.check(page, "lead bundle phone")
        finally:
            browser.close()
    assert errors == [], errors
    journey.assert_accessible()
    assert re.fullmatch(r"ZJJ\d{14}", no)
