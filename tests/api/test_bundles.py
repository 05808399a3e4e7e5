"""一件事一次办 through the API: one application, parts opened stage by stage in each member's department,
a correction from one department while another goes on, the bundle's dates across National Day and a
调休 Saturday, delivery together, one timeline and the notifications the citizen gets (counted)."""

from __future__ import annotations

import copy
import uuid
from types import SimpleNamespace

import pytest

from app.cases.models import Case, CaseEvent
from app.matters import service as matters
from app.notify.models import Notification
from auth.idcard import make_id_number
from tests import factories
from tests.api import case_helpers as h

A, B, C = "4308-XK-SS-001", "4308-GG-ZF-001", "4308-QT-SF-001"
BUNDLE = "4308-YJS-TEST-001"
FORM, ID, RULES = "一件事申请表", "居民身份证", "公司章程"


def bundle_entry(**overrides) -> dict:
    """A two-stage bundle: A (scjgj) first, then B (gjjzx) and C (swj) side by side; 1 + 2 working days."""
    data = factories.entry(
        BUNDLE,
        name="测试开办一件事",
        type="bundle",
        materials=[
            {"name": FORM, "file_types": ["pdf"], "members": [A, B, C]},
            {"name": ID, "file_types": ["jpg", "png"], "members": [A, B]},
            {"name": RULES, "required": False, "file_types": ["pdf"], "members": [A]},
        ],
        legal_limit_days=3,
        promised_limit_days=3,
        online_depth=4,
        bundle={
            "stages": [
                {"name": "设立登记", "matters": [A], "promised_days": 1},
                {"name": "后续登记", "matters": [B, C], "promised_days": 2},
            ]
        },
    )
    data.update(overrides)
    return data


def catalogue(*extra: dict) -> dict:
    data = factories.catalogue(
        factories.entry(A),
        factories.entry(B, name="住房公积金单位缴存登记", department="gjjzx", hall="gongjijin"),
        factories.entry(C, name="发票领用", department="swj", legal_limit_days=5, promised_limit_days=0),
        *extra,
    )
    data["departments"].append({"code": "swj", "name": "税务局", "phone": "0744-8200003"})
    return data


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff, auth_deps):
    from auth.logins import issue_for_staff

    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=catalogue(bundle_entry()))
    phone = "13912340000"
    citizen, headers = await make_citizen(phone=phone)
    staff = {
        name: (await make_staff("reviewer", departments=[dep]))[0]
        for name, dep in (("lead", "scjgj"), ("fund", "gjjzx"), ("tax", "swj"))
    }
    w = SimpleNamespace(client=client, clock=fake_clock, citizen=citizen, headers=headers)

    async def later(**delta) -> None:
        """Move the clock, and sign everyone in again (tokens are short)."""
        fake_clock.advance(**delta)
        w.headers = (await make_citizen(phone=phone))[1]
        for name, member in staff.items():
            pair = await issue_for_staff(auth_deps, staff=member)
            setattr(w, name, {"Authorization": f"Bearer {pair.access_token}"})

    w.later = later
    await later()
    return w


async def apply(w) -> dict:
    """One application: each material uploaded once."""
    form = await h.upload(w.client, w.headers, h.PDF, "申请表.pdf")
    idcard = await h.upload(w.client, w.headers, h.PNG, "id.png")
    body = {
        "matter_code": BUNDLE,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "form": {"company_name": "张家界一件事有限公司"},
        "materials": [{"name": FORM, "upload_ids": [form]}, {"name": ID, "upload_ids": [idcard]}],
        "delivery": {"method": "ems", "address": h.ADDRESS},
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    _, r = await w.client.post("/api/v1/cases", json=body, headers={**w.headers, **key})
    assert r.status_code == 201, r.text
    return r.json


async def ok(r):
    assert r.status_code == 200, r.text
    return r.json


async def pushes(citizen_id) -> list[dict]:
    rows = await Notification.filter(citizen_id=citizen_id).order_by("created_at", "id")
    return [n.payload for n in rows]


async def test_one_application_runs_stage_by_stage_across_departments(world):
    w = world
    case = await apply(w)
    no, code = case["case_no"], case["query_code"]
    assert case["kind"] == "bundle" and case["department"] == "scjgj"
    assert [s["state"] for s in case["bundle"]["stages"]] == ["waiting", "waiting"]
    # One upload per material: the bundle holds two files, nothing is asked twice.
    assert sorted(m["name"] for m in case["materials"]) == sorted([ID, FORM])

    # The one window accepts once, on Wednesday 2026-09-30: stage 1 opens in scjgj only.
    body = await ok(await h.act(w.client, w.lead, no, "accept"))
    assert body["status"] == "accepted"
    assert body["sla"]["due_on"] == "2026-10-10"  # 3 working days: 10-08, 10-09 and the 调休 Saturday 10-10
    stage1 = body["bundle"]["stages"][0]
    assert stage1["state"] == "running" and stage1["due_on"] == "2026-10-08"  # National Day closed
    (part_a,) = [p["case_no"] for p in stage1["parts"]]
    assert part_a == f"{no}-01"
    assert await h.staff_list(w.client, w.fund) == [] and await h.staff_list(w.client, w.tax) == []
    assert part_a in await h.staff_list(w.client, w.lead)
    a = await h.staff_case(w.client, w.lead, part_a)
    assert a["kind"] == "part" and a["part_of"]["bundle_no"] == no and a["part_of"]["stage_name"] == "设立登记"
    # The part holds the bundle's materials that serve it (the same uploads), nothing else.
    assert sorted(m["name"] for m in a["materials"]) == sorted([ID, FORM])
    assert a["actions"] == ["request_correction", "start_review", "suspend"]

    # A part is not accepted again, not delivered on its own; another department cannot touch it.
    r = await h.act(w.client, w.lead, part_a, "accept")
    assert r.status_code == 409 and r.json["error"]["code"] == "ILLEGAL_TRANSITION"
    r = await h.act(w.client, w.fund, part_a, "start_review")
    assert r.status_code == 403 and r.json["error"]["code"] == "CASE_OUT_OF_SCOPE"
    # Nor is a bundle reviewed as a whole: its parts are.
    r = await h.act(w.client, w.lead, no, "start_review")
    assert r.status_code == 409 and r.json["error"]["details"]["allowed"] == []

    # Stage 1 decided on Thursday 10-08: stage 2 opens the same day in gjjzx and swj side by side.
    await w.later(days=8)
    await ok(await h.act(w.client, w.lead, part_a, "start_review"))
    await ok(await h.act(w.client, w.lead, part_a, "approve"))
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["status"] == "under_review" and parent["bundle"]["current_stage"] == 2
    stage2 = parent["bundle"]["stages"][1]
    assert stage2["started_on"] == "2026-10-08" and stage2["due_on"] == "2026-10-10"
    part_b, part_c = [p["case_no"] for p in stage2["parts"]]
    assert await h.staff_list(w.client, w.fund) == [part_b]
    assert await h.staff_list(w.client, w.tax) == [part_c]
    c = await h.staff_case(w.client, w.tax, part_c)
    assert [m["name"] for m in c["materials"]] == [FORM]  # 发票 needs only the form

    # gjjzx asks for a clearer ID card: the citizen is told once; swj goes on and decides.
    r = await h.act(w.client, w.fund, part_b, "request_correction", reason="身份证不清晰", materials=[ID])
    assert (await ok(r))["status"] == "correction_required"
    r = await h.act(w.client, w.fund, part_b, "request_correction", reason="x", materials=[RULES])
    assert r.status_code == 409
    await ok(await h.act(w.client, w.tax, part_c, "start_review"))
    await ok(await h.act(w.client, w.tax, part_c, "approve"))
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["status"] == "under_review"
    assert any(part_b in line and "补正" in line for line in parent["bundle"]["holding"])

    # The citizen answers on Friday 10-09; B's clock stopped one working day, and so does the bundle's.
    await w.later(days=1)
    r = await h.resubmit(w.client, w.headers, part_b, name=ID)
    assert (await ok(r))["status"] == "accepted"
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["suspended_days"] == 1
    assert parent["sla"]["due_on"] == "2026-10-12"  # one working day past the 调休 Saturday
    await ok(await h.act(w.client, w.fund, part_b, "start_review"))
    await ok(await h.act(w.client, w.fund, part_b, "approve"))
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["status"] == "approved"
    assert [s["state"] for s in parent["bundle"]["stages"]] == ["done", "done"]

    # One parcel: the lead delivers the whole, its parts go with it; then it completes.
    await ok(await h.act(w.client, w.lead, no, "deliver", tracking_no="EA123456789CN"))
    await ok(await h.act(w.client, w.lead, no, "complete"))
    statuses = await Case.filter(bundle_id=uuid.UUID(parent["id"])).order_by("case_no").values_list("status", flat=True)
    assert [str(s) for s in statuses] == ["completed"] * 3

    # One progress, by the bundle's number and query code: every department's steps in one timeline.
    _, r = await w.client.post("/api/v1/progress", json={"case_no": no, "query_code": code})
    assert r.status_code == 200, r.text
    sources = {e.get("source") for e in r.json["timeline"]}
    assert {"营业执照设立登记", "住房公积金单位缴存登记", "发票领用", None} <= sources
    assert r.json["status"] == "completed" and r.json["bundle"]["stages"][1]["paused_days"] == 1

    # The citizen's list shows one application, not four cases.
    _, r = await w.client.get("/api/v1/cases", headers=w.headers)
    assert [i["case_no"] for i in r.json["items"]] == [no]

    # What the citizen was told: one message per step of the whole, and the one correction (not a copy
    # per department): submit, accept, stage 2, B's correction, all approved, delivered, completed.
    sent = await pushes(w.citizen.id)
    assert [(p["case_no"], p["status"]) for p in sent] == [
        (no, "submitted"),
        (no, "accepted"),
        (no, "under_review"),
        (part_b, "correction_required"),
        (no, "approved"),
        (no, "delivered"),
        (no, "completed"),
    ]


async def test_a_denied_part_ends_the_bundle_after_its_stage(world):
    w = world
    no = (await apply(w))["case_no"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    part_a = f"{no}-01"
    await ok(await h.act(w.client, w.lead, part_a, "start_review"))
    await ok(await h.act(w.client, w.lead, part_a, "deny", reason="名称不符合规定"))
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["status"] == "denied"
    assert [s["state"] for s in parent["bundle"]["stages"]] == ["done", "stopped"]
    assert await Case.filter(bundle_id=uuid.UUID(parent["id"])).count() == 1
    await ok(await h.act(w.client, w.lead, no, "deliver", tracking_no="EA123456789CN"))
    assert (await h.staff_case(w.client, w.lead, part_a))["status"] == "delivered"


async def test_a_late_stage_is_flagged_overdue_for_the_lead(world):
    w = world
    no = (await apply(w))["case_no"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    await w.later(days=10)  # Saturday 10-10 is a working day: stage 1 (due 10-08) is late
    parent = await h.staff_case(w.client, w.lead, no)
    assert parent["bundle"]["stages"][0]["overdue"] is True
    assert f"{no}-01" in await h.staff_list(w.client, w.lead, view="overdue")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b["bundle"]["stages"][0].update(promised_days=20), "超过成员事项"),
        (lambda b: b["bundle"]["stages"][0].update(matters=[A, "4308-XX-NO-999"]), "不存在或未在办理"),
    ],
)
async def test_a_bundle_that_contradicts_its_members_is_refused_at_publish(world, admin_headers, change, reason):
    w = world
    content = copy.deepcopy(bundle_entry())
    content.pop("code")
    change(content)
    content["promised_limit_days"] = sum(s["promised_days"] for s in content["bundle"]["stages"])
    content["legal_limit_days"] = max(content["legal_limit_days"], content["promised_limit_days"])
    _, r = await w.client.post(
        "/api/v1/admin/matters", json={"code": "4308-YJS-TEST-002", "content": content}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    _, r = await w.client.post("/api/v1/admin/matters/4308-YJS-TEST-002/versions/1/publish", headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json["error"]["code"] == "BUNDLE_INVALID"
    assert any(reason in x for x in r.json["error"]["details"]["reasons"])


async def test_a_bundle_whose_stages_do_not_add_up_is_refused(world, admin_headers):
    content = bundle_entry()
    content.pop("code")
    content["promised_limit_days"] = 2
    _, r = await world.client.post(
        "/api/v1/admin/matters", json={"code": "4308-YJS-TEST-003", "content": content}, headers=admin_headers
    )
    _, r = await world.client.post("/api/v1/admin/matters/4308-YJS-TEST-003/versions/1/publish", headers=admin_headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "GUIDE_INVALID"
    assert "各阶段承诺时限之和" in str(r.json["error"]["details"])


RACE = "4308-YJS-TEST-009"


@pytest.mark.postgres
async def test_two_departments_deciding_a_stage_at_once_open_the_next_stage_once(world, admin_headers):
    """Row locks, not luck: the last two parts of a stage approved at the same moment, many times over."""
    import asyncio

    w = world
    entry = bundle_entry(
        code=RACE,
        name="并发测试一件事",
        materials=[{"name": FORM, "file_types": ["pdf"], "members": [A, B, C]}],
        bundle={
            "stages": [
                {"name": "并联阶段", "matters": [A, B], "promised_days": 1},
                {"name": "后续阶段", "matters": [C], "promised_days": 2},
            ]
        },
    )
    await matters.import_catalogue(w.client.sanic_app.ctx.catalogue, data=catalogue(entry))
    numbers = []
    for _ in range(6):
        form = await h.upload(w.client, w.headers, h.PDF, "申请表.pdf")
        body = {
            "matter_code": RACE,
            "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
            "materials": [{"name": FORM, "upload_ids": [form]}],
            "delivery": {"method": "window"},
        }
        _, r = await w.client.post(
            "/api/v1/cases", json=body, headers={**w.headers, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert r.status_code == 201, r.text
        no = r.json["case_no"]
        await ok(await h.act(w.client, w.lead, no, "accept"))
        await ok(await h.act(w.client, w.lead, f"{no}-01", "start_review"))
        await ok(await h.act(w.client, w.fund, f"{no}-02", "start_review"))
        numbers.append(no)
    answers = await asyncio.gather(
        *(
            h.act(w.client, headers, f"{no}-{n}", "approve")
            for no in numbers
            for headers, n in ((w.lead, "01"), (w.fund, "02"))
        )
    )
    assert [r.status_code for r in answers] == [200] * len(answers)
    for no in numbers:
        parent = await Case.get(case_no=no)
        parts = await Case.filter(bundle_id=parent.id).order_by("case_no").values_list("case_no", "stage")
        assert parts == [(f"{no}-01", 1), (f"{no}-02", 1), (f"{no}-03", 2)], parts
        opened = await CaseEvent.filter(case_id=parent.id, action="open_stage").count()
        assert opened == 1 and parent.status == "under_review"


async def test_a_bundle_is_found_scanned_and_read_like_a_matter(world):
    """Search finds it, its printed code resolves to its guide, and the guide carries stages and members."""
    from qr.models import Code

    w = world
    _, r = await w.client.get("/api/v1/matters", params={"q": "一件事"})
    assert r.status_code == 200, r.text
    kinds = {m["code"]: m["kind"] for m in r.json["items"]}
    assert kinds[BUNDLE] == "bundle"
    _, r = await w.client.get("/m", params={"q": "测试开办"})
    assert r.status_code == 200 and '<span class="badge bundle">一件事</span>' in r.text
    _, r = await w.client.get("/api/v1/matters", params={"q": A})
    assert [m["kind"] for m in r.json["items"]] == ["matter"]
    slug = (await Code.get(matter_code=BUNDLE, is_default=True)).slug
    _, r = await w.client.get(f"/q/{slug}", headers={"Accept": "application/json"})
    assert r.status_code in {200, 302, 303}, r.text
    _, r = await w.client.get(f"/api/v1/matters/{BUNDLE}")
    assert r.status_code == 200, r.text
    guide = r.json
    assert guide["type"] == "bundle" and guide["type_name"] == "一件事（主题服务）"
    assert [s["matters"] for s in guide["bundle"]["stages"]] == [[A], [B, C]]
    assert {m["name"]: m["members"] for m in guide["materials"]}[ID] == [A, B]


async def test_a_member_of_an_offered_bundle_cannot_be_retired(world, admin_headers):
    _, r = await world.client.post(f"/api/v1/admin/matters/{B}/retire", json={}, headers=admin_headers)
    assert r.status_code == 409, r.text
    assert r.json["error"]["code"] == "MATTER_IN_BUNDLE" and r.json["error"]["details"]["bundles"] == [BUNDLE]
    _, r = await world.client.post(f"/api/v1/admin/matters/{BUNDLE}/retire", json={}, headers=admin_headers)
    assert r.status_code == 200, r.text
    _, r = await world.client.post(f"/api/v1/admin/matters/{B}/retire", json={}, headers=admin_headers)
    assert r.status_code == 200, r.text


async def test_a_decided_part_leaves_its_departments_deadline_lists(world):
    """Approved, a part waits for the bundle's delivery: its own clock has stopped, it is nobody's overdue."""
    w = world
    no = (await apply(w))["case_no"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    await ok(await h.act(w.client, w.lead, f"{no}-01", "start_review"))
    await ok(await h.act(w.client, w.lead, f"{no}-01", "approve"))
    await w.later(days=20)
    part = await h.staff_case(w.client, w.lead, f"{no}-01")
    assert part["status"] == "approved" and part["sla"]["state"] == "stopped"
    overdue = await h.staff_list(w.client, w.lead, view="overdue")
    assert f"{no}-01" not in overdue and no in overdue  # the bundle is what is late now
    assert f"{no}-02" in await h.staff_list(w.client, w.fund, view="overdue")
