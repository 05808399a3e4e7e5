"""企业开办一件事 in real headless Chromium at phone size (390×844), with axe-core on every page.

A citizen signs in, reads the bundle's guide (stages, members, what each material serves), gets verified
(the bundle asks for real name), applies uploading each material once and reads the receipt; the
departments' reviewers then work through the API: stage 1 decided, stage 2 running with its four parts,
住房公积金 asks for a correction that the citizen answers on the part's page, and the bundle completes.
The same running service, fixtures and helpers as tests/e2e/test_h5_journey.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.e2e import h5
from tests.e2e import test_h5_journey as j
from tests.e2e.test_h5_journey import _id_number, _read_receipt, _sign_in_by_sms, expect

# The journey module's fixtures, shared by name: its running service (a module's own), browser and phone.
fake_wechat, service, browser, journey, phone = j.fake_wechat, j.service, j.browser, j.journey, j.phone

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]

BUNDLE = "4308-YJS-QYKB-001"  # demo 企业开办一件事, lead scjgj, real name required
LICENCE = "4308-XK-SS-001"  # stage 1
STAGE2 = {"4308-QT-GA-011": "gaj", "4308-QT-SF-001": "swj", "4308-QR-SB-012": "rsj", "4308-GG-SB-007": "gjjzx"}
ID_PROOF = "法定代表人、股东及经办人身份证明"


def _act(service: h5.Service, headers: dict[str, str], case_no: str, action: str, **args: Any) -> dict[str, Any]:
    r = httpx.post(f"{service.url}/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args},
                   headers=headers)  # fmt: skip
    assert r.status_code == 200, (case_no, action, r.text)
    return r.json()


def test_applying_for_a_bundle_and_following_its_stages(service, phone, journey):
    """Guide → sign-in → real name → one form, each material once → receipt → stage 2 with four parts →
    a correction answered on the part's page → the bundle completed, on the case page and by progress."""
    guide = httpx.get(f"{service.url}/api/v1/matters/{BUNDLE}").json()
    materials = guide["materials"]
    page = phone().new_page()

    # -- the guide: a 一件事 with its lead, its stages in order and what each material serves ---------------
    journey.visit(page, f"{service.url}/m/{BUNDLE}", "bundle guide")
    expect(page.get_by_role("heading", level=1)).to_have_text("企业开办一件事")
    expect(page.locator(".badges")).to_contain_text("一件事（主题服务）")
    expect(page.locator("#department")).to_have_text(guide["department"]["name"])
    stages = page.locator("ol.stages > li")
    expect(stages).to_have_count(2)
    expect(stages.nth(0)).to_contain_text("第 1 阶段：设立登记")
    expect(stages.nth(1)).to_contain_text("第 2 阶段：刻章、申领发票、社保和公积金登记")
    expect(stages.nth(1).locator("a")).to_have_count(4)
    expect(page.locator("#bundle-total")).to_contain_text("1 个工作日")
    expect(page.locator(".uses").first).to_contain_text(
        re.compile(r"用于：营业执照设立登记[^、]*、公章刻制备案、发票领用")
    )
    stages.nth(0).get_by_role("link").click()
    expect(page).to_have_url(f"{service.url}/m/{LICENCE}")
    page.go_back()

    # -- sign in, real name (the bundle asks for it), one form ---------------------------------------------
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="申报").click()
    expect(page).to_have_url(re.compile(r"/m/login\?next="))
    _sign_in_by_sms(page, service, h5.new_phone())
    expect(page).to_have_url(re.compile(r"/m/me/real-name\?next="))
    page.get_by_label("姓名").fill("赵六")
    page.get_by_label("身份证号").fill(_id_number())
    page.get_by_role("button", name="提交认证").click()
    expect(page).to_have_url(f"{service.url}/m/{BUNDLE}/apply")
    expect(page.locator("fieldset.mat")).to_have_count(len(materials))
    journey.check(page, "bundle apply form")
    pdf, jpeg = h5.one_page_pdf(), h5.small_jpeg()
    for i, m in enumerate(materials):
        if not m["required"]:
            continue
        photo = "jpg" in m["file_types"] and i % 2 == 0
        file = {"name": f"材料{i}.jpg", "mimeType": "image/jpeg", "buffer": jpeg} if photo else {
            "name": f"材料{i}.pdf", "mimeType": "application/pdf", "buffer": pdf}  # fmt: skip
        page.locator(f"#file-{i}-pick").set_input_files(files=[file])
        expect(page.locator(f"#mat-file-{i} ul.files")).to_contain_text(file["name"])
    journey.check(page, "bundle apply form with files")
    page.get_by_role("button", name="提交申请").click()
    case_no, code = _read_receipt(page)
    expect(page.locator("#bundle")).to_contain_text("设立登记")
    expect(page.locator("dl.kv")).to_contain_text("一件事")
    journey.check(page, "bundle receipt")

    # -- the departments work; the citizen's page follows the stages ----------------------------------------
    lead = service.staff("reviewer", department="scjgj")
    _act(service, lead, case_no, "accept")
    part_a = f"{case_no}-01"
    _act(service, lead, part_a, "start_review")
    _act(service, lead, part_a, "approve")
    page.goto(f"{service.url}/m/me/cases/{case_no}")
    expect(page.locator("#stage-1")).to_contain_text("已完成")
    expect(page.locator("#stage-2")).to_contain_text("办理中")
    parts = page.locator("#stage-2 li.part")
    expect(parts).to_have_count(4)
    expect(page.locator("#stage-2")).to_contain_text("市公安局")
    expect(page.locator("#holding")).to_be_visible()
    journey.check(page, "bundle case stage 2 running")

    reviewers = {dep: service.staff("reviewer", department=dep) for dep in STAGE2.values()}
    numbers = {p["matter"]["code"]: p["case_no"] for p in _staff_parts(service, lead, case_no)}
    fund_part = numbers["4308-GG-SB-007"]
    _act(service, reviewers["gjjzx"], fund_part, "request_correction", reason="身份证明照片不清晰，请重新上传",
         materials=[ID_PROOF])  # fmt: skip
    page.reload()
    alert = page.locator(f"#correct-{fund_part}")
    expect(alert).to_contain_text("身份证明照片不清晰")
    journey.check(page, "bundle case correction asked")
    alert.get_by_role("link").click()
    expect(page).to_have_url(f"{service.url}/m/me/cases/{fund_part}#correction")
    expect(page.locator("#part-of")).to_contain_text("企业开办一件事")
    journey.check(page, "part page with correction form")
    page.locator("#file-0-pick").set_input_files(files=[{"name": "清晰身份证.jpg", "mimeType": "image/jpeg",
                                                         "buffer": jpeg}])  # fmt: skip
    expect(page.locator("#mat-file-0 ul.files")).to_contain_text("清晰身份证.jpg")
    page.get_by_role("button", name="提交补正材料").click()
    expect(page.get_by_role("status").first).to_contain_text("补正材料已提交")
    page.locator("#part-of").get_by_role("link").first.click()
    expect(page).to_have_url(f"{service.url}/m/me/cases/{case_no}")
    expect(page.locator(f"#correct-{fund_part}")).to_have_count(0)
    journey.check(page, "bundle case correction answered")

    for member, dep in STAGE2.items():
        _act(service, reviewers[dep], numbers[member], "start_review")
        _act(service, reviewers[dep], numbers[member], "approve")
    _act(service, lead, case_no, "deliver")
    _act(service, lead, case_no, "complete")
    page.reload()
    expect(page.locator("#status")).to_have_text("已办结")
    expect(page.locator("#stage-2")).to_contain_text("已完成")
    expect(page.locator("#timeline .src").first).to_be_visible()
    journey.check(page, "bundle case completed")
    page.goto(f"{service.url}/m/me/cases")
    expect(page.locator("#cases li")).to_have_count(1)
    expect(page.locator("#cases")).to_contain_text("一件事")
    journey.check(page, "my cases with a bundle")

    # -- progress without signing in ------------------------------------------------------------------------
    other = phone().new_page()
    journey.visit(other, f"{service.url}/p", "progress form")
    other.get_by_label("办件编号").fill(case_no)
    other.get_by_label("查询码").fill(code)
    other.get_by_role("button", name="查询").click()
    expect(other.get_by_role("heading", level=1)).to_have_text("企业开办一件事")
    expect(other.locator("#stages > li")).to_have_count(2)
    expect(other.locator("#timeline")).to_contain_text("住房公积金单位缴存登记")
    journey.check(other, "bundle progress")
    journey.assert_accessible()


def _staff_parts(service: h5.Service, headers: dict[str, str], case_no: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{service.url}/api/v1/staff/cases/{case_no}", headers=headers)
    assert r.status_code == 200, r.text
    return [p for stage in r.json()["bundle"]["stages"] for p in stage["parts"]]
