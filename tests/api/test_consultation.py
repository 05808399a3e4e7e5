"""Consultation (咨询) through HTTP: asking, the service level in working days, the staff lists, answering,
the asker's notification and the anonymised FAQ on the guide.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai), a Wednesday before the National Day holiday
(10-01..10-07); Saturday 10-10 is a 调休 working day. Access tokens live 15 minutes: every move of the
clock is followed by fresh tokens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from app.clock import SHANGHAI
from app.feedback.models import Question, QuestionStatus
from app.matters import service as catalogue
from app.notify.models import Notification, NotificationStatus
from tests.api import case_helpers as ch

MATTER_NAME = "营业执照设立登记"
QUESTION = "外地户籍可以在本市办理营业执照吗？"


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


async def ask(client, headers, text: str = QUESTION, matter: str = ch.MATTER):
    _, r = await client.post(f"/api/v1/matters/{matter}/questions", json={"text": text}, headers=headers)
    return r


async def asked(client, headers, text: str = QUESTION, matter: str = ch.MATTER) -> dict[str, Any]:
    r = await ask(client, headers, text, matter)
    assert r.status_code == 201, r.text
    return r.json


async def answer(client, headers, qid: str, text: str = "可以，凭身份证到窗口办理。"):
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": text}, headers=headers)
    return r


async def publish(client, headers, qid: str, **body: Any):
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/publish", json=body, headers=headers)
    return r


async def staff_ids(client, headers, view: str = "all") -> list[str]:
    _, r = await client.get("/api/v1/staff/questions", params={"view": view}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json["total"] == len(r.json["items"])
    return [q["id"] for q in r.json["items"]]


async def views(client, headers) -> dict[str, list[str]]:
    return {view: await staff_ids(client, headers, view) for view in ("unanswered", "due_soon", "overdue")}


async def my_question(client, headers, qid: str) -> dict[str, Any]:
    _, r = await client.get(f"/api/v1/questions/{qid}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json


async def guide(client, matter: str = ch.MATTER) -> dict[str, Any]:
    _, r = await client.get(f"/api/v1/matters/{matter}")
    assert r.status_code == 200, r.text
    return r.json


async def page(client, matter: str = ch.MATTER) -> str:
    _, r = await client.get(f"/m/{matter}")
    assert r.status_code == 200, r.text
    return r.text


# -- asking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"consult_days": 2}], indirect=True)
async def test_ask_answers_201_with_the_due_date_two_working_days_after_the_holiday(seeded, settings, make_citizen):
    client = seeded
    citizen, headers = await make_citizen()
    r = await ask(client, headers, f"  {QUESTION}  ")
    assert r.status_code == 201, r.text
    body = r.json
    qid = body["id"]
    assert body == {
        "id": qid,
        "matter": {"code": ch.MATTER, "name": MATTER_NAME},
        "department": "scjgj",
        "text": QUESTION,
        "status": "pending",
        "asked_at": "2026-09-30T10:00:00+08:00",
        "due_on": "2026-10-09",  # 10-01..10-07 closed: 10-08 is the first working day, 10-09 the second
        "sla": "open",
        "answer": None,
        "answered_at": None,
        "published": False,
    }
    row = await Question.get(id=qid)
    assert row.citizen_id == citizen.id and row.status is QuestionStatus.pending
    assert (row.due_on, row.warn_on) == (dt.date(2026, 10, 9), dt.date(2026, 10, 8))
    assert await my_question(client, headers, qid) == body
    _, r = await client.get("/api/v1/questions", headers=headers)
    assert r.status_code == 200 and r.json["total"] == 1 and r.json["items"] == [body]


@pytest.mark.parametrize(
    ("settings", "due_on"),
    [
        ({"consult_days": 1}, "2026-10-08"),
        ({"consult_days": 3}, "2026-10-10"),  # the 调休 Saturday counts
        ({"consult_days": 4}, "2026-10-12"),  # Sunday 10-11 does not
    ],
    indirect=["settings"],
)
async def test_due_date_counts_working_days_only(seeded, settings, make_citizen, due_on):
    _, headers = await make_citizen()
    assert (await asked(seeded, headers))["due_on"] == due_on


@pytest.mark.parametrize("settings", [{"consult_days": 1}], indirect=True)
async def test_a_question_asked_on_a_holiday_is_due_after_it(seeded, settings, fake_clock, make_citizen):
    at(fake_clock, "2026-10-03 15:00")
    _, headers = await make_citizen()
    body = await asked(seeded, headers)
    assert body["asked_at"] == "2026-10-03T15:00:00+08:00" and body["due_on"] == "2026-10-08"


async def test_text_must_hold_5_to_500_characters(seeded, make_citizen):
    client = seeded
    _, headers = await make_citizen()
    for text in ("能办吗", "能办吗？", "  能办吗？ ", "问" * 501, ""):
        assert_error(await ask(client, headers, text), 422, "INVALID_INPUT")
    _, r = await client.post(f"/api/v1/matters/{ch.MATTER}/questions", json={}, headers=headers)
    assert_error(r, 422, "INVALID_INPUT")
    _, r = await client.post(
        f"/api/v1/matters/{ch.MATTER}/questions", json={"text": QUESTION, "phone": "13900001111"}, headers=headers
    )
    assert_error(r, 422, "INVALID_INPUT")
    assert await Question.all().count() == 0
    assert (await asked(client, headers, "能办理吗？"))["text"] == "能办理吗？"
    assert (await asked(client, headers, "问" * 500))["text"] == "问" * 500
    assert await Question.all().count() == 2


async def test_asking_needs_a_signed_in_citizen(seeded, make_staff):
    _, r = await seeded.post(f"/api/v1/matters/{ch.MATTER}/questions", json={"text": QUESTION})
    assert r.status_code == 401, r.text
    _, reviewer = await make_staff("reviewer")
    assert (await ask(seeded, reviewer)).status_code in {401, 403}
    assert await Question.all().count() == 0


async def test_unknown_matter_is_404(seeded, make_citizen):
    _, headers = await make_citizen()
    assert_error(await ask(seeded, headers, matter="4308-XK-SS-999"), 404, "MATTER_NOT_FOUND")
    assert await Question.all().count() == 0


class TestRateLimit:
    @pytest.fixture
    def settings(self, base_settings):
        return base_settings.replace(consult_per_hour=2)

    async def test_questions_an_hour_are_limited_per_citizen(self, seeded, make_citizen):
        client = seeded
        alice, alice_h = await make_citizen()
        _, bob_h = await make_citizen()
        await asked(client, alice_h, "第一个问题：需要什么材料？")
        await asked(client, alice_h, "第二个问题：多久能办好？", matter=ch.OTHER_MATTER)
        error = assert_error(await ask(client, alice_h, "第三个问题：可以邮寄吗？"), 429, "TOO_MANY_REQUESTS")
        assert error["details"]["limit"] == "consult-citizen-1h"
        retry = int((await ask(client, alice_h, "第四个问题：可以邮寄吗？")).headers["retry-after"])
        assert 1 <= retry <= 3600
        assert await Question.filter(citizen_id=alice.id).count() == 2
        await asked(client, bob_h)  # another citizen has their own allowance
        assert await Question.all().count() == 3


# -- staff lists -------------------------------------------------------------------------------------


async def test_staff_lists_move_with_the_clock(seeded, fake_clock, make_citizen, make_staff, auth_deps):
    client = seeded
    phone = "13900002222"
    _, citizen = await make_citizen(phone=phone)
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    q1 = (await asked(client, citizen))["id"]  # 09-30: warn 10-08, due 10-09
    other = (await asked(client, citizen, "公积金提取需要哪些材料？", matter=ch.OTHER_MATTER))["id"]
    assert await staff_ids(client, reviewer) == [q1]  # gjjzx's question is not the reviewer's
    assert await views(client, reviewer) == {"unanswered": [q1], "due_soon": [], "overdue": []}

    at(fake_clock, "2026-10-05 10:00")  # the holiday uses none of the days
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert await views(client, reviewer) == {"unanswered": [q1], "due_soon": [], "overdue": []}

    at(fake_clock, "2026-10-08 09:00")
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    _, citizen = await make_citizen(phone=phone)
    q2 = (await asked(client, citizen, "个体户变更经营范围怎么办？"))["id"]  # warn 10-09, due 10-10
    assert await views(client, reviewer) == {"unanswered": [q1, q2], "due_soon": [q1], "overdue": []}
    assert (await my_question(client, citizen, q1))["sla"] == "due_soon"

    at(fake_clock, "2026-10-09 09:00")
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert await views(client, reviewer) == {"unanswered": [q1, q2], "due_soon": [q1, q2], "overdue": []}

    at(fake_clock, "2026-10-10 09:00")  # the 调休 Saturday: q1 is one day late, q2 due today
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert await views(client, reviewer) == {"unanswered": [q1, q2], "due_soon": [q2], "overdue": [q1]}
    _, citizen = await make_citizen(phone=phone)
    assert (await my_question(client, citizen, q1))["sla"] == "overdue"
    assert (await my_question(client, citizen, q2))["sla"] == "due_soon"

    at(fake_clock, "2026-10-12 09:00")
    reviewer = await ch.staff_headers(auth_deps, reviewer_row)
    assert await views(client, reviewer) == {"unanswered": [q1, q2], "due_soon": [], "overdue": [q1, q2]}
    assert (await answer(client, reviewer, q1)).status_code == 200
    assert await views(client, reviewer) == {"unanswered": [q2], "due_soon": [], "overdue": [q2]}
    assert await staff_ids(client, reviewer) == [q2, q1]  # all, newest first
    _, citizen = await make_citizen(phone=phone)
    assert (await my_question(client, citizen, q1))["sla"] == "answered_late"

    _, admin = await make_staff("admin")
    assert await views(client, admin) == {"unanswered": [other, q2], "due_soon": [], "overdue": [other, q2]}
    _, r = await client.get("/api/v1/staff/questions", params={"view": "late"}, headers=reviewer)
    assert_error(r, 422, "INVALID_INPUT")


# -- answering ---------------------------------------------------------------------------------------


async def test_answer_is_scoped_once_only_and_tells_the_asker(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    phone = "13900003333"
    citizen, headers = await make_citizen(phone=phone)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, gjj = await make_staff("reviewer", departments=["gjjzx"])
    _, clerk = await make_staff("clerk", hall="main")
    qid = (await asked(client, headers))["id"]

    error = assert_error(await answer(client, gjj, qid), 403, "QUESTION_OUT_OF_SCOPE")
    assert error["details"] == {"department": "scjgj"}
    assert_error(await answer(client, clerk, qid), 403, "INSUFFICIENT_ROLE")
    assert_error(await answer(client, reviewer, str(uuid.uuid4())), 404, "QUESTION_NOT_FOUND")
    assert_error(await answer(client, reviewer, "not-a-uuid"), 404, "QUESTION_NOT_FOUND")
    assert_error(await answer(client, reviewer, qid, "好"), 422, "INVALID_INPUT")
    assert (await Question.get(id=qid)).status is QuestionStatus.pending
    assert await Notification.all().count() == 0

    fake_clock.advance(hours=1)
    reviewer_row, reviewer = await make_staff("reviewer", departments=["scjgj"])
    r = await answer(client, reviewer, qid, "  可以，凭身份证到窗口办理。  ")
    assert r.status_code == 200, r.text
    body = r.json
    assert body["status"] == "answered" and body["answer"] == "可以，凭身份证到窗口办理。"
    assert body["answered_at"] == "2026-09-30T11:00:00+08:00" and body["sla"] == "answered"
    assert body["answered_by"] == str(reviewer_row.id)
    assert body["published"] is False and body["faq_question"] is None

    again = assert_error(await answer(client, reviewer, qid, "另一个答复"), 409, "QUESTION_ANSWERED")
    assert again["details"] == {"question_id": qid}
    _, admin = await make_staff("admin")
    assert_error(await answer(client, admin, qid, "管理员答复"), 409, "QUESTION_ANSWERED")
    _, headers = await make_citizen(phone=phone)
    mine = await my_question(client, headers, qid)
    assert mine["answer"] == "可以，凭身份证到窗口办理。" and mine["status"] == "answered"

    notes = await Notification.all()
    assert len(notes) == 1
    note = notes[0]
    assert note.kind == "consult_answered" and note.citizen_id == citizen.id
    assert (note.subject_type, note.subject_id) == ("consultation", qid)
    assert note.status is NotificationStatus.pending
    assert note.payload["answer"] == "可以，凭身份证到窗口办理。"
    assert note.payload["matter_name"] == MATTER_NAME and note.payload["question"] == QUESTION
    assert note.payload["url"] == f"http://testserver/m/me/questions/{qid}"  # the citizen's own question page


async def test_admin_answers_any_department(seeded, make_citizen, make_staff):
    _, headers = await make_citizen()
    qid = (await asked(seeded, headers, "公积金提取需要哪些材料？", matter=ch.OTHER_MATTER))["id"]
    _, admin = await make_staff("admin")
    r = await answer(seeded, admin, qid)
    assert r.status_code == 200 and r.json["department"] == "gjjzx" and r.json["status"] == "answered"
    assert await Notification.filter(kind="consult_answered", subject_id=qid).count() == 1


# -- the FAQ on the guide ----------------------------------------------------------------------------


async def test_publish_anonymises_and_shows_the_faq_on_the_guide_until_unpublished(
    seeded, fake_clock, make_citizen, make_staff
):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, gjj = await make_staff("reviewer", departments=["gjjzx"])
    text = "我的手机 13912345678，身份证 43080219900101123X，邮箱 zhang.san@example.com ，外地户籍能办吗？"
    qid = (await asked(client, headers, text))["id"]

    assert_error(await publish(client, reviewer, qid), 409, "QUESTION_NOT_ANSWERED")
    assert (await guide(client))["consult_faq"] == []  # read (and cached) before the publication
    assert "外地户籍能办吗" not in await page(client)

    assert (await answer(client, reviewer, qid, "可以。如有疑问请回复 13912345678 以外的联系方式。")).status_code == 200
    assert_error(await publish(client, gjj, qid), 403, "QUESTION_OUT_OF_SCOPE")
    r = await publish(client, reviewer, qid)
    assert r.status_code == 200, r.text
    masked_q = "我的手机 ***，身份证 ***，邮箱 *** ，外地户籍能办吗？"
    masked_a = "可以。如有疑问请回复 *** 以外的联系方式。"
    assert r.json["published"] is True
    assert (r.json["faq_question"], r.json["faq_answer"]) == (masked_q, masked_a)
    assert r.json["text"] == text  # the question itself is kept as asked

    assert (await guide(client))["consult_faq"] == [{"question": masked_q, "answer": masked_a}]
    html = await page(client)
    assert masked_q in html and masked_a in html
    for private in ("13912345678", "43080219900101123X", "zhang.san@example.com"):
        assert private not in html
    assert (await my_question(client, headers, qid))["published"] is True

    r = await publish(client, reviewer, qid, published=False)
    assert r.status_code == 200 and r.json["published"] is False
    assert (await guide(client))["consult_faq"] == []
    assert masked_q not in await page(client)
    assert (await my_question(client, headers, qid))["published"] is False


async def test_publish_with_the_staffs_wording_masked_too_newest_first(seeded, fake_clock, make_citizen, make_staff):
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    first = (await asked(client, headers, "可以委托朋友代办吗？"))["id"]
    second = (await asked(client, headers, "办好后可以邮寄吗？我的电话 13800001111"))["id"]
    for qid in (first, second):
        assert (await answer(client, reviewer, qid, "可以。")).status_code == 200
    r = await publish(
        client, reviewer, first, question="可以委托他人代办吗？联系人电话 13700002222", answer="可以，需授权委托书。"
    )
    assert r.status_code == 200, r.text
    fake_clock.advance(minutes=1)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    assert (await publish(client, reviewer, second)).status_code == 200
    assert (await guide(client))["consult_faq"] == [
        {"question": "办好后可以邮寄吗？我的电话 ***", "answer": "可以。"},
        {"question": "可以委托他人代办吗？联系人电话 ***", "answer": "可以，需授权委托书。"},
    ]
    assert (await guide(client, ch.OTHER_MATTER))["consult_faq"] == []


async def test_publish_masks_only_the_e_mail_address_next_to_chinese_text(seeded, make_citizen, make_staff):
    """The masking must not swallow the words around an address (Chinese characters are not part of it)."""
    client = seeded
    _, headers = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    qid = (await asked(client, headers, "结果能发到邮箱zhang@example.com吗"))["id"]
    assert (await answer(client, reviewer, qid, "可以发到您的邮箱。")).status_code == 200
    r = await publish(client, reviewer, qid)
    assert r.status_code == 200, r.text
    assert r.json["faq_question"] == "结果能发到邮箱***吗"


async def test_another_citizens_question_is_404(seeded, make_citizen):
    client = seeded
    _, alice = await make_citizen()
    _, bob = await make_citizen()
    qid = (await asked(client, alice))["id"]
    _, r = await client.get(f"/api/v1/questions/{qid}", headers=bob)
    assert_error(r, 404, "QUESTION_NOT_FOUND")
    _, r = await client.get("/api/v1/questions/not-a-uuid", headers=bob)
    assert_error(r, 404, "QUESTION_NOT_FOUND")
    _, r = await client.get("/api/v1/questions", headers=bob)
    assert r.status_code == 200 and r.json["total"] == 0 and r.json["items"] == []
    assert (await my_question(client, alice, qid))["id"] == qid
