"""Who reads a case on the official account is who reads it in the API: one rule, in the case service.

A case number sent alone by a bound subscriber answers the case exactly when `GET /api/v1/cases/<no>` answers
it for the subscriber's account: the applicant (here an agent, 代办人), and the principal (被代办人) signed in
with the same verified ID number (LoA 3); not a stranger, and not the principal at a lower level.
"""

from __future__ import annotations

import pytest

from app.matters import service as catalogue
from app.wechat.replies import NOT_FOUND_CASE
from auth.idcard import make_id_number
from tests.api import case_helpers
from tests.api.test_wechat_events import at, bind, msg_id, openid, send, text_of
from tests.api.wechat_messages import event_xml, text_xml

PRINCIPAL_ID = make_id_number(region="430821", seq="318")


@pytest.fixture
def settings(wechat_settings):
    return wechat_settings


@pytest.fixture
async def seeded(client, fake_clock):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=case_helpers.catalogue())
    return client


async def _agent_case(client, headers) -> str:
    """An agent's application for the principal PRINCIPAL_ID; its number."""
    pdf = await case_helpers.upload(client, headers, case_helpers.PDF, "申请书.pdf")
    png = await case_helpers.upload(client, headers, case_helpers.PNG, "id.png")
    body = {
        "matter_code": case_helpers.MATTER,
        "applicant": {"kind": "agent", "principal": {"kind": "person", "name": "王五", "id_number": PRINCIPAL_ID}},
        "materials": [
            {"name": case_helpers.FORM, "upload_ids": [pdf]},
            {"name": case_helpers.ID_CARD, "upload_ids": [png]},
        ],
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": openid()})
    assert r.status_code == 201, r.text
    return r.json["case_no"]


async def _reads(client, settings, headers, oid: str, case_no: str) -> tuple[bool, bool]:
    """(the API answers the case, the official account answers the case) for one account."""
    _, r = await client.get(f"/api/v1/cases/{case_no}", headers=headers)
    assert r.status_code in {200, 404}, r.text
    content = text_of(await send(client, settings, text_xml(oid, case_no, msg_id())))
    assert content.startswith(f"办件 {case_no}（") or content == NOT_FOUND_CASE, content
    return r.status_code == 200, content != NOT_FOUND_CASE


async def test_agent_and_principal_read_on_wechat_exactly_when_the_api_lets_them(
    seeded, settings, make_citizen, auth_deps
):
    agent, agent_headers = await make_citizen(loa=3)
    case_no = await _agent_case(seeded, agent_headers)
    phone = "13911113333"
    person, person_headers = await make_citizen(phone=phone, loa=3)
    person.id_number_bidx = auth_deps.cipher.blind_index(PRINCIPAL_ID, kind="id_number")
    await person.save(update_fields=["id_number_bidx"])
    stranger, stranger_headers = await make_citizen(loa=3)
    readers = {
        "agent": (agent, agent_headers),
        "principal": (person, person_headers),
        "stranger": (stranger, stranger_headers),
    }
    oids = {}
    for name, (citizen, _) in readers.items():
        oids[name] = openid()
        await bind(citizen, oids[name], settings)

    seen = {
        name: await _reads(seeded, settings, headers, oids[name], case_no) for name, (_, headers) in readers.items()
    }
    assert seen == {"agent": (True, True), "principal": (True, True), "stranger": (False, False)}

    # The same person at LoA 2 only: neither channel shows someone else's case.
    _, weak_headers = await make_citizen(phone=phone, loa=2)
    assert await _reads(seeded, settings, weak_headers, oids["principal"], case_no) == (False, False)


async def test_my_cases_on_wechat_is_the_api_list(seeded, settings, make_citizen):
    agent, agent_headers = await make_citizen(loa=3)
    own = (await case_helpers.submit(seeded, agent_headers))["case_no"]
    for_principal = await _agent_case(seeded, agent_headers)
    oid = openid()
    await bind(agent, oid, settings)

    _, r = await seeded.get("/api/v1/cases", headers=agent_headers, params={"page_size": 5})
    listed = [item["case_no"] for item in r.json["items"]]
    assert listed == [for_principal, own]
    content = text_of(await send(seeded, settings, event_xml(oid, "CLICK", "MY_CASES", at=at())))
    lines = content.split("\n")[1:]
    assert [line.split(" ")[1] for line in lines] == listed
