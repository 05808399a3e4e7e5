"""Online submission (POST /api/v1/cases): the guide's rules, who may apply, what is stored, idempotency, races."""

from __future__ import annotations

import asyncio
import collections
import re
import uuid

import pytest
from tortoise import connections

from app.cases.models import Case, CaseEvent, CaseMaterial, CaseSequence, Upload
from app.cases.service import QUERY_ALPHABET, query_code_hash
from app.idempotency import IdempotencyRecord
from app.matters import service as catalogue
from app.notify.models import Notification
from auth.idcard import make_id_number
from auth.models import Citizen
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MATTER = "4308-XK-SS-001"
NO_ONLINE = "4308-XK-SS-003"
NO_POST = "4308-XK-SS-004"
REAL_NAME = "4308-XK-SS-005"
FORM_NAME = "公司登记（备案）申请书"
ID_CARD = "居民身份证"
CASES = "/api/v1/cases"
APPLICANT_ID = make_id_number(seq="135")
PRINCIPAL_ID = make_id_number(region="430821", seq="246")

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(body: str) -> str:
    """A unified social credit code with its GB 32100-2015 check character."""
    total = sum(_USCC_CHARS.index(ch) * w for ch, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_CHARS[(31 - total % 31) % 31]


GOOD_USCC = uscc("91430802MA4L12345")
BAD_USCC = GOOD_USCC[:-1] + ("0" if GOOD_USCC[-1] != "0" else "1")


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(
        client.sanic_app.ctx.catalogue,
        data=factories.catalogue(
            factories.entry(MATTER),
            factories.entry(NO_ONLINE, name="不可网办的事项", online_apply=False),
            factories.entry(NO_POST, name="不可邮寄的事项", postal_delivery=False),
            factories.entry(REAL_NAME, name="须实名的事项", apply_loa=3),
        ),
    )
    return client


async def upload(client, headers, data: bytes, name: str) -> str:
    _, r = await client.post(
        "/api/v1/uploads", headers=headers, files={"file": (name, data, "application/octet-stream")}
    )
    assert r.status_code == 201, r.text
    return r.json["id"]


async def both_uploads(client, headers) -> tuple[str, str]:
    return await upload(client, headers, PDF, "申请书.pdf"), await upload(client, headers, PNG, "id.png")


def body_for(pdf_id: str | None, png_id: str | None, *, matter: str = MATTER, **overrides) -> dict:
    materials = []
    if pdf_id:
        materials.append({"name": FORM_NAME, "upload_ids": [pdf_id]})
    if png_id:
        materials.append({"name": ID_CARD, "upload_ids": [png_id]})
    body = {
        "matter_code": matter,
        "applicant": {"kind": "self", "name": "张三", "id_number": APPLICANT_ID},
        "form": {"company_name": "张家界测试有限公司"},
        "materials": materials,
        "delivery": {"method": "window"},
    }
    body.update(overrides)
    return body


def agent(principal: dict) -> dict:
    return {"kind": "agent", "principal": principal}


async def post_case(client, headers, body, *, key: str | None = None, with_key: bool = True):
    extra = {"Idempotency-Key": key or uuid.uuid4().hex} if with_key else {}
    _, r = await client.post(CASES, json=body, headers={**headers, **extra})
    return r


def error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.json["error"]["code"] == code, r.text
    return r.json["error"]["details"]


async def nothing_filed() -> None:
    assert await Case.all().count() == 0
    assert await CaseMaterial.all().count() == 0
    assert await CaseEvent.all().count() == 0
    assert await Upload.filter(case_id__isnull=False).count() == 0
    assert await IdempotencyRecord.all().count() == 0, "a refused request releases its key"


# -- the guide's rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "missing"),
    [((False, False), [FORM_NAME, ID_CARD]), ((True, False), [ID_CARD]), ((False, True), [FORM_NAME])],
)
async def test_missing_required_materials(seeded, make_citizen, given, missing):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    r = await post_case(seeded, headers, body_for(pdf if given[0] else None, png if given[1] else None))
    details = error(r, 422, "MATERIALS_MISSING")
    assert details["missing"] == missing
    for name in missing:
        assert name in r.json["error"]["message"]
    await nothing_filed()


async def test_unknown_material(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    extra = await upload(seeded, headers, PDF, "extra.pdf")
    body = body_for(pdf, png)
    body["materials"].append({"name": "户口簿", "upload_ids": [extra]})
    details = error(await post_case(seeded, headers, body), 422, "MATERIAL_UNKNOWN")
    assert details["name"] == "户口簿"
    assert details["materials"] == [FORM_NAME, ID_CARD]
    await nothing_filed()


async def test_material_handed_in_twice(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    png2 = await upload(seeded, headers, PNG + b"\x01", "id2.png")
    body = body_for(pdf, png)
    body["materials"].append({"name": ID_CARD, "upload_ids": [png2]})
    error(await post_case(seeded, headers, body), 422, "MATERIAL_REPEATED")
    await nothing_filed()


async def test_upload_of_the_wrong_type_for_its_material(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    details = error(await post_case(seeded, headers, body_for(png, pdf)), 422, "FILE_TYPE_MISMATCH")
    assert details["accepted"] == ["pdf"]
    await nothing_filed()


async def test_unknown_matter(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    error(await post_case(seeded, headers, body_for(pdf, png, matter="4308-XK-SS-999")), 404, "MATTER_NOT_FOUND")
    await nothing_filed()


async def test_matter_without_online_application(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    details = error(
        await post_case(seeded, headers, body_for(pdf, png, matter=NO_ONLINE)), 422, "ONLINE_APPLY_NOT_OFFERED"
    )
    assert details["matter_code"] == NO_ONLINE
    await nothing_filed()


EMS = {
    "method": "ems",
    "address": {
        "name": "李四",
        "phone": "13812345678",
        "region": "湖南省张家界市永定区",
        "detail": "子午路 99 号 3 栋",
    },
}


async def test_postal_delivery_where_not_offered(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    details = error(
        await post_case(seeded, headers, body_for(pdf, png, matter=NO_POST, delivery=EMS)), 422, "DELIVERY_NOT_OFFERED"
    )
    assert details["matter_code"] == NO_POST
    await nothing_filed()
    # the same matter by the window is fine
    r = await post_case(seeded, headers, body_for(pdf, png, matter=NO_POST))
    assert r.status_code == 201, r.text


async def test_postal_delivery_address_is_stored_encrypted_and_shown_masked(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    r = await post_case(seeded, headers, body_for(pdf, png, delivery=EMS))
    assert r.status_code == 201, r.text
    shown = r.json["delivery"]
    assert shown["method"] == "ems"
    assert shown["address"] == {
        "name": "李*",
        "phone": "138****5678",
        "region": "湖南省张家界市永定区",
        "detail": "****",
    }
    row = await Case.get(case_no=r.json["case_no"])
    assert set(row.delivery) == {"method", "address_enc"}
    for secret in ("李四", "13812345678", "子午路"):
        assert secret not in str(row.delivery)


async def test_ems_needs_an_address(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    error(await post_case(seeded, headers, body_for(pdf, png, delivery={"method": "ems"})), 422, "INVALID_INPUT")
    await nothing_filed()


# -- who may apply ---------------------------------------------------------------------------------


async def test_real_name_matter_needs_loa_3(seeded, make_citizen):
    _, low = await make_citizen(loa=2)
    pdf, png = await both_uploads(seeded, low)
    details = error(await post_case(seeded, low, body_for(pdf, png, matter=REAL_NAME)), 403, "ASSURANCE_TOO_LOW")
    assert details == {"required_loa": 3, "current_loa": 2}
    await nothing_filed()
    _, high = await make_citizen(loa=3)
    pdf, png = await both_uploads(seeded, high)
    r = await post_case(seeded, high, body_for(pdf, png, matter=REAL_NAME))
    assert r.status_code == 201, r.text
    assert r.json["matter"]["code"] == REAL_NAME and r.json["agent"] is False


async def test_agent_needs_loa_3(seeded, make_citizen, auth_deps):
    principal = {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID, "phone": "13700001111"}
    _, low = await make_citizen(loa=2)
    pdf, png = await both_uploads(seeded, low)
    details = error(
        await post_case(seeded, low, body_for(pdf, png, applicant=agent(principal))), 403, "ASSURANCE_TOO_LOW"
    )
    assert details == {"required_loa": 3, "current_loa": 2}
    await nothing_filed()

    citizen, high = await make_citizen(loa=3)
    pdf, png = await both_uploads(seeded, high)
    r = await post_case(seeded, high, body_for(pdf, png, applicant=agent(principal)))
    assert r.status_code == 201, r.text
    assert r.json["agent"] is True
    assert r.json["principal"] == {
        "kind": "person",
        "name": "王*",
        "id_number": PRINCIPAL_ID[:3] + "*" * 11 + PRINCIPAL_ID[-4:],
        "phone": "137****1111",
    }
    row = await Case.get(case_no=r.json["case_no"])
    assert row.agent is True and row.citizen_id == citizen.id and row.principal_kind == "person"
    assert row.principal_id_bidx == auth_deps.cipher.blind_index(PRINCIPAL_ID, kind="id_number")
    assert auth_deps.cipher.decrypt(row.principal_name_enc, aad=f"case:{row.id}:name") == "王五"


@pytest.mark.parametrize(
    ("number", "status", "code"),
    [
        (PRINCIPAL_ID[:17] + ("0" if PRINCIPAL_ID[17] != "0" else "1"), 422, "ID_NUMBER_INVALID"),  # check digit
        ("430821999901011234", 422, "ID_NUMBER_INVALID"),  # no such birth date
        ("4308211990", 422, "INVALID_INPUT"),  # too short for the schema
    ],
)
async def test_agent_for_a_person_with_an_invalid_id_number(seeded, make_citizen, number, status, code):
    _, headers = await make_citizen(loa=3)
    pdf, png = await both_uploads(seeded, headers)
    principal = {"kind": "person", "name": "王五", "id_number": number}
    error(await post_case(seeded, headers, body_for(pdf, png, applicant=agent(principal))), status, code)
    await nothing_filed()


async def test_agent_for_a_company(seeded, make_citizen, auth_deps):
    _, headers = await make_citizen(loa=3)
    pdf, png = await both_uploads(seeded, headers)
    bad = {"kind": "company", "name": "张家界测试有限公司", "id_number": BAD_USCC}
    details = error(await post_case(seeded, headers, body_for(pdf, png, applicant=agent(bad))), 422, "INVALID_INPUT")
    assert "统一社会信用代码" in str(details)
    await nothing_filed()

    good = {**bad, "id_number": GOOD_USCC.lower()}
    r = await post_case(seeded, headers, body_for(pdf, png, applicant=agent(good)))
    assert r.status_code == 201, r.text
    assert r.json["agent"] is True
    assert r.json["principal"]["kind"] == "company" and r.json["principal"]["name"] == "张" + "*" * 8
    row = await Case.get(case_no=r.json["case_no"])
    assert row.principal_kind == "company"
    assert auth_deps.cipher.decrypt(row.principal_id_enc, aad=f"case:{row.id}:id_number") == GOOD_USCC


@pytest.mark.parametrize(
    ("applicant", "code"),
    [
        ({"kind": "self", "name": "张三", "id_number": APPLICANT_ID[:17] + "Z"}, "ID_NUMBER_INVALID"),
        ({"kind": "self", "id_number": APPLICANT_ID}, "APPLICANT_INCOMPLETE"),
        ({"kind": "self", "name": "张三"}, "APPLICANT_INCOMPLETE"),
        ({"kind": "self", "name": "张三", "id_number": APPLICANT_ID, "principal": {"name": "x", "id_number": "1" * 18}},
         "INVALID_INPUT"),
        ({"kind": "agent"}, "INVALID_INPUT"),
    ],
)  # fmt: skip
async def test_applicant_block_is_checked(seeded, make_citizen, applicant, code):
    _, headers = await make_citizen(loa=3)
    pdf, png = await both_uploads(seeded, headers)
    error(await post_case(seeded, headers, body_for(pdf, png, applicant=applicant)), 422, code)
    await nothing_filed()


# -- the answer and what is kept -------------------------------------------------------------------


async def test_answer_and_stored_row(seeded, make_citizen, settings, auth_deps, fake_clock):
    citizen, headers = await make_citizen(phone="13912345678")
    pdf, png = await both_uploads(seeded, headers)
    r = await post_case(seeded, headers, body_for(pdf, png))
    assert r.status_code == 201, r.text
    answer = r.json
    assert "idempotent-replayed" not in r.headers
    assert re.fullmatch(r"ZJJ\d{8}\d{6}", answer["case_no"])
    assert answer["case_no"] == "ZJJ20260930000001"  # the Shanghai date, the day's first case
    code = answer["query_code"]
    assert len(code) == 8 and set(code) <= set(QUERY_ALPHABET)
    receipt = answer["receipt"]
    assert receipt["case_code"].startswith("ZC1")
    assert receipt["progress_url"] == f"http://testserver/p/{receipt['case_code']}"
    assert answer["status"] == "submitted" and answer["agent"] is False
    assert answer["principal"] == {
        "kind": "person",
        "name": "张*",
        "id_number": APPLICANT_ID[:3] + "*" * 11 + APPLICANT_ID[-4:],
        "phone": "139****5678",
    }
    assert [(m["name"], m["upload_id"]) for m in answer["materials"]] == [(FORM_NAME, pdf), (ID_CARD, png)]
    assert [e["action"] for e in answer["timeline"]] == ["submit"]

    row = await Case.get(case_no=answer["case_no"])
    assert re.fullmatch(r"[0-9a-f]{64}", row.query_code_hash)
    assert row.query_code_hash == query_code_hash(settings, row.case_no, code)
    assert row.citizen_id == citizen.id
    raw = (await connections.get("default").execute_query_dict("SELECT * FROM case_record"))[0]
    text = str(raw)
    for secret in (code, "张三", APPLICANT_ID, "13912345678"):
        assert secret not in text, f"{secret!r} stored in clear"
    assert raw["principal_name_enc"].startswith("v1.") and raw["principal_id_enc"].startswith("v1.")
    assert auth_deps.cipher.decrypt(row.principal_name_enc, aad=f"case:{row.id}:name") == "张三"
    assert auth_deps.cipher.decrypt(row.principal_id_enc, aad=f"case:{row.id}:id_number") == APPLICANT_ID
    # the uploads now belong to the case and no longer expire
    for upload_id in (pdf, png):
        u = await Upload.get(id=upload_id)
        assert u.case_id == row.id and u.expires_at is None
    assert await CaseMaterial.filter(case_id=row.id).count() == 2
    assert await Notification.filter(subject_type="case", subject_id=row.case_no).count() == 1
    # the code on the receipt opens the anonymous progress page
    _, p = await seeded.get("/api/v1/progress", params={"case_no": row.case_no, "query_code": code.lower()})
    assert p.status_code == 200 and p.json["case_no"] == row.case_no, p.text
    _, p = await seeded.get("/api/v1/progress", params={"code": receipt["case_code"]})
    assert p.status_code == 200 and p.json["case_no"] == row.case_no, p.text
    # the owner's detail does not show the query code again
    _, d = await seeded.get(f"{CASES}/{row.case_no}", headers=headers)
    assert d.status_code == 200 and "query_code" not in d.json


async def test_staff_see_the_principal_in_full(seeded, make_citizen, make_staff):
    """The reviewer reads the principal's full name and ID number (the row holds them encrypted)."""
    _, headers = await make_citizen(loa=3)
    principal = {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID, "phone": "13700001111"}
    r = await post_case(seeded, headers, body_for(*await both_uploads(seeded, headers), applicant=agent(principal)))
    assert r.status_code == 201, r.text
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await seeded.get(f"/api/v1/staff/cases/{r.json['case_no']}", headers=reviewer)
    assert r.status_code == 200, r.text
    assert r.json["principal"] == {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID, "phone": "13700001111"}


async def test_case_numbers_follow_each_other(seeded, make_citizen, fake_clock):
    numbers = []
    for _ in range(3):
        _, headers = await make_citizen()
        pdf, png = await both_uploads(seeded, headers)
        r = await post_case(seeded, headers, body_for(pdf, png))
        assert r.status_code == 201, r.text
        numbers.append(r.json["case_no"])
    assert numbers == [f"ZJJ20260930{n:06d}" for n in (1, 2, 3)]
    fake_clock.advance(days=1)
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    r = await post_case(seeded, headers, body_for(pdf, png))
    assert r.json["case_no"] == "ZJJ20261001000001", r.text


# -- idempotency ---------------------------------------------------------------------------------------


async def test_same_key_same_body_replays_the_answer(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    body = body_for(pdf, png)
    key = uuid.uuid4().hex
    first = await post_case(seeded, headers, body, key=key)
    assert first.status_code == 201, first.text
    again = await post_case(seeded, headers, body, key=key)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content, "a replay is byte for byte the first answer"
    assert again.json["query_code"] == first.json["query_code"]
    stored = (await IdempotencyRecord.get()).response
    assert first.json["query_code"] not in stored, "the stored answer must not hold the query code in clear"
    assert await Case.all().count() == 1
    assert await CaseEvent.all().count() == 1
    assert (await CaseSequence.get()).issued == 1


async def test_same_key_other_body_is_refused(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    key = uuid.uuid4().hex
    first = await post_case(seeded, headers, body_for(pdf, png), key=key)
    assert first.status_code == 201, first.text
    other = body_for(pdf, png, form={"company_name": "另一家公司"})
    error(await post_case(seeded, headers, other, key=key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert await Case.all().count() == 1


async def test_same_key_of_another_citizen_is_theirs(seeded, make_citizen):
    _, alice = await make_citizen()
    _, bob = await make_citizen()
    key = "shared-key-0001"
    a = await post_case(seeded, alice, body_for(*await both_uploads(seeded, alice)), key=key)
    b = await post_case(seeded, bob, body_for(*await both_uploads(seeded, bob)), key=key)
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert "idempotent-replayed" not in b.headers
    assert a.json["case_no"] != b.json["case_no"]
    assert await Case.all().count() == 2


async def test_key_is_required_and_checked(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    error(await post_case(seeded, headers, body_for(pdf, png), with_key=False), 400, "IDEMPOTENCY_KEY_REQUIRED")
    _, r = await seeded.post(CASES, json=body_for(pdf, png), headers={**headers, "Idempotency-Key": ""})
    error(r, 400, "IDEMPOTENCY_KEY_REQUIRED")
    for bad in ("has space", "x" * 129, "tab\there"):
        _, r = await seeded.post(CASES, json=body_for(pdf, png), headers={**headers, "Idempotency-Key": bad})
        error(r, 400, "IDEMPOTENCY_KEY_INVALID")
    await nothing_filed()


async def test_refused_submission_frees_its_key_for_the_corrected_retry(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf, png = await both_uploads(seeded, headers)
    key = uuid.uuid4().hex
    error(await post_case(seeded, headers, body_for(pdf, None), key=key), 422, "MATERIALS_MISSING")
    r = await post_case(seeded, headers, body_for(pdf, png), key=key)
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    assert await Case.all().count() == 1


# -- who may read ----------------------------------------------------------------------------------


async def test_another_citizens_case_is_not_found(seeded, make_citizen):
    _, alice = await make_citizen()
    _, bob = await make_citizen(loa=3)
    r = await post_case(seeded, alice, body_for(*await both_uploads(seeded, alice)))
    case_no = r.json["case_no"]
    for path in (f"{CASES}/{case_no}", f"{CASES}/{case_no}/qr.png"):
        _, r = await seeded.get(path, headers=bob)
        details = error(r, 404, "CASE_NOT_FOUND")
        assert details["case_no"] == case_no
    _, r = await seeded.post(f"{CASES}/{case_no}/withdraw", headers=bob)
    error(r, 404, "CASE_NOT_FOUND")
    _, r = await seeded.get(f"{CASES}/ZJJ20990101000001", headers=bob)
    error(r, 404, "CASE_NOT_FOUND")
    _, r = await seeded.get(CASES, headers=bob)
    assert r.status_code == 200 and r.json["total"] == 0
    _, r = await seeded.get(f"{CASES}/{case_no}", headers=alice)
    assert r.status_code == 200 and r.json["case_no"] == case_no


async def test_the_principal_of_an_agent_case_may_read_it(seeded, make_citizen, auth_deps):
    _, agent_headers = await make_citizen(loa=3)
    principal = {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID}
    r = await post_case(
        seeded, agent_headers, body_for(*await both_uploads(seeded, agent_headers), applicant=agent(principal))
    )
    assert r.status_code == 201, r.text
    case_no = r.json["case_no"]

    phone = "13911112222"
    person, person_headers = await make_citizen(phone=phone, loa=3)
    person.id_number_bidx = auth_deps.cipher.blind_index(PRINCIPAL_ID, kind="id_number")
    await person.save(update_fields=["id_number_bidx"])
    _, stranger = await make_citizen(loa=3)

    _, r = await seeded.get(f"{CASES}/{case_no}", headers=person_headers)
    assert r.status_code == 200, r.text
    assert r.json["case_no"] == case_no and r.json["agent"] is True
    assert r.json["principal"]["name"] == "王*"

    _, r = await seeded.get(f"{CASES}/{case_no}", headers=stranger)
    error(r, 404, "CASE_NOT_FOUND")

    # the principal reads but does not act for the agent
    _, r = await seeded.post(f"{CASES}/{case_no}/withdraw", headers=person_headers)
    error(r, 404, "CASE_NOT_FOUND")
    assert (await Case.get(case_no=case_no)).status.value == "submitted"

    # the same person signed in at LoA 2 only: not enough to read someone else's case
    _, weak = await make_citizen(phone=phone, loa=2)
    _, r = await seeded.get(f"{CASES}/{case_no}", headers=weak)
    error(r, 404, "CASE_NOT_FOUND")


# -- races (PostgreSQL) ----------------------------------------------------------------------------


def tally(responses) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for r in responses:
        out[(r.status_code, r.json.get("error", {}).get("code") if r.status_code >= 400 else None)] += 1
    return out


def no_5xx(responses) -> None:
    errors = [(r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert not errors, errors[:3]


@pytest.mark.postgres
async def test_thirty_concurrent_submissions_get_consecutive_numbers(seeded, make_citizen, fake_clock):
    prepared = []
    for _ in range(30):
        _, headers = await make_citizen()
        prepared.append((headers, body_for(*await both_uploads(seeded, headers))))
    assert await Citizen.all().count() == 30
    responses = await asyncio.gather(*(post_case(seeded, h, b) for h, b in prepared))
    no_5xx(responses)
    assert tally(responses) == {(201, None): 30}
    numbers = sorted(r.json["case_no"] for r in responses)
    assert numbers == [f"ZJJ20260930{n:06d}" for n in range(1, 31)]
    assert len({r.json["query_code"] for r in responses}) == 30
    assert await Case.all().count() == 30
    assert (await CaseSequence.get(prefix="ZJJ")).issued == 30
    assert await Upload.filter(case_id__isnull=True).count() == 0
    assert await CaseMaterial.all().count() == 60


@pytest.mark.postgres
async def test_same_key_ten_times_at_once_files_one_case(seeded, make_citizen):
    _, headers = await make_citizen()
    body = body_for(*await both_uploads(seeded, headers))
    key = uuid.uuid4().hex
    responses = await asyncio.gather(*(post_case(seeded, headers, body, key=key) for _ in range(10)))
    no_5xx(responses)
    counts = tally(responses)
    assert set(counts) <= {(201, None), (409, "IDEMPOTENCY_IN_FLIGHT")}, counts
    created = [r for r in responses if r.status_code == 201]
    originals = [r for r in created if r.headers.get("idempotent-replayed") != "true"]
    assert len(originals) == 1, counts
    assert all(r.content == originals[0].content for r in created)
    for r in responses:
        if r.status_code == 409:
            assert r.headers["retry-after"] == "1"
    assert await Case.all().count() == 1
    assert await CaseEvent.all().count() == 1
    assert await CaseMaterial.all().count() == 2
    assert await IdempotencyRecord.all().count() == 1
    # Attempts racing the first each took a number before their key met its record: gaps, never two cases.
    assert 1 <= (await CaseSequence.get(prefix="ZJJ")).issued <= 10
    again = await post_case(seeded, headers, body, key=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == originals[0].content


@pytest.mark.postgres
async def test_same_uploads_under_ten_keys_at_once_go_to_one_case(seeded, make_citizen, fake_clock):
    """A double tap with fresh keys: the uploads are bound once, the other attempts roll back whole.

    The case number is taken before the transaction (a failed submission may leave a gap), so only
    its range and order are checked here.
    """
    _, headers = await make_citizen()
    body = body_for(*await both_uploads(seeded, headers))
    responses = await asyncio.gather(*(post_case(seeded, headers, body) for _ in range(10)))
    no_5xx(responses)
    assert tally(responses) == {(201, None): 1, (409, "UPLOAD_IN_USE"): 9}
    winner = next(r for r in responses if r.status_code == 201).json
    row = await Case.get()
    assert row.case_no == winner["case_no"] and row.case_no.startswith("ZJJ20260930")
    assert 1 <= int(row.case_no[-6:]) <= 10
    assert await CaseMaterial.filter(case_id=row.id).count() == 2
    assert await CaseMaterial.all().count() == 2
    assert await CaseEvent.all().count() == 1
    assert set(await Upload.all().values_list("case_id", flat=True)) == {row.id}
    assert await IdempotencyRecord.all().count() == 1, "the losers released their keys"
    _, other = await make_citizen()
    r = await post_case(seeded, other, body_for(*await both_uploads(seeded, other)))
    assert r.status_code == 201, r.text
    assert r.json["case_no"] > row.case_no


@pytest.mark.parametrize("delivery", [{"method": "window"}, EMS], ids=["window", "ems"])
@pytest.mark.parametrize("loa", [2, 3], ids=["self", "agent"])
async def test_the_answer_shows_the_case_as_its_detail_does(seeded, make_citizen, delivery, loa):
    """The answer is built from what the submission wrote (PostgreSQL reads nothing back): the detail agrees."""
    _, headers = await make_citizen(loa=loa)
    pdf, png = await both_uploads(seeded, headers)
    principal = {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID, "phone": "13700001111"}
    overrides = {"delivery": delivery} | ({"applicant": agent(principal)} if loa == 3 else {})
    r = await post_case(seeded, headers, body_for(pdf, png, **overrides))
    assert r.status_code == 201, r.text
    _, detail = await seeded.get(f"{CASES}/{r.json['case_no']}", headers=headers)
    assert detail.status_code == 200, detail.text
    answer = dict(r.json)
    assert answer.pop("query_code")
    assert answer.pop("receipt") == detail.json["receipt"]
    assert answer.pop("actions") == []  # as ever: the answer lists no actions, the detail the applicant's
    shown = {k: v for k, v in detail.json.items() if k not in {"receipt", "actions"}}
    assert answer == shown
    assert [m["name"] for m in answer["materials"]] == [FORM_NAME, ID_CARD]
    assert [e["action"] for e in answer["timeline"]] == ["submit"]
