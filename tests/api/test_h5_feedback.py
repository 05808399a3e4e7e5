"""Consultation and ratings (好差评) in the browser: ask and read the answer, rate a case, a visit and an answer
on the five levels with the tag list, a wrong tag names the valid ones (page and API), one addendum, nobody
else's things, and no form without its token. Setup (cases, check-ins, answers) goes through the HTTP API as
tests/api/test_ratings.py does; the citizen's own steps go through the pages, signed in by SMS code.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.feedback.ratings import BAD_TAGS, GOOD_TAGS, TAG_LIST
from app.matters import service as catalogue
from auth.guards import ACCESS_COOKIE
from tests.api import case_helpers as ch
from tests.api.test_h5_account import _sign_in
from tests.api.test_ratings import answered_question, visit

ASK = f"/m/{ch.MATTER}/consult"


@pytest.fixture
async def seeded(fake_clock, client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=ch.catalogue())
    return client


async def signed_in(client, app, make_citizen, phone: str) -> dict[str, str]:
    """A citizen who has an API token (for setup) and is signed in on the client's browser; the API headers."""
    _, headers = await make_citizen(phone=phone)
    client.cookies.clear()  # a fresh browser
    done = await _sign_in(client, app, phone=phone)
    assert done.status == 303, done.text
    return headers


def _csrf(html: str) -> str:
    """The page's form token: every form on it (the header's and ours) carries the same, non-empty one."""
    tokens = set(re.findall(r'name="csrf" value="([^"]*)"', html))
    assert len(tokens) == 1 and "" not in tokens, tokens
    return tokens.pop()


def _key(html: str) -> str:
    return re.search(r'name="idem" value="([^"]+)"', html).group(1)


async def form_of(client, path: str, **params: Any) -> tuple[str, str]:
    """(page text, CSRF token) of a page with a form."""
    _, r = await client.get(path, params=params)
    assert r.status == 200, r.text
    return r.text, _csrf(r.text)


async def post(client, path: str, data: dict[str, Any], **kwargs: Any):
    _, r = await client.post(path, data=data, follow_redirects=False, **kwargs)
    return r


async def rate_page(client, subject_type: str, subject_id: str, level: Any, **fields: Any):
    """Open the rating form and post it."""
    text, csrf = await form_of(client, "/m/rate/new", subject_type=subject_type, subject_id=subject_id)
    assert 'name="level" value="5"' in text
    data = {"csrf": csrf, "subject_type": subject_type, "subject_id": subject_id, "level": level, **fields}
    return await post(client, "/m/rate/new", data)


def rating_id_of(r) -> str:
    assert r.status == 303, r.text
    found = re.fullmatch(r"/m/me/ratings/([0-9a-f-]{36})\?done=1", r.headers["location"])
    assert found, r.headers["location"]
    return found.group(1)


# -- consultation -------------------------------------------------------------------------------------


async def test_ask_then_read_the_answer_and_rate_it(seeded, app, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005001")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    text, csrf = await form_of(client, ASK)
    assert "<h1>咨询</h1>" in text and 'name="text"' in text and "提交咨询" in text
    short = await post(client, ASK, {"csrf": csrf, "idem": _key(text), "text": "能办"})
    assert short.status == 422 and 'id="text-err"' in short.text and ">能办</textarea>" in short.text
    assert 'aria-describedby="text-err"' in short.text

    question = "外地户籍可以在这里办理吗？"
    form = {"csrf": csrf, "idem": _key(short.text), "text": question}
    first = await post(client, ASK, form)
    assert first.status == 303 and first.headers["location"].startswith("/m/me/questions/")
    again = await post(client, ASK, form)  # a double submit of the same form asks once
    assert again.status == 303 and again.headers["location"] == first.headers["location"]
    qid = first.headers["location"].rsplit("/", 1)[1]
    edited = await post(client, ASK, {**form, "text": "改了问题又用旧页面提交"})  # back button, edit, submit
    assert edited.status == 422 and "本页已提交过其他内容" in edited.text and ">改了问题又用旧页面提交<" in edited.text
    assert _key(edited.text) != form["idem"]  # a fresh form: submitting it again asks the edited question
    _, mine = await client.get("/api/v1/questions", headers=headers)
    assert [q["id"] for q in mine.json["items"]] == [qid]

    _, page = await client.get(f"/m/me/questions/{qid}")
    assert page.status == 200 and question in page.text and "待答复" in page.text
    assert "/m/rate/new" not in page.text  # nothing to rate before the answer
    _, r = await client.post(
        f"/api/v1/staff/questions/{qid}/answer", json={"answer": "可以，凭身份证办理。"}, headers=reviewer
    )
    assert r.status_code == 200, r.text
    _, listed = await client.get("/m/me/questions")
    assert listed.status == 200 and f'href="/m/me/questions/{qid}"' in listed.text and "已答复" in listed.text
    _, page = await client.get(f"/m/me/questions/{qid}")
    assert "可以，凭身份证办理。" in page.text and "已答复" in page.text
    link = f"/m/rate/new?subject_type=consultation&amp;subject_id={qid}"
    assert link in page.text

    rid = rating_id_of(await rate_page(client, "consultation", qid, 4, tags=GOOD_TAGS[2], comment="清楚"))
    _, rating = await client.get(f"/m/me/ratings/{rid}")
    assert rating.status == 200 and "满意" in rating.text and GOOD_TAGS[2] in rating.text and "清楚" in rating.text
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert (api.json["subject_type"], api.json["subject_id"], api.json["level"]) == ("consultation", qid, 4)
    assert api.json["tags"] == [GOOD_TAGS[2]] and api.json["rectification"] is None
    _, page = await client.get(f"/m/me/questions/{qid}")
    assert link not in page.text and f'href="/m/me/ratings/{rid}"' in page.text


async def test_the_consult_page_shows_the_faq_and_sends_an_anonymous_visitor_to_sign_in(seeded, make_citizen,
                                                                                         make_staff):  # fmt: skip
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    qid = await answered_question(client, citizen, reviewer)
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/publish", json={}, headers=reviewer)
    assert r.status_code == 200
    _, page = await client.get(ASK)
    assert page.status == 200 and 'class="consult-faq"' in page.text and "需要带哪些材料？" in page.text
    # Signed out, the page asks to sign in before anything is typed (nothing typed is lost on the way).
    assert 'name="text"' not in page.text and f'href="/m/login?next={ASK}"' in page.text and 'href="tel:' in page.text
    csrf = _csrf(page.text)
    sent = await post(client, ASK, {"csrf": csrf, "idem": "k" * 16, "text": "可以代办吗？"},
                      headers={"Referer": f"http://testserver{ASK}"})  # fmt: skip
    assert sent.status == 303 and sent.headers["location"] == f"/m/login?next={ASK}"
    _, mine = await client.get("/api/v1/questions", headers=citizen)
    assert mine.json["total"] == 1  # the anonymous post asked nothing


# -- rating each kind of subject ------------------------------------------------------------------------


async def test_rate_a_finished_case_and_follow_its_rectification(seeded, app, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005002")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    text, _ = await form_of(client, "/m/rate/new", subject_type="case", subject_id=case_no.lower())
    assert case_no in text and "非常满意" in text and "非常不满意" in text
    assert all(f'value="{t}"' in text for t in TAG_LIST)
    assert "做得好的" in text and "需要改进的" in text
    assert text.index(GOOD_TAGS[-1]) < text.index("需要改进的") < text.index(BAD_TAGS[0])  # grouped

    r = await rate_page(client, "case", case_no.lower(), 1, tags=[BAD_TAGS[0], BAD_TAGS[1]], comment="跑了三次")
    rid = rating_id_of(r)
    _, page = await client.get(f"/m/me/ratings/{rid}")
    assert "非常不满意" in page.text and case_no in page.text and "已转责任部门" in page.text
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert api.json["tags"] == [BAD_TAGS[0], BAD_TAGS[1]] and api.json["comment"] == "跑了三次"
    path = f"/api/v1/staff/rectifications/{api.json['rectification']['id']}/steps"
    for body in ({"action": "verify", "note": "属实"}, {"action": "rectify", "note": "培训"},
                 {"action": "reply", "reply": "已整改，欢迎监督"}):  # fmt: skip
        _, r = await client.post(path, json=body, headers=reviewer)
        assert r.status_code == 200, r.text
    _, page = await client.get(f"/m/me/ratings/{rid}")
    assert 'id="reply">已整改，欢迎监督<' in page.text and "答复评价人" in page.text and "属实" not in page.text
    _, listed = await client.get("/m/me/ratings")
    assert f'href="/m/me/ratings/{rid}"' in listed.text and "非常不满意" in listed.text

    _, again = await client.get(
        "/m/rate/new", params={"subject_type": "case", "subject_id": case_no}, follow_redirects=False
    )
    assert again.status == 303 and again.headers["location"] == f"/m/me/ratings/{rid}?rated=1"
    _, shown = await client.get(again.headers["location"])
    assert "已评价过（一次一评）" in shown.text


async def test_rate_a_counter_visit(seeded, app, fake_clock, make_citizen, make_staff):
    client = seeded
    phone = "13900005003"
    _, headers = await make_citizen(phone=phone)
    checkin_id = await visit(client, fake_clock, make_staff, headers, counter="B03")
    headers = await signed_in(client, app, make_citizen, phone)
    text, _ = await form_of(client, "/m/rate/new", subject_type="visit", subject_id=checkin_id)
    assert "B03" in text and "签到时间" in text and "2026-09-30 10:45" in text
    rid = rating_id_of(await rate_page(client, "visit", checkin_id, 5, tags=[GOOD_TAGS[0], GOOD_TAGS[4]]))
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert (api.json["subject_type"], api.json["subject_id"], api.json["level"]) == ("visit", checkin_id, 5)
    assert (api.json["hall"], api.json["counter"], api.json["tags"]) == ("main", "B03", [GOOD_TAGS[0], GOOD_TAGS[4]])
    _, page = await client.get(f"/m/me/ratings/{rid}")
    assert "窗口服务" in page.text and "非常满意" in page.text and 'id="rectification"' not in page.text


async def test_what_cannot_be_rated_says_why_without_a_form(seeded, app, fake_clock, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005004")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.post(f"/api/v1/matters/{ch.MATTER}/questions", json={"text": "还没答复的问题"}, headers=headers)
    _, pending = await client.get("/m/rate/new", params={"subject_type": "consultation", "subject_id": r.json["id"]})
    assert pending.status == 409 and "暂不能评价" in pending.text and 'name="level"' not in pending.text
    case_no = await ch.drive(client, headers, reviewer, "completed")
    fake_clock.advance(days=31)
    # The session has expired by now, and a new SMS code may not be sent to the phone within the minute.
    _, fresh = await make_citizen(phone="13900005004", audience="h5")
    client.cookies.clear()
    client.cookies.set(ACCESS_COOKIE, fresh["Authorization"].removeprefix("Bearer "))
    _, late = await client.get("/m/rate/new", params={"subject_type": "case", "subject_id": case_no})
    assert late.status == 409, late.headers.get("location")
    assert "已超过评价期限" in late.text and 'name="level"' not in late.text
    _, bad = await client.get("/m/rate/new", params={"subject_type": "booking", "subject_id": case_no})
    assert bad.status == 422 and "INVALID_INPUT" in bad.text


# -- tags, levels ---------------------------------------------------------------------------------------


async def test_a_wrong_tag_lists_the_valid_tags_on_the_page_and_in_the_api(seeded, app, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005005")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    r = await rate_page(client, "case", case_no, 2, tags=[BAD_TAGS[0], "服务特别好"], comment="等太久")
    assert r.status == 422 and 'id="tags-err"' in r.text and 'aria-describedby="tags-err"' in r.text
    message = re.search(r'id="tags-err">([^<]+)<', r.text).group(1)
    assert "服务特别好" in message and all(t in message for t in TAG_LIST)
    # what was chosen is kept: the level, the valid tag and the comment
    assert (
        'value="2" checked' in r.text and f'value="{BAD_TAGS[0]}" checked' in r.text and ">等太久</textarea>" in r.text
    )
    no_level = await post(client, "/m/rate/new", {"csrf": _csrf(r.text), "subject_type": "case", "subject_id": case_no})
    assert no_level.status == 422 and 'id="level-err">请选择满意程度<' in no_level.text

    body = {"subject_type": "case", "subject_id": case_no, "level": 5, "tags": ["不存在的标签"]}
    _, api = await client.post("/api/v1/ratings", json=body, headers=headers)
    assert api.status_code == 422 and api.json["error"]["code"] == "INVALID_INPUT"
    (reason,) = api.json["error"]["details"]["fields"]["tags"]
    assert "不存在的标签" in reason and all(t in reason for t in TAG_LIST)
    _, ratings = await client.get("/api/v1/ratings", headers=headers)
    assert ratings.json["total"] == 0


# -- addendum -------------------------------------------------------------------------------------------


async def test_an_addendum_is_added_once(seeded, app, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005006")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, headers, reviewer, "completed")
    rid = rating_id_of(await rate_page(client, "case", case_no, 3, comment="一般"))
    text, csrf = await form_of(client, f"/m/me/ratings/{rid}")
    path = f"/m/me/ratings/{rid}/addendum"
    assert f'action="{path}"' in text
    empty = await post(client, path, {"csrf": csrf, "comment": "  "})
    assert empty.status == 422 and 'id="comment-err"' in empty.text
    done = await post(client, path, {"csrf": csrf, "comment": "后来电话回访了，点赞"})
    assert done.status == 303 and done.headers["location"] == f"/m/me/ratings/{rid}"
    _, page = await client.get(f"/m/me/ratings/{rid}")
    assert 'id="addendum">后来电话回访了，点赞<' in page.text and f'action="{path}"' not in page.text
    twice = await post(client, path, {"csrf": csrf, "comment": "再改一次"})
    assert twice.status == 409 and "已追加过评价" in twice.text
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert (api.json["addendum"], api.json["level"], api.json["comment"]) == ("后来电话回访了，点赞", 3, "一般")


# -- whose things, and forms ------------------------------------------------------------------------------


async def test_another_citizen_can_neither_see_nor_rate_my_things(seeded, app, make_citizen, make_staff):
    client = seeded
    mine = await signed_in(client, app, make_citizen, "13900005007")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    qid = await answered_question(client, mine, reviewer)
    case_no = await ch.drive(client, mine, reviewer, "completed")
    rid = rating_id_of(await rate_page(client, "consultation", qid, 5))

    other = await signed_in(client, app, make_citizen, "13900005008")
    for path in (f"/m/me/questions/{qid}", f"/m/me/ratings/{rid}"):
        _, r = await client.get(path)
        assert r.status == 404, path
    _, listed = await client.get("/m/me/questions")
    assert qid not in listed.text and "需要带哪些材料？" not in listed.text
    _, listed = await client.get("/m/me/ratings")
    assert rid not in listed.text
    _, form = await client.get("/m/rate/new", params={"subject_type": "case", "subject_id": case_no})
    assert form.status == 404 and "未找到可评价" in form.text and 'name="level"' not in form.text
    csrf = _csrf(form.text)
    r = await post(client, "/m/rate/new", {"csrf": csrf, "subject_type": "case", "subject_id": case_no, "level": 1})
    assert r.status == 404 and 'id="subject-err"' in r.text
    r = await post(client, f"/m/me/ratings/{rid}/addendum", {"csrf": csrf, "comment": "冒充追评"})
    assert r.status == 404
    _, api = await client.get("/api/v1/ratings", headers=other)
    assert api.json["total"] == 0
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=mine)
    assert api.json["addendum"] is None


async def test_forms_without_their_token_are_refused(seeded, app, make_citizen, make_staff):
    client = seeded
    headers = await signed_in(client, app, make_citizen, "13900005009")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    qid = await answered_question(client, headers, reviewer)
    text, _ = await form_of(client, ASK)
    r = await post(client, ASK, {"idem": _key(text), "text": "没有令牌的提问"})
    assert r.status == 403 and "FORM_EXPIRED" in r.text
    r = await post(client, "/m/rate/new", {"subject_type": "consultation", "subject_id": qid, "level": 1})
    assert r.status == 403 and "FORM_EXPIRED" in r.text
    rid = rating_id_of(await rate_page(client, "consultation", qid, 4))
    r = await post(client, f"/m/me/ratings/{rid}/addendum", {"csrf": "0" * 32, "comment": "伪造"})
    assert r.status == 403 and "FORM_EXPIRED" in r.text
    _, api = await client.get("/api/v1/questions", headers=headers)
    assert api.json["total"] == 1  # the question of answered_question only
    _, api = await client.get(f"/api/v1/ratings/{rid}", headers=headers)
    assert api.json["level"] == 4 and api.json["addendum"] is None


async def test_the_rate_page_shows_satisfaction_and_where_to_rate(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    qid = await answered_question(client, citizen, reviewer)
    _, r = await client.post(
        "/api/v1/ratings", json={"subject_type": "consultation", "subject_id": qid, "level": 5}, headers=citizen
    )
    assert r.status_code == 201
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/publish", json={}, headers=reviewer)  # rebuilds the guide
    _, page = await client.get(f"/m/{ch.MATTER}/rate")
    assert page.status == 200 and "<h1>评价</h1>" in page.text and "好评率 <b>100.0%</b>（1 条评价）" in page.text
    for link in ("/m/me/bookings", "/m/me/cases", "/m/me/questions", "/m/me/ratings", f"/m/{ch.MATTER}"):
        assert f'href="{link}"' in page.text
