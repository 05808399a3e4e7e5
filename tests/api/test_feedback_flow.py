"""Consultation, a bad rating through its rectification, and the indicators: one pass through the HTTP API."""

from __future__ import annotations

import pytest

from app.matters import service as catalogue
from tests.api import case_helpers as ch


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=ch.catalogue())
    return client


async def test_question_answer_and_faq_on_the_guide(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.post(
        f"/api/v1/matters/{ch.MATTER}/questions", json={"text": "外地户籍能办吗？电话 13912345678"}, headers=citizen
    )
    assert r.status_code == 201, r.text
    qid = r.json["id"]
    _, r = await client.get("/api/v1/staff/questions", params={"view": "unanswered"}, headers=reviewer)
    assert [q["id"] for q in r.json["items"]] == [qid]
    _, r = await client.post(
        f"/api/v1/staff/questions/{qid}/answer", json={"answer": "可以，凭身份证办理。"}, headers=reviewer
    )
    assert r.status_code == 200 and r.json["status"] == "answered"
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/publish", json={}, headers=reviewer)
    assert r.status_code == 200
    _, r = await client.get(f"/api/v1/matters/{ch.MATTER}")
    assert r.json["consult_faq"] == [{"question": "外地户籍能办吗？电话 ***", "answer": "可以，凭身份证办理。"}]
    _, other = await make_staff("reviewer", departments=["gjjzx"])
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": "再答"}, headers=other)
    assert r.status_code == 403 and r.json["error"]["code"] == "QUESTION_OUT_OF_SCOPE"


async def test_bad_rating_opens_a_rectification_that_runs_to_its_close(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen()
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, citizen, reviewer, "completed")
    rating = {"subject_type": "case", "subject_id": case_no, "level": 1, "tags": ["多次跑腿"], "comment": "跑了三次"}
    _, r = await client.post("/api/v1/ratings", json=rating, headers=citizen)
    assert r.status_code == 201, r.text
    rid, rect = r.json["id"], r.json["rectification"]
    assert rect["status"] == "open"
    _, again = await client.post("/api/v1/ratings", json={**rating, "level": 5}, headers=citizen)
    assert again.status_code == 409 and again.json["error"]["code"] == "ALREADY_RATED"
    path = f"/api/v1/staff/rectifications/{rect['id']}/steps"
    _, r = await client.post(path, json={"action": "reply", "reply": "抱歉"}, headers=reviewer)
    assert r.status_code == 409 and r.json["error"]["code"] == "RECTIFICATION_STEP_OUT_OF_ORDER"
    for body in ({"action": "verify", "note": "属实"}, {"action": "rectify", "note": "培训"},
                 {"action": "reply", "reply": "已整改，欢迎监督"}, {"action": "close"}):  # fmt: skip
        _, r = await client.post(path, json=body, headers=reviewer)
        assert r.status_code == 200, (body, r.text)
    _, r = await client.get(f"/api/v1/ratings/{rid}", headers=citizen)
    follow = r.json["rectification"]
    assert follow["status"] == "closed" and follow["reply"] == "已整改，欢迎监督"
    assert [s["action"] for s in follow["steps"]] == ["open", "verify", "rectify", "reply", "close"]
    assert "note" not in follow["steps"][1]  # internal notes stay with staff


async def test_indicators_and_dashboard(seeded, make_citizen, make_staff, admin_headers):
    client = seeded
    _, r = await client.get("/api/v1/admin/indicators", headers=admin_headers)
    assert r.status_code == 200, r.text
    city = r.json["city"]["indicators"]
    assert 0 <= city["one_visit_rate"]["value"] <= 1 and city["one_visit_rate"]["target"] == 0.95
    _, r = await client.get("/api/v1/admin/indicators", params={"format": "csv"}, headers=admin_headers)
    assert r.headers["content-type"].startswith("text/csv") and "one_visit_rate" in r.text
    _, r = await client.get("/stats")
    assert r.status_code == 200 and "<svg" in r.text and "最多跑一次率" in r.text


async def test_public_dashboard_is_limited_per_address_and_refuses_absurd_dates(seeded):
    client = seeded
    for params in ({"to": "9999-12-31"}, {"from": "0001-01-01", "to": "0001-01-01"}, {"from": "2027-01-02"}):
        _, r = await client.get("/stats", params=params)
        assert r.status_code == 422 and "RANGE_INVALID" in r.text, (params, r.status_code)
    statuses = [(await client.get("/stats"))[1].status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429


async def test_a_question_retried_with_its_key_is_asked_once(seeded, make_citizen):
    from app.feedback.models import Question

    client = seeded
    _, citizen = await make_citizen()
    path, body = f"/api/v1/matters/{ch.MATTER}/questions", {"text": "需要本人到场吗？"}
    headers = {**citizen, "Idempotency-Key": "ask-1"}
    _, first = await client.post(path, json=body, headers=headers)
    _, again = await client.post(path, json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    _, other = await client.post(path, json={"text": "另一个问题是什么？"}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    _, plain = await client.post(path, json=body, headers=citizen)  # no key: simply asked
    assert plain.status_code == 201
    assert await Question.all().count() == 2
