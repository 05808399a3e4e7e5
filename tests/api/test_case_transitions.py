"""Case moves through the HTTP API: every illegal action in every status is 409 naming the status, actions
check their own data (reason, materials, EMS tracking number), the 补正 round trip, withdrawal, who may act
on which case, the staff lists (mine / due_soon / overdue) and one event and one notification per move."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from app.cases.models import CaseEvent
from app.matters import service as matters
from app.notify.models import Notification
from tests.api import case_helpers as h
from tests.api.case_helpers import ID_CARD, MATTER

STAFF_ACTIONS = (
    "accept",
    "reject",
    "require_correction",
    "start_review",
    "suspend",
    "resume",
    "approve",
    "deny",
    "deliver",
    "complete",
)
# What a reviewer may do in each status, in table order (the documented lifecycle, written out by hand).
REVIEWER_ALLOWED: dict[str, list[str]] = {
    "submitted": ["accept", "reject", "require_correction"],
    "resubmitted": ["accept", "reject", "require_correction"],
    "correction_required": [],
    "accepted": ["start_review", "suspend"],
    "under_review": ["suspend", "approve", "deny"],
    "suspended": ["resume"],
    "approved": ["deliver"],
    "denied": ["deliver"],
    "delivered": ["complete"],
    "rejected": [],
    "completed": [],
    "withdrawn": [],
}
WITHDRAWABLE = {"submitted", "correction_required", "resubmitted"}
# Everything any action could need: a 409 must then come from the state machine alone.
FULL_ARGS = {"reason": "测试原因", "materials": [ID_CARD], "procedure": "现场核查", "tracking_no": "EA123456789CN"}


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff):
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=h.catalogue())
    citizen, citizen_headers = await make_citizen()
    reviewer, reviewer_headers = await make_staff("reviewer", departments=["scjgj"])
    return SimpleNamespace(
        client=client,
        clock=fake_clock,
        citizen=citizen,
        citizen_headers=citizen_headers,
        reviewer=reviewer,
        headers=reviewer_headers,
    )


def error(r) -> dict:
    return r.json["error"]


async def counts(case_no: str) -> tuple[int, int]:
    """(timeline events, notifications) of a case, straight from the tables."""
    from app.cases.models import Case

    case = await Case.get(case_no=case_no)
    events = await CaseEvent.filter(case_id=case.id).count()
    notes = await Notification.filter(subject_type="case", subject_id=case_no).count()
    return events, notes


# ---------------------------------------------------------------- illegal moves: 409 naming the status


@pytest.mark.parametrize("status", list(REVIEWER_ALLOWED))
async def test_every_illegal_action_is_409_naming_the_current_status(world, status):
    client = world.client
    case_no = await h.drive(client, world.citizen_headers, world.headers, status)
    before = await h.staff_case(client, world.headers, case_no)
    assert before["actions"] == REVIEWER_ALLOWED[status]
    illegal = [a for a in STAFF_ACTIONS if a not in REVIEWER_ALLOWED[status]]
    assert illegal  # every status refuses something
    for action in illegal:
        for args in (FULL_ARGS, {}):
            r = await h.act(client, world.headers, case_no, action, **args)
            assert r.status_code == 409, (status, action, args, r.text)
            err = error(r)
            assert err["code"] == "ILLEGAL_TRANSITION", (status, action)
            assert err["details"]["status"] == status, (status, action)
            assert err["details"]["action"] == action
            assert err["details"]["allowed"] == REVIEWER_ALLOWED[status]
    # The citizen's own moves are refused the same way where the status does not allow them.
    if status not in WITHDRAWABLE:
        r = await h.withdraw(client, world.citizen_headers, case_no)
        assert r.status_code == 409, (status, r.text)
        assert error(r)["code"] == "ILLEGAL_TRANSITION" and error(r)["details"]["status"] == status
    if status != "correction_required":
        r = await h.resubmit(client, world.citizen_headers, case_no)
        assert r.status_code == 409, (status, r.text)
        assert error(r)["code"] == "ILLEGAL_TRANSITION" and error(r)["details"]["status"] == status
    # Nothing changed: same status, no event written, no notification queued.
    after = await h.staff_case(client, world.headers, case_no)
    assert after["status"] == status
    assert len(after["timeline"]) == len(before["timeline"]) == len(h.PATHS[status]) + 1
    assert len(after["notifications"]) == len(before["notifications"])


@pytest.mark.parametrize("action", ["withdraw", "resubmit", "submit", "frobnicate"])
async def test_actions_staff_cannot_take_are_refused_by_the_schema(world, action):
    case_no = (await h.submit(world.client, world.citizen_headers))["case_no"]
    r = await h.act(world.client, world.headers, case_no, action)
    assert r.status_code == 422 and error(r)["code"] == "INVALID_INPUT", r.text
    assert (await h.staff_case(world.client, world.headers, case_no))["status"] == "submitted"


@pytest.mark.parametrize("origin", ["accepted", "under_review"])
async def test_resume_returns_to_the_status_the_suspension_interrupted(world, origin):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, origin)
    r = await h.act(world.client, world.headers, case_no, "suspend", **h.ARGS["suspend"])
    assert r.status_code == 200 and r.json["status"] == "suspended", r.text
    assert r.json["actions"] == ["resume"]
    r = await h.act(world.client, world.headers, case_no, "resume")
    assert r.status_code == 200, r.text
    assert r.json["status"] == origin
    assert r.json["actions"] == REVIEWER_ALLOWED[origin]


# ---------------------------------------------------------------- the actions' own data


@pytest.mark.parametrize(
    ("action", "status", "extra"),
    [
        ("reject", "submitted", {}),
        ("require_correction", "submitted", {"materials": [ID_CARD]}),
        ("suspend", "accepted", {"procedure": "现场核查"}),
        ("deny", "under_review", {}),
    ],
)
async def test_a_reason_is_required(world, action, status, extra):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, status)
    for args in ({}, {"reason": ""}, {"reason": "   "}):
        r = await h.act(world.client, world.headers, case_no, action, **extra, **args)
        assert r.status_code == 422, (args, r.text)
        assert error(r)["code"] == "ACTION_INVALID"
        assert error(r)["details"]["missing"] == ["reason"]
    assert await counts(case_no) == (len(h.PATHS[status]) + 1,) * 2
    r = await h.act(world.client, world.headers, case_no, action, reason="  有原因  ", **extra)
    assert r.status_code == 200, r.text
    assert r.json["timeline"][-1]["data"]["reason"] == "有原因"


async def test_require_correction_names_materials_of_the_guide(world):
    case_no = (await h.submit(world.client, world.citizen_headers))["case_no"]
    for materials in (["营业执照正本"], [ID_CARD, "营业执照正本"], [], None):
        args = {"reason": "材料不全"} | ({"materials": materials} if materials is not None else {})
        r = await h.act(world.client, world.headers, case_no, "require_correction", **args)
        assert r.status_code == 422, (materials, r.text)
        assert error(r)["code"] == "ACTION_INVALID"
        assert error(r)["details"]["unknown"] == [m for m in materials or [] if m != ID_CARD]
    assert (await h.staff_case(world.client, world.headers, case_no))["status"] == "submitted"


async def test_suspend_takes_only_a_special_procedure_of_the_guide(world):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, "accepted")
    r = await h.act(world.client, world.headers, case_no, "suspend", reason="核查", procedure="专家评审")
    assert r.status_code == 422 and error(r)["code"] == "ACTION_INVALID", r.text
    assert error(r)["details"]["procedures"] == ["现场核查"]
    r = await h.act(world.client, world.headers, case_no, "suspend", reason="核查", procedure="现场核查")
    assert r.status_code == 200 and r.json["status"] == "suspended", r.text


async def test_ems_delivery_needs_a_tracking_number(world):
    client = world.client
    delivery = {"method": "ems", "address": h.ADDRESS}
    case_no = await h.drive(client, world.citizen_headers, world.headers, "approved", delivery=delivery)
    r = await h.act(client, world.headers, case_no, "deliver")
    assert r.status_code == 422 and error(r)["code"] == "ACTION_INVALID", r.text
    assert error(r)["details"]["missing"] == ["tracking_no"]
    r = await h.act(client, world.headers, case_no, "deliver", tracking_no="EMS-1")  # not a tracking number
    assert r.status_code == 422 and error(r)["code"] == "INVALID_INPUT", r.text
    assert (await h.staff_case(client, world.headers, case_no))["status"] == "approved"
    r = await h.act(client, world.headers, case_no, "deliver", tracking_no="EA123456789CN")
    assert r.status_code == 200, r.text
    body = r.json
    assert body["status"] == "delivered"
    assert body["delivery"]["method"] == "ems"
    assert body["delivery"]["tracking_no"] == "EA123456789CN"
    assert body["delivery"]["address"] == h.ADDRESS  # staff see the whole address
    assert "EA123456789CN" in body["timeline"][-1]["text"]
    _, r = await client.get(f"/api/v1/cases/{case_no}", headers=world.citizen_headers)
    assert r.status_code == 200, r.text
    assert r.json["delivery"]["tracking_no"] == "EA123456789CN"
    assert r.json["delivery"]["address"]["detail"] == "****"  # the citizen's view is masked


async def test_window_delivery_needs_no_tracking_number(world):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, "denied")
    r = await h.act(world.client, world.headers, case_no, "deliver")
    assert r.status_code == 200, r.text
    assert r.json["status"] == "delivered"
    assert r.json["delivery"] == {"method": "window", "tracking_no": None}


# ---------------------------------------------------------------- 补正 and withdrawal


async def test_correction_round_trip(world):
    client, citizen = world.client, world.citizen_headers
    case_no = (await h.submit(client, citizen))["case_no"]
    r = await h.act(client, world.headers, case_no, "require_correction", reason="照片不清晰", materials=[ID_CARD])
    assert r.status_code == 200, r.text
    assert r.json["status"] == "correction_required"
    assert r.json["correction"] == {"materials": [ID_CARD], "reason": "照片不清晰"}
    _, mine = await client.get(f"/api/v1/cases/{case_no}", headers=citizen)
    assert mine.json["correction"]["materials"] == [ID_CARD]

    # Only what the 补正 asked for: another material of the guide, or one the guide does not have, is refused.
    r = await h.resubmit(client, citizen, case_no, name=h.FORM, data=h.PDF)
    assert r.status_code == 422 and error(r)["code"] == "MATERIAL_UNKNOWN", r.text
    assert error(r)["details"]["materials"] == [ID_CARD]
    r = await h.resubmit(client, citizen, case_no, name="营业执照正本")
    assert r.status_code == 422 and error(r)["code"] == "MATERIAL_UNKNOWN", r.text
    assert (await h.staff_case(client, world.headers, case_no))["status"] == "correction_required"

    new_upload = await h.upload(client, citizen)
    body = {"materials": [{"name": ID_CARD, "upload_ids": [new_upload]}]}
    _, r = await client.post(f"/api/v1/cases/{case_no}/resubmit", json=body, headers=citizen)
    assert r.status_code == 200, r.text
    assert r.json["status"] == "resubmitted"
    assert r.json["correction"] is None
    rounds = [(m["name"], m["round"]) for m in r.json["materials"]]
    assert rounds == [(h.FORM, 1), (ID_CARD, 1), (ID_CARD, 2)]
    assert r.json["materials"][-1]["upload_id"] == new_upload

    r = await h.act(client, world.headers, case_no, "accept")
    assert r.status_code == 200 and r.json["status"] == "accepted", r.text
    assert [e["action"] for e in r.json["timeline"]] == ["submit", "require_correction", "resubmit", "accept"]


async def test_only_the_applicant_may_resubmit_or_withdraw(world, make_citizen):
    _, stranger = await make_citizen()
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, "correction_required")
    r = await h.resubmit(world.client, stranger, case_no)
    assert r.status_code == 404 and error(r)["code"] == "CASE_NOT_FOUND", r.text
    r = await h.withdraw(world.client, stranger, case_no)
    assert r.status_code == 404 and error(r)["code"] == "CASE_NOT_FOUND", r.text
    assert (await h.staff_case(world.client, world.headers, case_no))["status"] == "correction_required"


@pytest.mark.parametrize("status", sorted(WITHDRAWABLE))
async def test_withdraw_before_acceptance(world, status):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, status)
    r = await h.withdraw(world.client, world.citizen_headers, case_no)
    assert r.status_code == 200, r.text
    assert r.json["status"] == "withdrawn"
    assert r.json["timeline"][-1]["action"] == "withdraw"
    staff_view = await h.staff_case(world.client, world.headers, case_no)
    assert staff_view["status"] == "withdrawn" and staff_view["actions"] == []
    assert staff_view["timeline"][-1]["data"] == {"reason": "不办了"}


async def test_withdraw_after_acceptance_is_409(world):
    case_no = await h.drive(world.client, world.citizen_headers, world.headers, "accepted")
    r = await h.withdraw(world.client, world.citizen_headers, case_no)
    assert r.status_code == 409, r.text
    assert error(r)["code"] == "ILLEGAL_TRANSITION"
    assert error(r)["details"]["status"] == "accepted"
    assert (await h.staff_case(world.client, world.headers, case_no))["status"] == "accepted"


# ---------------------------------------------------------------- scope: department, hall, role


async def test_scope_by_department_hall_and_role(world, make_staff):
    client = world.client
    case_no = (await h.submit(client, world.citizen_headers))["case_no"]  # scjgj, hall main
    _, other_reviewer = await make_staff("reviewer", departments=["gjjzx"])
    _, other_clerk = await make_staff("clerk", hall="gongjijin")
    _, clerk = await make_staff("clerk", hall="main")
    _, admin = await make_staff("admin")

    for headers in (other_reviewer, other_clerk):
        r = await h.act(client, headers, case_no, "accept")
        assert r.status_code == 403 and error(r)["code"] == "CASE_OUT_OF_SCOPE", r.text
        _, r = await client.get(f"/api/v1/staff/cases/{case_no}", headers=headers)
        assert r.status_code == 403 and error(r)["code"] == "CASE_OUT_OF_SCOPE", r.text
        assert case_no not in await h.staff_list(client, headers)
    assert await counts(case_no) == (1, 1)

    r = await h.act(client, clerk, case_no, "accept")
    assert r.status_code == 200 and r.json["status"] == "accepted", r.text
    assert r.json["actions"] == []  # a clerk takes no step of the review
    r = await h.act(client, clerk, case_no, "start_review")
    assert r.status_code == 409, r.text
    assert error(r)["code"] == "ILLEGAL_TRANSITION"
    assert error(r)["details"]["status"] == "accepted"
    assert error(r)["details"]["allowed"] == []
    r = await h.act(client, admin, case_no, "start_review")
    assert r.status_code == 200 and r.json["status"] == "under_review", r.text


async def test_a_reviewer_acts_within_their_own_department(world, make_staff):
    client = world.client
    _, gjj_reviewer = await make_staff("reviewer", departments=["gjjzx"])
    _, gjj_clerk = await make_staff("clerk", hall="gongjijin")
    gjj_case = (await h.submit(client, world.citizen_headers, matter=h.OTHER_MATTER))["case_no"]
    scj_case = (await h.submit(client, world.citizen_headers))["case_no"]
    r = await h.act(client, world.headers, gjj_case, "accept")  # the scjgj reviewer
    assert r.status_code == 403 and error(r)["code"] == "CASE_OUT_OF_SCOPE", r.text
    assert await h.staff_list(client, gjj_reviewer) == [gjj_case]
    assert await h.staff_list(client, gjj_clerk) == [gjj_case]
    assert await h.staff_list(client, world.headers) == [scj_case]
    r = await h.act(client, gjj_clerk, gjj_case, "accept")
    assert r.status_code == 200, r.text
    r = await h.act(client, gjj_reviewer, gjj_case, "start_review")
    assert r.status_code == 200 and r.json["status"] == "under_review", r.text


# ---------------------------------------------------------------- staff lists: mine / due_soon / overdue


async def test_staff_lists_mine_due_soon_and_overdue(world, make_staff, auth_deps):
    client, clock, citizen = world.client, world.clock, world.citizen_headers
    r1, r2 = world.reviewer, (await make_staff("reviewer", departments=["scjgj"]))[0]
    admin = (await make_staff("admin"))[0]
    heads = {}

    async def login():
        for name, staff in (("r1", r1), ("r2", r2), ("admin", admin)):
            heads[name] = await h.staff_headers(auth_deps, staff)

    async def new_case(matter=MATTER):
        case_no = (await h.submit(client, citizen, matter=matter))["case_no"]
        clock.advance(minutes=1)  # distinct submission times: a stable order
        return case_no

    async def run(who, case_no, *actions):
        for action in actions:
            r = await h.act(client, heads[who], case_no, action, **h.ARGS.get(action, {}))
            assert r.status_code == 200, (action, r.text)

    await login()
    # 2026-09-30 (Wed), the last working day before National Day (10-01..10-07 closed; Sat 10-10 works).
    a = await new_case(h.LONG_MATTER)  # 10 days: warn on 10-16 (8th working day), due 10-20
    b = await new_case()  # 3 days: due 10-10 (10-08, 10-09, Sat 10-10); ceil(80 % of 3) = 3, so warn 10-10 too
    c = await new_case()  # never accepted: no clock
    d = await new_case()  # suspended: the clock stops
    e = await new_case()  # delivered: the clock has stopped
    g = await new_case()  # approved, not yet delivered: the clock still runs
    f = await new_case(h.OTHER_MATTER)  # gjjzx: outside both reviewers' scope
    await run("r1", a, "accept")
    await run("r1", b, "accept")
    await run("r2", d, "accept", "suspend")
    await run("r2", e, "accept", "start_review", "approve", "deliver")
    await run("r2", g, "accept", "start_review", "approve")
    await run("admin", f, "accept")

    newest_first = [g, e, d, c, b, a]
    assert await h.staff_list(client, heads["r1"]) == newest_first
    assert await h.staff_list(client, heads["r1"], view="all") == newest_first
    assert await h.staff_list(client, heads["r1"], view="mine") == [b, a]
    assert await h.staff_list(client, heads["r2"], view="mine") == [g, e, d]
    assert await h.staff_list(client, heads["admin"], view="mine") == [f]
    assert await h.staff_list(client, heads["r1"], status="suspended") == [d]

    # (days after 09-30, due_soon, overdue) for the scjgj reviewer; d, e and c never show.
    timeline = [
        (0, [], []),
        (9, [], []),  # 10-09 Fri: b has used 2 of 3 days (67 %)
        (10, [b, g], []),  # 10-10 the 调休 Saturday: b and g are due today
        (11, [], [b, g]),  # 10-11 Sunday: past due
        (12, [], [b, g]),  # 10-12 Mon
        (15, [], [b, g]),  # 10-15 Thu: a has used 7 of 10 days
        (16, [a], [b, g]),  # 10-16 Fri: a has used 8 of 10 days (80 %)
        (20, [a], [b, g]),  # 10-20 Tue: a is due today
        (21, [], [b, g, a]),  # 10-21 Wed: a is overdue too (ordered by due date)
    ]
    elapsed = 0
    for days, due_soon, overdue in timeline:
        clock.advance(days=days - elapsed)
        elapsed = days
        await login()
        assert await h.staff_list(client, heads["r1"], view="due_soon") == due_soon, days
        assert await h.staff_list(client, heads["r1"], view="overdue") == overdue, days
        _, r = await client.get("/api/v1/staff/cases", headers=heads["r1"], params={"view": "overdue"})
        assert {item["sla"]["state"] for item in r.json["items"]} <= {"red"}
        _, r = await client.get("/api/v1/staff/cases", headers=heads["r1"], params={"view": "due_soon"})
        assert {item["sla"]["state"] for item in r.json["items"]} <= {"yellow"}
        assert await h.staff_list(client, heads["admin"], view="overdue") == (
            sorted([*overdue, f], key=[b, g, f, a].index) if days >= 11 else overdue
        ), days
    sla = (await h.staff_case(client, heads["r1"], d))["sla"]
    assert sla["state"] == "paused" and sla["due_on"] is None


# ---------------------------------------------------------------- one event and one notification per move


async def test_each_move_writes_one_event_and_one_notification(world):
    client, citizen = world.client, world.citizen_headers
    body = await h.submit(client, citizen, delivery={"method": "ems", "address": h.ADDRESS})
    case_no = body["case_no"]
    assert await counts(case_no) == (1, 1)
    steps = [
        ("require_correction", "submitted", "correction_required", "staff"),
        ("resubmit", "correction_required", "resubmitted", "citizen"),
        ("accept", "resubmitted", "accepted", "staff"),
        ("suspend", "accepted", "suspended", "staff"),
        ("resume", "suspended", "accepted", "staff"),
        ("start_review", "accepted", "under_review", "staff"),
        ("approve", "under_review", "approved", "staff"),
        ("deliver", "approved", "delivered", "staff"),
        ("complete", "delivered", "completed", "staff"),
    ]
    case_id = uuid.UUID(body["id"])
    for n, (action, source, target, actor) in enumerate(steps, start=2):
        if action == "deliver":
            r = await h.act(client, world.headers, case_no, action, tracking_no="EA123456789CN")
            assert r.status_code == 200, r.text
        else:
            await h.step(client, citizen, world.headers, case_no, action)
        assert await counts(case_no) == (n, n), action
        event = await CaseEvent.filter(case_id=case_id).order_by("-id").first()
        assert (event.action, event.from_status, event.to_status, event.actor_kind) == (action, source, target, actor)
        assert event.actor_id == (str(world.citizen.id) if actor == "citizen" else str(world.reviewer.id))
        matching = [
            row
            for row in await Notification.filter(subject_type="case", subject_id=case_no)
            if row.payload["status"] == target and row.payload["text"] == event.public_text
        ]
        assert len(matching) == 1, action
        assert matching[0].kind == "case_progress" and matching[0].citizen_id == world.citizen.id
    # A refused move writes neither.
    r = await h.act(client, world.headers, case_no, "accept")
    assert r.status_code == 409
    assert await counts(case_no) == (len(steps) + 1,) * 2


async def test_withdrawal_writes_one_event_and_one_notification(world):
    case_no = (await h.submit(world.client, world.citizen_headers))["case_no"]
    r = await h.withdraw(world.client, world.citizen_headers, case_no)
    assert r.status_code == 200, r.text
    assert await counts(case_no) == (2, 2)
    statuses = sorted(n.payload["status"] for n in await Notification.filter(subject_id=case_no))
    assert statuses == ["submitted", "withdrawn"]
