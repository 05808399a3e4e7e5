"""Online submission end to end through the HTTP API: upload, submit, accept, review, decide, deliver, complete."""

from __future__ import annotations

import uuid

import pytest

from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MATTER = "4308-XK-SS-001"


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


async def upload(client, headers, data: bytes, name: str, **params):
    files = {"file": (name, data, "application/octet-stream")}
    _, r = await client.post("/api/v1/uploads", headers=headers, files=files, params=params)
    return r


async def submit(client, headers, **overrides):
    pdf = (await upload(client, headers, PDF, "申请书.pdf")).json
    png = (await upload(client, headers, PNG, "id.png")).json
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "form": {"company_name": "张家界测试有限公司"},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf["id"]]},
            {"name": "居民身份证", "upload_ids": [png["id"]]},
        ],
        "delivery": {"method": "window"},
    }
    body.update(overrides)
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    return r


async def test_submit_then_the_whole_lifecycle(seeded, make_citizen, make_staff):
    client = seeded
    _, headers = await make_citizen()
    r = await submit(client, headers)
    assert r.status_code == 201, r.text
    case = r.json
    assert case["status"] == "submitted" and len(case["query_code"]) == 8
    case_no = case["case_no"]
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    for action in ("accept", "start_review", "approve", "deliver", "complete"):
        _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action}, headers=reviewer)
        assert r.status_code == 200, (action, r.text)
    assert r.json["status"] == "completed"
    _, r = await client.get("/api/v1/progress", params={"case_no": case_no, "query_code": case["query_code"]})
    assert r.status_code == 200, r.text
    assert [e["action"] for e in r.json["timeline"]] == [
        "submit",
        "accept",
        "start_review",
        "approve",
        "deliver",
        "complete",
    ]
    _, r = await client.get("/api/v1/progress", params={"case_no": case_no, "query_code": "AAAAAAAA"})
    assert r.status_code == 404 and r.json["error"]["code"] == "PROGRESS_NOT_FOUND"
    _, r = await client.get(f"/api/v1/staff/cases/{case_no}", headers=reviewer)
    assert len(r.json["notifications"]) == 6


async def test_exe_renamed_pdf_is_refused(seeded, make_citizen):
    _, headers = await make_citizen()
    r = await upload(seeded, headers, b"MZ\x90\x00" + b"\x00" * 200, "setup.pdf")
    assert r.status_code == 422 and r.json["error"]["code"] == "FILE_TYPE_MISMATCH"


async def test_query_code_is_stored_nowhere_in_plain_text_yet_a_retry_gets_it(seeded, make_citizen):
    from app.cases.models import Case
    from app.idempotency import IdempotencyRecord

    client = seeded
    _, headers = await make_citizen()
    pdf = (await upload(client, headers, PDF, "a.pdf")).json
    png = (await upload(client, headers, PNG, "b.png")).json
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "李四", "id_number": make_id_number(seq="456")},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf["id"]]},
            {"name": "居民身份证", "upload_ids": [png["id"]]},
        ],
    }
    key = {**headers, "Idempotency-Key": "retry-1"}
    _, first = await client.post("/api/v1/cases", json=body, headers=key)
    _, again = await client.post("/api/v1/cases", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content  # the same bytes, query code included
    code = first.json["query_code"]
    stored = await IdempotencyRecord.get(key="retry-1")
    assert code not in stored.response and "query_code_sealed" in stored.response
    row = await Case.get(case_no=first.json["case_no"])
    assert code not in row.query_code_hash and len(row.query_code_hash) == 64


async def test_one_file_listed_twice_for_a_material_is_refused(seeded, make_citizen):
    client = seeded
    _, headers = await make_citizen()
    pdf = (await upload(client, headers, PDF, "a.pdf")).json
    png = (await upload(client, headers, PNG, "b.png")).json
    r = await submit(
        client,
        headers,
        materials=[
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf["id"], pdf["id"]]},
            {"name": "居民身份证", "upload_ids": [png["id"]]},
        ],
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "UPLOAD_REPEATED"


async def test_an_expired_upload_cannot_be_submitted(seeded, make_citizen, fake_clock):
    client = seeded
    _, headers = await make_citizen(phone="13900000077")
    pdf = (await upload(client, headers, PDF, "a.pdf")).json
    png = (await upload(client, headers, PNG, "b.png")).json
    fake_clock.advance(hours=25)  # past UPLOAD_KEEP_HOURS, before the hourly sweep came by
    _, headers = await make_citizen(phone="13900000077")  # a fresh token of the same citizen
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf["id"]]},
            {"name": "居民身份证", "upload_ids": [png["id"]]},
        ],
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": "expired-1"})
    assert r.status_code == 404 and r.json["error"]["code"] == "UPLOAD_NOT_FOUND"
