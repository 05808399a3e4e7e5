"""The reviewer's workbench through the pages: the queue's yellow and red rows, a case page with its materials
previewed through a scope-checked route, an action that reaches the citizen's progress, scope refusals, a
question answered and published with its masking preview, and a rectification step.

Staff sign in by the console's cookie holding a minted access token (independent of how /console/login asks).
The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai); tokens live 15 minutes, so every move of the clock
is followed by a fresh cookie.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from app.matters import service as matters
from auth.logins import issue_for_staff
from tests.api import case_helpers as h

PHONE = "13812345678"


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def row(html: str, case_no: str) -> str:
    """The queue's table row of a case."""
    return re.search(rf'<tr class="[^"]*" data-case="{case_no}">.*?</tr>', html, re.S).group(0)


async def sign_in(client, auth_deps, staff) -> None:
    """Put a fresh console session of this staff member into the client's cookies."""
    pair = await issue_for_staff(auth_deps, staff=staff)
    client.cookies.set("zd_st", pair.access_token)


async def post_form(client, path: str, page_path: str, data: dict[str, Any]):
    """Post a form the way the browser does: with the token from the page that holds it."""
    _, form_page = await client.get(page_path)
    assert form_page.status == 200, form_page.text
    _, r = await client.post(path, data={"csrf": csrf(form_page.text), **data}, follow_redirects=False)
    return r


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff, auth_deps):
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=h.catalogue())
    _, citizen = await make_citizen()
    reviewer, api = await make_staff("reviewer", departments=["scjgj"])
    await sign_in(client, auth_deps, reviewer)
    return SimpleNamespace(client=client, clock=fake_clock, citizen=citizen, reviewer=reviewer, api=api)


async def test_queue_marks_due_soon_yellow_and_overdue_red_with_a_text_label(world, auth_deps):
    client, clock = world.client, world.clock
    long = (await h.submit(client, world.citizen, matter=h.LONG_MATTER))["case_no"]  # 10 days: due 10-20
    short = (await h.submit(client, world.citizen))["case_no"]  # 3 days: due 10-10
    for case_no in (long, short):
        assert (await h.act(client, world.api, case_no, "accept")).status_code == 200
    clock.advance(days=16)  # 10-16: the long case has used 8 of 10 days, the short one is past due
    await sign_in(client, auth_deps, world.reviewer)

    _, page = await client.get("/console/cases?view=all")
    assert page.status == 200 and len(page.body) < 60_000
    red, yellow = row(page.text, short), row(page.text, long)
    assert 'class="sla-red"' in red and "已超期" in red
    assert 'class="sla-yellow"' in yellow and "即将到期" in yellow
    assert f'href="/console/cases/{short}"' in red

    _, overdue = await client.get("/console/cases?view=overdue")
    assert short in overdue.text and long not in overdue.text
    _, due_soon = await client.get("/console/cases?view=due_soon")
    assert long in due_soon.text and short not in due_soon.text
    _, mine = await client.get("/console/cases")  # the default view: the cases I acted on (through the API)
    assert short in mine.text and long in mine.text
    # A department outside the reviewer's scope narrows to nothing; it never widens the scope.
    _, other = await client.get("/console/cases?view=all&department=gjjzx")
    assert other.status == 200 and short not in other.text and "共 0 件" in other.text
    _, own = await client.get("/console/cases?view=all&department=scjgj")
    assert short in own.text and long in own.text


async def test_case_page_previews_materials_and_an_action_reaches_the_citizen_s_progress(world):
    client = world.client
    case = await h.submit(client, world.citizen)
    case_no, code = case["case_no"], case["query_code"]

    _, page = await client.get(f"/console/cases/{case_no}")
    assert page.status == 200 and len(page.body) < 60_000
    assert "张*" in page.text and "张三" not in page.text  # masked until asked for
    assert "第 1 版" in page.text  # the guide version it was filed under
    full = (await h.staff_case(client, world.api, case_no))["principal"]["id_number"]
    assert full not in page.text
    _, shown = await client.get(f"/console/cases/{case_no}?show=applicant")
    assert full in shown.text and "张三" in shown.text
    # Exactly the actions the state machine allows now, each with the citizen-facing text and the note.
    forms = re.findall(r'name="action" value="([a-z_]+)"', page.text)
    assert forms == ["accept", "reject", "require_correction"]
    assert page.text.count('name="public_text"') == 3 and page.text.count('name="note"') == 3

    pdf_url = re.search(r'<iframe src="([^"]+)"', page.text).group(1)
    img_url = re.search(r'<img src="([^"]+)"', page.text).group(1)
    _, pdf = await client.get(pdf_url)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline") and pdf.body == h.PDF
    assert pdf.headers["x-content-type-options"] == "nosniff"
    _, img = await client.get(img_url)
    assert img.status == 200 and img.headers["content-type"] == "image/png" and img.body == h.PNG
    assert img.headers["x-content-type-options"] == "nosniff"
    _, download = await client.get(pdf_url + "?download=1")
    assert download.headers["content-disposition"].startswith("attachment")
    assert f'href="{pdf_url}?download=1"' in page.text

    # A refusal without its reason: said next to the reason field, nothing moves.
    bad = await post_form(client, f"/console/cases/{case_no}/actions", f"/console/cases/{case_no}",
                          {"action": "reject", "note": "内部：核对中"})  # fmt: skip
    assert bad.status == 422 and 'id="reject-reason-err"' in bad.text and "请填写原因" in bad.text
    assert 'aria-describedby="reject-reason-err"' in bad.text and "内部：核对中" in bad.text
    assert (await h.staff_case(client, world.api, case_no))["status"] == "submitted"

    text = "材料齐全，已受理，请留意短信通知"
    done = await post_form(client, f"/console/cases/{case_no}/actions", f"/console/cases/{case_no}",
                           {"action": "accept", "public_text": text, "note": "内部备注：已电话核实"})  # fmt: skip
    assert done.status == 303 and done.headers["location"] == f"/console/cases/{case_no}?done=accept"
    _, after = await client.get(done.headers["location"])
    assert "已执行：已受理" in after.text and "内部备注：已电话核实" in after.text
    assert re.findall(r'name="action" value="([a-z_]+)"', after.text) == ["start_review", "suspend"]
    notes = (await h.staff_case(client, world.api, case_no))["notifications"]
    pushes = re.findall(r'<tr data-status="([a-z]+)" data-channel="([a-z_]*)">', after.text)
    assert pushes == [(n["status"], n["channel"] or "") for n in notes] and notes  # each with its delivery status

    _, progress = await client.get("/api/v1/progress", params={"case_no": case_no, "query_code": code})
    assert progress.status_code == 200 and progress.json["status"] == "accepted"
    assert progress.json["timeline"][-1]["text"] == text
    assert "内部备注" not in progress.text  # the note stays internal


async def test_a_reviewer_of_another_department_is_refused_the_case_its_files_and_its_actions(
    world, make_staff, auth_deps
):
    client = world.client
    case = await h.submit(client, world.citizen)
    case_no = case["case_no"]
    upload_id = case["materials"][0]["upload_id"]
    _, own = await client.get(f"/console/cases/{case_no}")
    token = csrf(own.text)

    other, _ = await make_staff("reviewer", departments=["gjjzx"])
    await sign_in(client, auth_deps, other)
    _, queue = await client.get("/console/cases?view=all")
    assert queue.status == 200 and case_no not in queue.text
    _, page = await client.get(f"/console/cases/{case_no}")
    assert page.status in (403, 404) and "张" not in page.text
    _, file = await client.get(f"/console/cases/{case_no}/materials/{upload_id}")
    assert file.status in (403, 404) and file.body != h.PDF
    _, act = await client.post(f"/console/cases/{case_no}/actions", data={"csrf": token, "action": "accept"},
                               follow_redirects=False)  # fmt: skip
    assert act.status in (403, 404)
    assert (await h.staff_case(client, world.api, case_no))["status"] == "submitted"


async def test_a_question_is_answered_and_published_with_its_masking_preview(world, make_staff, auth_deps):
    client = world.client
    text = f"外地户籍可以办营业执照吗？我的电话 {PHONE}"
    _, asked = await client.post(f"/api/v1/matters/{h.MATTER}/questions", json={"text": text},
                                 headers=world.citizen)  # fmt: skip
    assert asked.status_code == 201, asked.text
    qid = asked.json["id"]

    _, queue = await client.get("/console/questions?view=unanswered")
    assert queue.status == 200 and f"/console/questions/{qid}" in queue.text
    page_path = f"/console/questions/{qid}"
    empty = await post_form(client, f"{page_path}/answer", page_path, {"answer": ""})
    assert empty.status == 422 and 'id="answer-err"' in empty.text
    answered = await post_form(client, f"{page_path}/answer", page_path, {"answer": "可以，携带身份证原件到窗口办理。"})
    assert answered.status == 303
    _, unanswered = await client.get("/console/questions?view=unanswered")
    assert f"/console/questions/{qid}" not in unanswered.text

    _, page = await client.get(page_path)
    preview = re.search(r'<p id="preview-question">(.*?)</p>', page.text, re.S).group(1)
    assert PHONE not in preview and "***" in preview  # what the guide would show, masked by the service's rule
    edited = f"外地户籍能办营业执照吗？联系 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}"
    shown = await post_form(client, f"{page_path}/publish", page_path,
                            {"question": edited, "answer": "可以。", "op": "preview"})  # fmt: skip
    assert shown.status == 200
    preview = re.search(r'<p id="preview-question">(.*?)</p>', shown.text, re.S).group(1)
    assert "外地户籍能办营业执照吗" in preview and "***" in preview and PHONE[3:7] not in preview
    _, guide = await client.get(f"/api/v1/matters/{h.MATTER}")
    assert guide.json["consult_faq"] == []  # a preview publishes nothing

    published = await post_form(client, f"{page_path}/publish", page_path,
                                {"question": edited, "answer": "可以。", "op": "publish"})  # fmt: skip
    assert published.status == 303
    _, guide = await client.get(f"/api/v1/matters/{h.MATTER}")
    faq = guide.json["consult_faq"]
    assert len(faq) == 1 and PHONE[3:7] not in faq[0]["question"] and faq[0]["answer"] == "可以。"

    # Another department's reviewer neither lists nor opens it.
    other, _ = await make_staff("reviewer", departments=["gjjzx"])
    await sign_in(client, auth_deps, other)
    _, theirs = await client.get("/console/questions?view=all")
    assert theirs.status == 200 and qid not in theirs.text
    _, refused = await client.get(page_path)
    assert refused.status == 403 and "外地户籍" not in refused.text


async def test_a_rectification_step_goes_through_the_service_and_out_of_order_is_said_on_the_page(
    world, make_staff, auth_deps
):
    client = world.client
    case_no = await h.drive(client, world.citizen, world.api, "completed")
    body = {"subject_type": "case", "subject_id": case_no, "level": 1, "tags": ["多次跑腿"], "comment": "跑了三次"}
    _, rated = await client.post("/api/v1/ratings", json=body, headers=world.citizen)
    assert rated.status_code == 201, rated.text
    rect = rated.json["rectification"]

    _, queue = await client.get("/console/rectifications")
    assert queue.status == 200 and f"/console/rectifications/{rect['id']}" in queue.text
    path = f"/console/rectifications/{rect['id']}"
    _, page = await client.get(path)
    assert rect["due_on"] in page.text and "跑了三次" in page.text
    assert re.findall(r'name="action" value="([a-z]+)"', page.text) == ["verify", "contest"]

    done = await post_form(client, f"{path}/steps", path, {"action": "verify", "note": "已调取窗口录像核实"})
    assert done.status == 303 and done.headers["location"] == f"{path}?done=verify"
    _, after = await client.get(done.headers["location"])
    assert "已完成：核实情况" in after.text and "已调取窗口录像核实" in after.text
    assert re.findall(r'name="action" value="([a-z]+)"', after.text) == ["rectify", "contest"]
    late = await post_form(client, f"{path}/steps", path, {"action": "close"})
    assert late.status == 409 and 'role="alert"' in late.text
    _, api = await client.get(f"/api/v1/staff/rectifications/{rect['id']}", headers=world.api)
    assert api.json["status"] == "verified"

    other, _ = await make_staff("reviewer", departments=["gjjzx"])
    await sign_in(client, auth_deps, other)
    _, theirs = await client.get("/console/rectifications")
    assert theirs.status == 200 and rect["id"] not in theirs.text
    _, refused = await client.get(path)
    assert refused.status == 403 and "跑了三次" not in refused.text
