"""Ratings (好差评) through HTTP: what may be rated and by whom, one rating per subject, the window, the
addendum, which levels open a rectification, the aggregates and the satisfaction on the guide.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai). The licence matter's first bookable slot
that day is 11:00-11:30, so a check-in at the desk opens at 10:30. Access tokens live 15 minutes:
every move of the clock is followed by fresh tokens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from app.clock import SHANGHAI
from app.feedback.models import Rating, Rectification, SubjectType
from app.matters import service as catalogue
from tests.api import case_helpers as ch

SLOT = "main.commercial.20260930.1100"
GOOD_TAGS = ["服务态度好", "办事效率高"]


@pytest.fixture
async def seeded(fake_clock, client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=ch.catalogue())
    return client


def at(fake_clock, when: str) -> None:
    """Set the clock to a Shanghai wall-clock time, e.g. "2026-09-30 10:45"."""
    fake_clock.current = dt.datetime.fromisoformat(when).replace(tzinfo=SHANGHAI).astimezone(dt.UTC)


def assert_error(r, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.json["error"]["code"] == code, r.text
    assert r.json["error"]["message"]
    return r.json["error"]


async def rate(client, headers, subject_type: str, subject_id: Any, level: Any = 5, **extra: Any):
    body = {"subject_type": subject_type, "subject_id": subject_id, "level": level, **extra}
    _, r = await client.post("/api/v1/ratings", json=body, headers=headers)
    return r


async def rated(client, headers, subject_type: str, subject_id: str, level: int = 5, **extra: Any) -> dict[str, Any]:
    r = await rate(client, headers, subject_type, subject_id, level, **extra)
    assert r.status_code == 201, r.text
    return r.json


async def book(client, headers, slot_id: str = SLOT) -> dict[str, Any]:
    _, r = await client.post(
        "/api/v1/bookings",
        json={"matter_code": ch.MATTER, "slot_id": slot_id},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return r.json


async def check_in(client, clerk, booking: dict[str, Any], counter: str | None = "B01") -> str:
    body: dict[str, Any] = {"ticket": booking["ticket"], "nonce": uuid.uuid4().hex}
    if counter:
        body["counter"] = counter
    _, r = await client.post("/api/v1/desk/checkins", json=body, headers=clerk)
    assert r.status_code == 200 and r.json["result"] == "checked_in", r.text
    return r.json["checkin_id"]


async def visit(client, fake_clock, make_staff, citizen, counter: str | None = "B01") -> str:
    """A booking of the licence matter checked in at 10:45 by a clerk of the main hall; the check-in id.

    The clock moves on by 45 minutes: the caller's tokens from before have expired."""
    booking = await book(client, citizen)
    at(fake_clock, "2026-09-30 10:45")
    _, clerk = await make_staff("clerk", hall="main")
    return await check_in(client, clerk, booking, counter)


async def answered_question(client, citizen, reviewer, matter: str = ch.MATTER) -> str:
    _, r = await client.post(f"/api/v1/matters/{matter}/questions", json={"text": "需要带哪些材料？"}, headers=citizen)
    assert r.status_code == 201, r.text
    qid = r.json["id"]
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": "见办事指南。"}, headers=reviewer)
    assert r.status_code == 200, r.text
    return qid


async def stats(client, admin, by: str, **params: str) -> list[dict[str, Any]]:
    _, r = await client.get("/api/v1/admin/ratings/stats", params={"by": by, **params}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json["by"] == by
    return r.json["items"]


def group(by: str, name: str, levels: dict[int, int]) -> dict[str, Any]:
    """The expected aggregate of one group."""
    total = sum(levels.values())
    good = sum(n for lv, n in levels.items() if lv >= 3)
    return {
        by: name,
        "total": total,
        "levels": {str(lv): levels.get(lv, 0) for lv in (5, 4, 3, 2, 1)},
        "good": good,
        "bad": total - good,
        "satisfaction_rate": round(good / total, 4),
    }


# -- what is rated ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "name", "opens"), [(5, "非常满意", False), (4, "满意", False),
                                                       (3, "基本满意", False), (2, "不满意", True),
                                                       (1, "非常不满意", True)])  # fmt: skip
async def test_a_completed_case_is_rated_and_only_levels_1_2_open_a_rectification(
    seeded, make_citizen, make_staff, level, name, opens
):
    client = seeded
    citizen, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    r = await rate(
        client, headers, "case", case_no.lower(), level, tags=["办事效率高", "办事效率高"], comment="  还行  "
    )
    assert r.status_code == 201, r.text
    body = r.json
    rect = body.pop("rectification")
    assert body == {
        "id": body["id"],
        "subject_type": "case",
        "subject_id": case_no,
        "level": level,
        "level_name": name,
        "tags": ["办事效率高"],
        "comment": "还行",
        "addendum": None,
        "addendum_at": None,
        "matter_code": ch.MATTER,
        "department": "scjgj",
        "hall": "main",
        "counter": None,
        "created_at": "2026-09-30T10:00:00+08:00",
    }
    row = await Rating.get(id=body["id"])
    assert row.citizen_id == citizen.id and row.excluded is False
    if opens:
        assert rect["status"] == "open" and [s["action"] for s in rect["steps"]] == ["open"]
        assert await Rectification.filter(rating_id=row.id, department_code="scjgj").count() == 1
    else:
        assert rect is None
        assert await Rectification.all().count() == 0
    _, r = await client.get(f"/api/v1/ratings/{body['id']}", headers=headers)
    assert r.status_code == 200 and r.json["level"] == level and (r.json["rectification"] is None) is not opens


async def test_an_answered_question_is_rated_an_unanswered_one_is_409(seeded, make_citizen, make_staff):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["gjjzx"])
    _, r = await client.post(
        f"/api/v1/matters/{ch.OTHER_MATTER}/questions", json={"text": "公积金可以提取几次？"}, headers=headers
    )
    qid = r.json["id"]
    error = assert_error(await rate(client, headers, "consultation", qid, 4), 409, "NOT_RATEABLE_YET")
    assert error["details"] == {"status": "pending"}
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": "每年一次。"}, headers=reviewer)
    assert r.status_code == 200
    body = await rated(client, headers, "consultation", qid.upper(), 2, comment="答非所问")
    assert (body["subject_type"], body["subject_id"]) == ("consultation", qid)
    assert (body["matter_code"], body["department"], body["hall"], body["counter"]) == (
        ch.OTHER_MATTER,
        "gjjzx",
        None,
        None,
    )
    assert body["rectification"]["status"] == "open"
    assert (await Rectification.get(rating_id=body["id"])).department_code == "gjjzx"
    assert_error(await rate(client, headers, "consultation", qid, 5), 409, "ALREADY_RATED")


async def test_a_visit_is_rated_with_its_hall_and_counter(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    phone = "13900004444"
    citizen, headers = await make_citizen(phone=phone)
    checkin_id = await visit(client, fake_clock, make_staff, headers, counter="B03")
    _, headers = await make_citizen(phone=phone)
    body = await rated(client, headers, "visit", checkin_id, 4, tags=["环境舒适"])
    assert (body["subject_type"], body["subject_id"]) == ("visit", checkin_id)
    assert (body["matter_code"], body["department"], body["hall"], body["counter"]) == (
        ch.MATTER,
        "scjgj",
        "main",
        "B03",
    )
    assert body["created_at"] == "2026-09-30T10:45:00+08:00" and body["rectification"] is None
    row = await Rating.get(id=body["id"])
    assert (row.subject_type, row.hall_code, row.counter, row.citizen_id) == (
        SubjectType.visit,
        "main",
        "B03",
        citizen.id,
    )
    assert_error(await rate(client, headers, "visit", checkin_id, 1), 409, "ALREADY_RATED")
    assert await Rating.all().count() == 1 and await Rectification.all().count() == 0


async def test_an_undone_check_in_is_not_rateable(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    phone = "13900005555"
    _, headers = await make_citizen(phone=phone)
    booking = await book(client, headers)
    at(fake_clock, "2026-09-30 10:45")
    _, clerk = await make_staff("clerk", hall="main")
    first = await check_in(client, clerk, booking)
    fake_clock.advance(minutes=2)
    _, r = await client.post(f"/api/v1/desk/checkins/{first}/undo", headers=clerk)
    assert r.status_code == 200, r.text
    _, headers = await make_citizen(phone=phone)
    error = assert_error(await rate(client, headers, "visit", first, 5), 409, "NOT_RATEABLE_YET")
    assert error["details"] == {"reason": "undone"}
    second = await check_in(client, clerk, booking, counter="B02")
    assert (await rated(client, headers, "visit", second, 5))["counter"] == "B02"
    assert await Rating.all().count() == 1


async def test_nothing_of_another_citizen_can_be_rated(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    alice_phone = "13900006666"
    _, alice = await make_citizen(phone=alice_phone)
    _, bob = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, alice, reviewer, "completed")
    qid = await answered_question(client, alice, reviewer)
    checkin_id = await visit(client, fake_clock, make_staff, alice)
    _, alice = await make_citizen(phone=alice_phone)
    _, bob = await make_citizen()
    for subject_type, subject_id in [
        ("case", case_no),
        ("visit", checkin_id),
        ("consultation", qid),
        ("case", "NOSUCHCASE"),
        ("visit", str(uuid.uuid4())),
        ("visit", "not-a-uuid"),
        ("consultation", "not-a-uuid"),
    ]:
        r = await rate(client, bob, subject_type, subject_id, 1)
        assert_error(r, 404, "RATING_SUBJECT_NOT_FOUND")
    assert await Rating.all().count() == 0
    # a check-in id is no case number and a case number no question id
    assert_error(await rate(client, alice, "case", checkin_id, 5), 404, "RATING_SUBJECT_NOT_FOUND")
    assert_error(await rate(client, alice, "consultation", checkin_id, 5), 404, "RATING_SUBJECT_NOT_FOUND")
    for subject_type, subject_id in [("case", case_no), ("visit", checkin_id), ("consultation", qid)]:
        await rated(client, alice, subject_type, subject_id, 5)
    assert await Rating.all().count() == 3


@pytest.mark.parametrize("status", ["submitted", "approved", "delivered"])
async def test_a_case_not_completed_is_not_rateable_yet(seeded, make_citizen, make_staff, status):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, status)
    error = assert_error(await rate(client, headers, "case", case_no, 5), 409, "NOT_RATEABLE_YET")
    assert error["details"] == {"status": status}
    assert await Rating.all().count() == 0


async def test_rated_twice_is_409_and_the_first_rating_stands(seeded, make_citizen, make_staff):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    first = await rated(client, headers, "case", case_no, 5, tags=GOOD_TAGS, comment="很好")
    for subject_id, level in ((case_no, 1), (f"  {case_no.lower()} ", 4)):
        error = assert_error(await rate(client, headers, "case", subject_id, level), 409, "ALREADY_RATED")
        assert error["details"]["subject_type"] == "case"
    assert await Rating.all().count() == 1 and await Rectification.all().count() == 0
    _, r = await client.get(f"/api/v1/ratings/{first['id']}", headers=headers)
    assert (r.json["level"], r.json["comment"], r.json["tags"]) == (5, "很好", GOOD_TAGS)


async def test_invalid_levels_tags_and_bodies_are_422(seeded, make_citizen, make_staff):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    for level in (0, 6, "x", None, 2.5, -1):
        assert_error(await rate(client, headers, "case", case_no, level), 422, "INVALID_INPUT")
    for extra in (
        {"tags": ["服务态度好", "服务特别好"]},
        {"tags": ["不存在的标签"]},
        {"tags": ["服务态度好", "办事效率高", "一次告知清楚", "材料精简", "环境舒适", "网上办理方便"]},
        {"comment": "长" * 501},
        {"stars": 5},
    ):
        assert_error(await rate(client, headers, "case", case_no, 5, **extra), 422, "INVALID_INPUT")
    assert_error(await rate(client, headers, "booking", case_no, 5), 422, "INVALID_INPUT")
    assert_error(await rate(client, headers, "case", "", 5), 422, "INVALID_INPUT")
    _, r = await client.post("/api/v1/ratings", json={"subject_type": "case", "subject_id": case_no}, headers=headers)
    assert_error(r, 422, "INVALID_INPUT")
    assert await Rating.all().count() == 0
    body = await rated(client, headers, "case", case_no, 5, tags=list(GOOD_TAGS), comment="长" * 500)
    assert body["tags"] == GOOD_TAGS and len(body["comment"]) == 500


async def test_the_rating_window_closes_after_rating_window_days(
    seeded, fake_clock, make_citizen, make_staff, settings
):
    client = seeded
    phone = "13900007777"
    _, headers = await make_citizen(phone=phone)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    on_time = await ch.drive(client, headers, reviewer, "completed")  # completed 2026-09-30 10:00
    late = await ch.drive(client, headers, reviewer, "completed")
    assert settings.rating_window_days == 30
    fake_clock.advance(days=30)  # the last moment of the window
    _, headers = await make_citizen(phone=phone)
    assert (await rated(client, headers, "case", on_time, 4))["created_at"] == "2026-10-30T10:00:00+08:00"
    fake_clock.advance(seconds=1)
    _, headers = await make_citizen(phone=phone)
    error = assert_error(await rate(client, headers, "case", late, 4), 409, "RATING_WINDOW_CLOSED")
    assert error["details"] == {"days": 30}
    assert await Rating.all().count() == 1


async def test_the_window_of_an_answer_runs_from_the_answer(seeded, fake_clock, make_citizen, make_staff, auth_deps):
    client = seeded
    phone = "13900008888"
    _, headers = await make_citizen(phone=phone)
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.post(
        f"/api/v1/matters/{ch.MATTER}/questions", json={"text": "需要带哪些材料？"}, headers=headers
    )
    qid = r.json["id"]
    fake_clock.advance(days=20)
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": "见办事指南。"}, headers=reviewer)
    assert r.status_code == 200
    fake_clock.advance(days=25)  # 45 days after the question, 25 after its answer
    _, headers = await make_citizen(phone=phone)
    assert (await rated(client, headers, "consultation", qid, 3))["level"] == 3


# -- the addendum -----------------------------------------------------------------------------------


async def test_an_addendum_is_added_once_and_the_rating_is_never_rewritten(
    seeded, fake_clock, make_citizen, make_staff
):
    client = seeded
    phone, other_phone = "13900009999", "13900009998"
    _, headers = await make_citizen(phone=phone)
    _, other = await make_citizen(phone=other_phone)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    rid = (await rated(client, headers, "case", case_no, 2, tags=["等候时间长"], comment="等了两个小时"))["id"]
    _, r = await client.post(f"/api/v1/ratings/{rid}/addendum", json={"comment": "   "}, headers=headers)
    assert_error(r, 422, "INVALID_INPUT")
    _, r = await client.post(f"/api/v1/ratings/{rid}/addendum", json={"comment": "补充"}, headers=other)
    assert_error(r, 404, "RATING_NOT_FOUND")
    _, r = await client.post(f"/api/v1/ratings/{uuid.uuid4()}/addendum", json={"comment": "补充"}, headers=headers)
    assert_error(r, 404, "RATING_NOT_FOUND")

    fake_clock.advance(days=2)
    _, headers = await make_citizen(phone=phone)
    _, other = await make_citizen(phone=other_phone)
    _, r = await client.post(
        f"/api/v1/ratings/{rid}/addendum", json={"comment": "后来窗口主动联系了我"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json["addendum"] == "后来窗口主动联系了我"
    assert r.json["addendum_at"] == "2026-10-02T10:00:00+08:00"
    assert (r.json["level"], r.json["comment"], r.json["tags"]) == (2, "等了两个小时", ["等候时间长"])

    _, r = await client.post(f"/api/v1/ratings/{rid}/addendum", json={"comment": "改成满意"}, headers=headers)
    error = assert_error(r, 409, "ADDENDUM_EXISTS")
    assert error["details"] == {"rating_id": rid}
    _, r = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert r.status_code == 200
    assert (r.json["level"], r.json["comment"], r.json["addendum"]) == (2, "等了两个小时", "后来窗口主动联系了我")
    assert r.json["addendum_at"] == "2026-10-02T10:00:00+08:00"
    row = await Rating.get(id=rid)
    assert (row.level, row.comment, row.addendum) == (2, "等了两个小时", "后来窗口主动联系了我")
    _, r = await client.get(f"/api/v1/ratings/{rid}", headers=other)
    assert_error(r, 404, "RATING_NOT_FOUND")
    _, r = await client.get("/api/v1/ratings", headers=headers)
    assert r.json["total"] == 1 and r.json["items"][0]["addendum"] == "后来窗口主动联系了我"


# -- aggregates and the guide -------------------------------------------------------------------------


async def add_rating(level: int, *, matter: str, department: str, hall: str | None, counter: str | None = None,
                     excluded: bool = False, created_at: dt.datetime | None = None) -> None:  # fmt: skip
    """A rating row written directly (the hand-built set the aggregates are checked against)."""
    await Rating.create(
        id=uuid.uuid4(), subject_type=SubjectType.case, subject_id=uuid.uuid4().hex[:20].upper(),
        citizen_id=uuid.uuid4(), level=level, matter_code=matter, department_code=department, hall_code=hall,
        counter=counter, excluded=excluded,
        created_at=created_at or dt.datetime(2026, 9, 29, 9, 0, tzinfo=SHANGHAI),
    )  # fmt: skip


async def hand_built_set() -> None:
    """Licence matter (scjgj, main): 5 at B01, 4 at B01, 2 at B02, 1 (a case, no counter), 1 excluded.
    Food matter (scjgj, main): 3 at B02. Fund matter (gjjzx, gongjijin): 5 and 4 at G01, 2 (an answer).
    Last year's licence 1 at B01 falls outside the default period."""
    lic, food, fund = ch.MATTER, ch.LONG_MATTER, ch.OTHER_MATTER
    await add_rating(5, matter=lic, department="scjgj", hall="main", counter="B01")
    await add_rating(4, matter=lic, department="scjgj", hall="main", counter="B01")
    await add_rating(2, matter=lic, department="scjgj", hall="main", counter="B02")
    await add_rating(1, matter=lic, department="scjgj", hall="main")
    await add_rating(1, matter=lic, department="scjgj", hall="main", counter="B01", excluded=True)
    await add_rating(3, matter=food, department="scjgj", hall="main", counter="B02")
    await add_rating(5, matter=fund, department="gjjzx", hall="gongjijin", counter="G01")
    await add_rating(4, matter=fund, department="gjjzx", hall="gongjijin", counter="G01")
    await add_rating(2, matter=fund, department="gjjzx", hall=None)
    last_year = dt.datetime(2025, 12, 31, 23, 30, tzinfo=SHANGHAI)
    await add_rating(1, matter=lic, department="scjgj", hall="main", counter="B01", created_at=last_year)


async def test_aggregates_by_matter_department_hall_and_counter(seeded, admin_headers):
    client = seeded
    await hand_built_set()
    lic, food, fund = ch.MATTER, ch.LONG_MATTER, ch.OTHER_MATTER
    assert await stats(client, admin_headers, "matter") == [
        group("matter", fund, {5: 1, 4: 1, 2: 1}),
        group("matter", lic, {5: 1, 4: 1, 2: 1, 1: 1}),
        group("matter", food, {3: 1}),
    ]
    assert await stats(client, admin_headers, "department") == [
        group("department", "gjjzx", {5: 1, 4: 1, 2: 1}),
        group("department", "scjgj", {5: 1, 4: 1, 3: 1, 2: 1, 1: 1}),
    ]
    assert await stats(client, admin_headers, "counter") == [
        group("counter", "gongjijin/G01", {5: 1, 4: 1}),
        group("counter", "main/B01", {5: 1, 4: 1}),
        group("counter", "main/B02", {3: 1, 2: 1}),
    ]
    lic_row = (await stats(client, admin_headers, "matter"))[1]
    assert (lic_row["total"], lic_row["good"], lic_row["bad"], lic_row["satisfaction_rate"]) == (4, 2, 2, 0.5)
    scjgj = (await stats(client, admin_headers, "department"))[1]
    assert scjgj["satisfaction_rate"] == 0.6 and scjgj["levels"] == {"5": 1, "4": 1, "3": 1, "2": 1, "1": 1}
    assert (await stats(client, admin_headers, "matter"))[0]["satisfaction_rate"] == 0.6667

    # the period: last year's rating counts only when asked for
    with_last_year = await stats(client, admin_headers, "counter", **{"from": "2025-01-01"})
    assert with_last_year[1] == group("counter", "main/B01", {5: 1, 4: 1, 1: 1})
    _, r = await client.get(
        "/api/v1/admin/ratings/stats", params={"by": "department", "from": "2025-12-31", "to": "2025-12-31"},
        headers=admin_headers,
    )  # fmt: skip
    assert r.json["from"] == "2025-12-31" and r.json["items"] == [group("department", "scjgj", {1: 1})]
    assert await stats(client, admin_headers, "matter", **{"from": "2026-09-30"}) == []


async def test_aggregates_by_hall(seeded, admin_headers):
    """Ratings without a hall (answers) are left out; the period applies as for the other groupings."""
    client = seeded
    await hand_built_set()
    assert await stats(client, admin_headers, "hall") == [
        group("hall", "gongjijin", {5: 1, 4: 1}),
        group("hall", "main", {5: 1, 4: 1, 3: 1, 2: 1, 1: 1}),
    ]
    main = (await stats(client, admin_headers, "hall"))[1]
    assert (main["total"], main["good"], main["bad"], main["satisfaction_rate"]) == (5, 3, 2, 0.6)
    with_last_year = await stats(client, admin_headers, "hall", **{"from": "2025-01-01"})
    assert with_last_year[1] == group("hall", "main", {5: 1, 4: 1, 3: 1, 2: 1, 1: 2})
    assert await stats(client, admin_headers, "hall", **{"from": "2025-12-31", "to": "2025-12-31"}) == [
        group("hall", "main", {1: 1})
    ]


async def test_stats_are_for_administrators_and_check_their_query(seeded, make_staff, admin_headers):
    client = seeded
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.get("/api/v1/admin/ratings/stats", params={"by": "matter"}, headers=reviewer)
    assert_error(r, 403, "INSUFFICIENT_ROLE")
    _, r = await client.get("/api/v1/admin/ratings/stats", params={"by": "citizen"}, headers=admin_headers)
    assert_error(r, 422, "INVALID_INPUT")
    _, r = await client.get(
        "/api/v1/admin/ratings/stats", params={"from": "2026-10-02", "to": "2026-10-01"}, headers=admin_headers
    )
    assert_error(r, 422, "RANGE_INVALID")
    _, r = await client.get("/api/v1/admin/ratings/stats", headers=admin_headers)
    assert r.status_code == 200 and r.json == {
        "by": "department",
        "from": "2026-01-01",
        "to": "2026-09-30",
        "items": [],
    }


async def test_ratings_through_the_api_are_counted(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    phone = "13900001212"
    _, headers = await make_citizen(phone=phone)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    await rated(client, headers, "case", case_no, 1, comment="跑了三次")
    checkin_id = await visit(client, fake_clock, make_staff, headers, counter="B01")
    _, headers = await make_citizen(phone=phone)
    await rated(client, headers, "visit", checkin_id, 4)
    _, admin = await make_staff("admin")
    assert await stats(client, admin, "counter") == [group("counter", "main/B01", {4: 1})]
    assert await stats(client, admin, "matter") == [group("matter", ch.MATTER, {4: 1, 1: 1})]
    assert (await stats(client, admin, "department"))[0]["satisfaction_rate"] == 0.5
    assert await stats(client, admin, "hall") == [group("hall", "main", {4: 1, 1: 1})]


async def test_the_guide_shows_the_matters_satisfaction(seeded, make_citizen, make_staff):
    """The guide is cached per worker: each matter's guide is read for the first time after its ratings."""
    client = seeded
    lic, food = ch.MATTER, ch.LONG_MATTER
    await add_rating(5, matter=food, department="scjgj", hall="main", counter="B01")
    await add_rating(3, matter=food, department="scjgj", hall="main", counter="B02")
    await add_rating(1, matter=food, department="scjgj", hall="main")
    await add_rating(1, matter=food, department="scjgj", hall="main", excluded=True)
    await add_rating(2, matter=lic, department="scjgj", hall="main", excluded=True)
    _, r = await client.get(f"/api/v1/matters/{food}")
    assert r.status_code == 200
    assert r.json["satisfaction"] == {"total": 3, "satisfaction_rate": 0.6667, "good": 2}
    _, r = await client.get(f"/m/{food}")
    assert r.status_code == 200 and "好评率 66.7%（3 条评价）" in r.text
    _, r = await client.get(f"/api/v1/matters/{lic}")  # only an excluded rating: none to show
    assert r.json["satisfaction"] is None
    _, r = await client.get(f"/m/{lic}")
    assert "群众满意度" not in r.text and "好评率" not in r.text


async def test_the_guide_satisfaction_follows_api_ratings_once_the_guide_is_rebuilt(seeded, make_citizen, make_staff):
    """Asking reads (and caches) the guide; publishing the answer rebuilds it with the rating already in."""
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["gjjzx"])
    qid = await answered_question(client, headers, reviewer, matter=ch.OTHER_MATTER)
    await rated(client, headers, "consultation", qid, 5, tags=["一次告知清楚"])
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/publish", json={}, headers=reviewer)
    assert r.status_code == 200
    _, r = await client.get(f"/api/v1/matters/{ch.OTHER_MATTER}")
    assert r.json["satisfaction"] == {"total": 1, "satisfaction_rate": 1.0, "good": 1}
    assert r.json["consult_faq"] == [{"question": "需要带哪些材料？", "answer": "见办事指南。"}]


async def test_the_same_rating_sent_again_is_answered_not_refused(client, make_citizen, make_staff):
    from app.matters import service as catalogue_service
    from tests.api import case_helpers

    await catalogue_service.import_catalogue(client.sanic_app.ctx.catalogue, data=case_helpers.catalogue())
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await case_helpers.drive(client, citizen, reviewer, "completed")
    body = {"subject_type": "case", "subject_id": case_no, "level": 4, "tags": ["办事效率高"], "comment": "快"}
    _, first = await client.post("/api/v1/ratings", json=body, headers=citizen)
    _, retry = await client.post("/api/v1/ratings", json=body, headers=citizen)  # a retry after a lost answer
    assert first.status_code == 201 and retry.status_code == 201 and retry.json["id"] == first.json["id"]
    _, other = await client.post("/api/v1/ratings", json={**body, "level": 1}, headers=citizen)
    assert other.status_code == 409 and other.json["error"]["code"] == "ALREADY_RATED"
