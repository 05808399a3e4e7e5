"""Rectification of bad ratings (差评整改) through HTTP: the deadline in working days, verify → rectify →
reply → close in order, the citizen's follow-up, scope, contests and an administrator's decision, the
overdue list and the record of every step.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai), the day before the National Day holiday
(10-01..10-07); Saturday 10-10 is a 调休 working day. Access tokens live 15 minutes: every move of the
clock is followed by fresh tokens.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from app.clock import SHANGHAI
from app.feedback.models import Rating, Rectification, RectificationStatus, RectificationStep
from app.matters import service as catalogue
from app.notify.models import Notification, NotificationStatus
from tests.api import case_helpers as ch

COMMENT = "跑了三次才办成"


@pytest.fixture
def settings(base_settings, request):
    """The test settings, with the overrides an indirect parametrisation passes."""
    overrides = getattr(request, "param", None)
    return base_settings.replace(**overrides) if overrides else base_settings


@pytest.fixture
async def seeded(fake_clock, client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=ch.catalogue())
    return client


def at(fake_clock, when: str) -> None:
    """Set the clock to a Shanghai wall-clock time, e.g. "2026-10-08 09:00"."""
    fake_clock.current = dt.datetime.fromisoformat(when).replace(tzinfo=SHANGHAI).astimezone(dt.UTC)


def assert_error(r, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.json["error"]["code"] == code, r.text
    assert r.json["error"]["message"]
    return r.json["error"]


async def bad_rating(client, citizen, staff, level: int = 1, comment: str = COMMENT, **drive_kw: Any) -> dict[str, Any]:
    """A completed case of the citizen's rated `level`; the 201 body (with its rectification)."""
    case_no = await ch.drive(client, citizen, staff, "completed", **drive_kw)
    body = {"subject_type": "case", "subject_id": case_no, "level": level, "tags": ["多次跑腿"], "comment": comment}
    _, r = await client.post("/api/v1/ratings", json=body, headers=citizen)
    assert r.status_code == 201, r.text
    return r.json


async def step(client, headers, rect_id: str, action: str, **body: Any):
    _, r = await client.post(f"/api/v1/staff/rectifications/{rect_id}/steps", json={"action": action, **body},
                             headers=headers)  # fmt: skip
    return r


async def stepped(client, headers, rect_id: str, action: str, **body: Any) -> dict[str, Any]:
    r = await step(client, headers, rect_id, action, **body)
    assert r.status_code == 200, (action, r.text)
    return r.json


async def decide(client, headers, rect_id: str, decision: str, note: str = "经核查作出裁定"):
    _, r = await client.post(f"/api/v1/admin/rectifications/{rect_id}/decision",
                             json={"decision": decision, "note": note}, headers=headers)  # fmt: skip
    return r


async def detail(client, headers, rect_id: str) -> dict[str, Any]:
    _, r = await client.get(f"/api/v1/staff/rectifications/{rect_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json


async def listed(client, headers, **params: Any) -> list[str]:
    _, r = await client.get("/api/v1/staff/rectifications", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json["total"] == len(r.json["items"])
    return [item["id"] for item in r.json["items"]]


async def follow_up(client, citizen, rating_id: str) -> dict[str, Any]:
    _, r = await client.get(f"/api/v1/ratings/{rating_id}", headers=citizen)
    assert r.status_code == 200, r.text
    return r.json


def out_of_order(r, status: str, action: str) -> dict[str, Any]:
    error = assert_error(r, 409, "RECTIFICATION_STEP_OUT_OF_ORDER")
    assert error["details"]["status"] == status and error["details"]["action"] == action
    assert f"「{status}」" in error["message"]
    return error


# -- the deadline ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "due_on"),
    [
        ({"rectify_days": 5}, "2026-10-13"),  # 10-08, 10-09, 10-10 (调休), 10-12, 10-13
        ({"rectify_days": 1}, "2026-10-08"),
        ({"rectify_days": 3}, "2026-10-10"),
        ({"rectify_days": 4}, "2026-10-12"),  # Sunday 10-11 is no working day
    ],
    indirect=["settings"],
)
async def test_the_deadline_counts_working_days_across_the_holiday(seeded, settings, make_citizen, make_staff, due_on):
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    rect = (await bad_rating(seeded, citizen, reviewer))["rectification"]
    assert rect["due_on"] == due_on and rect["overdue"] is False
    assert (await Rectification.get(id=rect["id"])).due_on == dt.date.fromisoformat(due_on)


# -- the full path -----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"rectify_days": 5}], indirect=True)
async def test_a_bad_rating_runs_to_its_closed_rectification_with_every_step_recorded(
    seeded, settings, fake_clock, make_citizen, make_staff, auth_deps
):
    client = seeded
    phone = "13900001313"
    citizen_row, citizen = await make_citizen(phone=phone)
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    rating = await bad_rating(client, citizen, reviewer, level=2)
    rect = rating["rectification"]
    rect_id = rect["id"]
    assert rect == {
        "id": rect_id,
        "status": "open",
        "due_on": "2026-10-13",
        "overdue": False,
        "reply": None,
        "closed_at": None,
        "steps": [
            {"action": "open", "label": "收到差评，已转责任部门", "status": "open", "at": "2026-09-30T10:00:00+08:00"}
        ],
    }

    view = await detail(client, reviewer, rect_id)
    assert view["rating"]["id"] == rating["id"] and view["rating"]["level"] == 2
    assert view["rating"]["comment"] == COMMENT and view["rating"]["excluded"] is False
    assert "rectification" not in view["rating"]
    assert view["steps"][0]["actor"] == {"kind": "system", "id": None}
    assert view["steps"][0]["note"] == f"不满意：{COMMENT}"
    _, r = await client.get("/api/v1/staff/rectifications", headers=reviewer)
    (item,) = r.json["items"]
    assert item["id"] == rect_id and item["status"] == "open"
    assert item["rating"] == {"level": 2, "level_name": "不满意", "comment": COMMENT, "matter_code": ch.MATTER,
                              "subject_type": "case"}  # fmt: skip

    moves = [
        ("2026-10-08 09:00", "verify", {"note": "内部：调阅记录，材料一次告知不全属实"}, "verified"),
        ("2026-10-09 15:00", "rectify", {"note": "内部：对窗口人员开展一次性告知培训"}, "rectified"),
        ("2026-10-10 11:00", "reply", {"note": "内部：电话回访", "reply": "  已整改，感谢您的监督。  "}, "replied"),
        ("2026-10-12 16:30", "close", {"note": "内部：办结"}, "closed"),
    ]
    for when, action, body, status in moves:
        at(fake_clock, when)
        reviewer = await ch.staff_headers(auth_deps, reviewer_row)
        result = await stepped(client, reviewer, rect_id, action, **body)
        assert result["status"] == status and result["steps"][-1]["action"] == action
    assert result["reply"] == "已整改，感谢您的监督。"
    assert result["closed_at"] == "2026-10-12T16:30:00+08:00" and result["overdue"] is False

    actor = {"kind": "staff", "id": str(reviewer_row.id)}
    view = await detail(client, reviewer, rect_id)
    assert view["status"] == "closed" and view["due_on"] == "2026-10-13"
    assert view["steps"] == [
        {"action": "open", "label": "收到差评，已转责任部门", "status": "open", "at": "2026-09-30T10:00:00+08:00",
         "note": f"不满意：{COMMENT}", "actor": {"kind": "system", "id": None}},
        {"action": "verify", "label": "核实情况", "status": "verified", "at": "2026-10-08T09:00:00+08:00",
         "note": "内部：调阅记录，材料一次告知不全属实", "actor": actor},
        {"action": "rectify", "label": "落实整改", "status": "rectified", "at": "2026-10-09T15:00:00+08:00",
         "note": "内部：对窗口人员开展一次性告知培训", "actor": actor},
        {"action": "reply", "label": "答复评价人", "status": "replied", "at": "2026-10-10T11:00:00+08:00",
         "note": "内部：电话回访", "actor": actor},
        {"action": "close", "label": "整改办结", "status": "closed", "at": "2026-10-12T16:30:00+08:00",
         "note": "内部：办结", "actor": actor},
    ]  # fmt: skip
    rows = await RectificationStep.filter(rectification_id=rect_id).order_by("id")
    assert [(s.from_status, s.to_status) for s in rows] == [
        ("", "open"), ("open", "verified"), ("verified", "rectified"), ("rectified", "replied"), ("replied", "closed")
    ]  # fmt: skip

    # the citizen follows it up: the steps and the reply, not the internal notes nor who took them
    _, citizen = await make_citizen(phone=phone)
    _, r = await client.get(f"/api/v1/ratings/{rating['id']}", headers=citizen)
    assert r.status_code == 200, r.text
    follow = r.json["rectification"]
    assert follow["status"] == "closed" and follow["reply"] == "已整改，感谢您的监督。"
    assert follow["closed_at"] == "2026-10-12T16:30:00+08:00"
    assert [(s["action"], s["label"], s["status"], s["at"]) for s in follow["steps"]] == [
        (s["action"], s["label"], s["status"], s["at"]) for s in view["steps"]
    ]
    assert all(set(s) == {"action", "label", "status", "at"} for s in follow["steps"])
    assert "内部" not in r.text and str(reviewer_row.id) not in r.text
    _, r = await client.get("/api/v1/ratings", headers=citizen)
    assert r.json["items"][0]["rectification"] == follow
    assert "内部" not in r.text

    notes = await Notification.filter(kind="rating_reply")
    assert len(notes) == 1
    assert notes[0].citizen_id == citizen_row.id and notes[0].subject_id == rating["id"]
    assert notes[0].payload["reply"] == "已整改，感谢您的监督。" and notes[0].payload["level_name"] == "不满意"


async def test_good_ratings_open_no_rectification(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    for level in (3, 4, 5):
        assert (await bad_rating(client, citizen, reviewer, level=level))["rectification"] is None
    assert await Rectification.all().count() == 0
    assert await listed(client, reviewer) == []


# -- order ---------------------------------------------------------------------------------------------


async def test_each_step_out_of_order_is_409_naming_the_status(seeded, make_citizen, make_staff, admin_headers):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    rect_id = (await bad_rating(client, citizen, reviewer))["rectification"]["id"]

    reply = {"reply": "已整改"}
    error = out_of_order(await step(client, reviewer, rect_id, "rectify"), "open", "rectify")
    assert error["details"]["allowed"] == ["verify", "contest"]
    out_of_order(await step(client, reviewer, rect_id, "reply", **reply), "open", "reply")
    out_of_order(await step(client, reviewer, rect_id, "close"), "open", "close")
    out_of_order(await decide(client, admin_headers, rect_id, "uphold"), "open", "uphold")
    out_of_order(await decide(client, admin_headers, rect_id, "reject"), "open", "reject")

    await stepped(client, reviewer, rect_id, "verify", note="属实")
    out_of_order(await step(client, reviewer, rect_id, "verify"), "verified", "verify")
    out_of_order(await step(client, reviewer, rect_id, "reply", **reply), "verified", "reply")
    out_of_order(await step(client, reviewer, rect_id, "close"), "verified", "close")

    await stepped(client, reviewer, rect_id, "rectify", note="培训")
    error = out_of_order(await step(client, reviewer, rect_id, "contest", note="评价不实"), "rectified", "contest")
    assert error["details"]["allowed"] == ["reply"]
    out_of_order(await step(client, reviewer, rect_id, "close"), "rectified", "close")
    # a reply needs its text for the citizen (checked once the step is in order)
    for body in ({}, {"reply": ""}, {"reply": "   "}, {"note": "只有内部说明"}):
        assert_error(await step(client, reviewer, rect_id, "reply", **body), 422, "REPLY_REQUIRED")
    assert_error(await step(client, reviewer, rect_id, "reply", reply="长" * 1001), 422, "INVALID_INPUT")
    assert await Notification.filter(kind="rating_reply").count() == 0

    await stepped(client, reviewer, rect_id, "reply", **reply)
    out_of_order(await step(client, reviewer, rect_id, "rectify"), "replied", "rectify")
    out_of_order(await step(client, reviewer, rect_id, "reply", **reply), "replied", "reply")
    await stepped(client, reviewer, rect_id, "close")
    for action, body in (("verify", {}), ("close", {}), ("contest", {"note": "评价不实"}), ("reply", reply)):
        out_of_order(await step(client, reviewer, rect_id, action, **body), "closed", action)
    error = out_of_order(await decide(client, admin_headers, rect_id, "reject"), "closed", "reject")
    assert error["details"]["allowed"] == []

    assert_error(await step(client, reviewer, rect_id, "approve"), 422, "INVALID_INPUT")
    assert_error(await step(client, reviewer, rect_id, "uphold", note="自己裁定"), 422, "INVALID_INPUT")
    assert await RectificationStep.filter(rectification_id=rect_id).count() == 5  # open + the four that passed
    assert (await Rectification.get(id=rect_id)).status is RectificationStatus.closed
    notes = await Notification.filter(kind="rating_reply")
    assert len(notes) == 1 and notes[0].status is NotificationStatus.pending


# -- scope -----------------------------------------------------------------------------------------------


async def test_staff_of_another_department_or_hall_cannot_see_or_step(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, gjj = await make_staff("reviewer", departments=["gjjzx"])
    _, other_clerk = await make_staff("clerk", hall="gongjijin")
    _, main_clerk = await make_staff("clerk", hall="main")
    _, admin = await make_staff("admin")
    rect_id = (await bad_rating(client, citizen, reviewer))["rectification"]["id"]

    for headers in (gjj, other_clerk):
        _, r = await client.get(f"/api/v1/staff/rectifications/{rect_id}", headers=headers)
        assert assert_error(r, 403, "RECTIFICATION_OUT_OF_SCOPE")["details"] == {"department": "scjgj"}
        assert_error(await step(client, headers, rect_id, "verify"), 403, "RECTIFICATION_OUT_OF_SCOPE")
        assert_error(await step(client, headers, rect_id, "contest", note="不实"), 403, "RECTIFICATION_OUT_OF_SCOPE")
        assert await listed(client, headers) == []
    assert (await Rectification.get(id=rect_id)).status is RectificationStatus.open

    _, r = await client.get(f"/api/v1/staff/rectifications/{rect_id}", headers=citizen)
    assert r.status_code in {401, 403}, r.text
    _, r = await client.get("/api/v1/staff/rectifications/0b0c2a4e-0000-4000-8000-000000000000", headers=admin)
    assert_error(r, 404, "RECTIFICATION_NOT_FOUND")
    _, r = await client.get("/api/v1/staff/rectifications/nope", headers=admin)
    assert_error(r, 404, "RECTIFICATION_NOT_FOUND")

    # the hall's clerk, the department's reviewer and an administrator are in scope
    assert (
        await listed(client, main_clerk) == [rect_id] == await listed(client, admin) == await listed(client, reviewer)
    )
    assert (await stepped(client, main_clerk, rect_id, "verify", note="窗口核实"))["status"] == "verified"
    assert (await stepped(client, admin, rect_id, "rectify", note="督办"))["status"] == "rectified"
    view = await stepped(client, reviewer, rect_id, "reply", reply="已整改")
    kinds = [(s["action"], s["actor"]["kind"]) for s in view["steps"]]
    assert kinds == [("open", "system"), ("verify", "staff"), ("rectify", "staff"), ("reply", "staff")]
    assert len({s["actor"]["id"] for s in view["steps"][1:]}) == 3  # three different staff members


# -- contests --------------------------------------------------------------------------------------------


async def test_an_upheld_contest_dismisses_and_excludes_the_rating(seeded, make_citizen, make_staff, admin_headers):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    rating = await bad_rating(client, citizen, reviewer, level=1, comment="乱评")
    rect_id = rating["rectification"]["id"]
    await bad_rating(client, citizen, reviewer, level=5, comment="很好")

    async def by_matter() -> list[dict[str, Any]]:
        _, r = await client.get("/api/v1/admin/ratings/stats", params={"by": "matter"}, headers=admin_headers)
        assert r.status_code == 200, r.text
        return [
            {k: item[k] for k in ("matter", "total", "good", "bad", "satisfaction_rate")} for item in r.json["items"]
        ]

    assert await by_matter() == [{"matter": ch.MATTER, "total": 2, "good": 1, "bad": 1, "satisfaction_rate": 0.5}]

    for body in ({}, {"note": ""}, {"note": "   "}):
        assert_error(await step(client, reviewer, rect_id, "contest", **body), 422, "INVALID_INPUT")
    view = await stepped(client, reviewer, rect_id, "contest", note="评价人与办件无关，疑似恶意评价")
    assert view["status"] == "contested"
    assert view["steps"][-1]["note"] == "评价人与办件无关，疑似恶意评价"
    assert (await Rectification.get(id=rect_id)).resume_status is RectificationStatus.open
    for action in ("verify", "rectify", "close"):
        out_of_order(await step(client, reviewer, rect_id, action), "contested", action)
    out_of_order(await step(client, reviewer, rect_id, "contest", note="再次申诉"), "contested", "contest")

    # only an administrator decides
    assert_error(await decide(client, reviewer, rect_id, "uphold"), 403, "INSUFFICIENT_ROLE")
    _, clerk = await make_staff("clerk", hall="main")
    assert_error(await decide(client, clerk, rect_id, "uphold"), 403, "INSUFFICIENT_ROLE")
    assert_error(await decide(client, admin_headers, rect_id, "uphold", note="x"), 422, "INVALID_INPUT")
    assert_error(await decide(client, admin_headers, rect_id, "dismiss"), 422, "INVALID_INPUT")
    assert (await Rectification.get(id=rect_id)).status is RectificationStatus.contested

    r = await decide(client, admin_headers, rect_id, "uphold", note="核实为恶意评价，申诉成立")
    assert r.status_code == 200, r.text
    assert r.json["status"] == "dismissed" and r.json["closed_at"] == "2026-09-30T10:00:00+08:00"
    assert r.json["rating"]["excluded"] is True
    last = r.json["steps"][-1]
    assert (last["action"], last["status"], last["note"]) == ("uphold", "dismissed", "核实为恶意评价，申诉成立")
    assert last["actor"]["kind"] == "staff" and last["label"] == "申诉成立，评价不计入统计"
    assert (await Rating.get(id=rating["id"])).excluded is True
    assert await by_matter() == [{"matter": ch.MATTER, "total": 1, "good": 1, "bad": 0, "satisfaction_rate": 1.0}]

    out_of_order(await step(client, reviewer, rect_id, "verify"), "dismissed", "verify")
    out_of_order(await decide(client, admin_headers, rect_id, "reject"), "dismissed", "reject")
    follow = (await follow_up(client, citizen, rating["id"]))["rectification"]
    # The citizen sees a review, not the department's contest against their rating.
    assert follow["status"] == "reviewed" and follow["overdue"] is False
    assert [s["action"] for s in follow["steps"]] == ["open", "contest", "uphold"]
    assert [s["label"] for s in follow["steps"]][1:] == ["复核中", "复核完成"]
    assert "申诉" not in json.dumps(follow, ensure_ascii=False)
    assert "疑似恶意" not in json.dumps(follow, ensure_ascii=False)
    assert await Notification.filter(kind="rating_reply").count() == 0


async def test_a_rejected_contest_returns_to_where_it_was_and_the_path_continues(
    seeded, make_citizen, make_staff, admin_headers
):
    client = seeded
    _, citizen = await make_citizen()
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    rating = await bad_rating(client, citizen, reviewer, level=2)
    rect_id = rating["rectification"]["id"]

    # contested while open: rejected, back to open
    await stepped(client, reviewer, rect_id, "contest", note="认为评价不实")
    r = await decide(client, admin_headers, rect_id, "reject", note="评价属实，继续整改")
    assert r.status_code == 200 and r.json["status"] == "open" and r.json["rating"]["excluded"] is False
    assert (await Rectification.get(id=rect_id)).resume_status is None

    # contested once verified: rejected, back to verified, not to open
    await stepped(client, reviewer, rect_id, "verify", note="属实")
    await stepped(client, reviewer, rect_id, "contest", note="再次申诉")
    assert (await Rectification.get(id=rect_id)).resume_status is RectificationStatus.verified
    r = await decide(client, admin_headers, rect_id, "reject", note="申诉不成立")
    assert r.status_code == 200 and r.json["status"] == "verified"
    out_of_order(await step(client, reviewer, rect_id, "verify"), "verified", "verify")

    await stepped(client, reviewer, rect_id, "rectify", note="已整改")
    await stepped(client, reviewer, rect_id, "reply", reply="已整改，欢迎监督")
    view = await stepped(client, reviewer, rect_id, "close")
    assert view["status"] == "closed" and view["rating"]["excluded"] is False
    assert [(s["action"], s["status"]) for s in view["steps"]] == [
        ("open", "open"), ("contest", "contested"), ("reject", "open"), ("verify", "verified"),
        ("contest", "contested"), ("reject", "verified"), ("rectify", "rectified"), ("reply", "replied"),
        ("close", "closed"),
    ]  # fmt: skip
    rows = await RectificationStep.filter(rectification_id=rect_id, action="reject").order_by("id")
    assert [(s.from_status, s.to_status, s.note) for s in rows] == [
        ("contested", "open", "评价属实，继续整改"),
        ("contested", "verified", "申诉不成立"),
    ]
    assert {s["actor"]["id"] for s in view["steps"] if s["action"] in {"contest", "verify"}} == {str(reviewer_row.id)}
    assert not (await Rating.get(id=rating["id"])).excluded
    _, r = await client.get("/api/v1/admin/ratings/stats", params={"by": "department"}, headers=admin_headers)
    assert r.json["items"][0]["total"] == 1 and r.json["items"][0]["bad"] == 1


# -- deadlines ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"rectify_days": 5}], indirect=True)
async def test_the_overdue_list_after_the_deadline_passes(
    seeded, settings, fake_clock, make_citizen, make_staff, auth_deps
):
    client = seeded
    phone = "13900001414"
    _, citizen = await make_citizen(phone=phone)
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    late = (await bad_rating(client, citizen, reviewer))["rectification"]["id"]  # due 10-13
    done = (await bad_rating(client, citizen, reviewer))["rectification"]["id"]  # due 10-13, closed in time
    contested = (await bad_rating(client, citizen, reviewer))["rectification"]["id"]
    for action, body in (("verify", {}), ("rectify", {}), ("reply", {"reply": "已整改"}), ("close", {})):
        await stepped(client, reviewer, done, action, **body)
    await stepped(client, reviewer, contested, "contest", note="评价不实")
    at(fake_clock, "2026-10-08 09:00")
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    _, citizen = await make_citizen(phone=phone)
    # opened on 10-08: due 10-14 (10-09, 10-10, 10-12, 10-13, 10-14)
    newer = (await bad_rating(client, citizen, reviewer))["rectification"]
    assert newer["due_on"] == "2026-10-14"

    at(fake_clock, "2026-10-13 23:59")  # the last day of the deadline
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert await listed(client, reviewer, overdue="true") == []
    assert (await detail(client, reviewer, late))["overdue"] is False

    at(fake_clock, "2026-10-14 00:00")
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert sorted(await listed(client, reviewer, overdue="true")) == sorted([late, contested])
    assert (await detail(client, reviewer, late))["overdue"] is True
    assert (await detail(client, reviewer, done))["overdue"] is False  # closed: never overdue
    assert (await detail(client, reviewer, newer["id"]))["overdue"] is False
    assert await listed(client, reviewer, overdue="true", status="open") == [late]
    assert await listed(client, reviewer, status="closed") == [done]
    assert (await listed(client, reviewer))[-1] == newer["id"]  # the nearest deadline first
    _, gjj = await make_staff("reviewer", departments=["gjjzx"])
    assert await listed(client, gjj, overdue="true") == []
    _, r = await client.get("/api/v1/staff/rectifications", params={"status": "late"}, headers=reviewer)
    assert_error(r, 422, "INVALID_INPUT")

    _, citizen = await make_citizen(phone=phone)
    _, r = await client.get("/api/v1/ratings", headers=citizen)
    overdue = {i["rectification"]["id"]: i["rectification"]["overdue"] for i in r.json["items"]}
    assert overdue == {late: True, done: False, contested: True, newer["id"]: False}

    # an upheld contest leaves the overdue list; a late step still closes the rectification
    _, admin = await make_staff("admin")
    assert (await decide(client, admin, contested, "uphold")).status_code == 200
    for action, body in (("verify", {}), ("rectify", {}), ("reply", {"reply": "已整改"})):
        await stepped(client, reviewer, late, action, **body)
    assert await listed(client, reviewer, overdue="true") == [late]
    await stepped(client, reviewer, late, "close")
    assert await listed(client, reviewer, overdue="true") == []
