"""Progress queries (过程查询): anonymous by number and query code, by the receipt's signed code and its QR
image, behind rate limits per address and per case number; and the citizen's own list of cases."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import httpx
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sanic_testing.testing import ASGI_HOST, ASGI_PORT

from app.cases import codes, service
from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MATTER = "4308-XK-SS-001"
PROGRESS = "/api/v1/progress"
NAME = "欧阳娜娜"


@pytest.fixture
def settings(base_settings, request):
    """The test settings, with overrides from `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    return base_settings.replace(**getattr(request, "param", {}))


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


@pytest.fixture
async def reviewer(make_staff):
    _, headers = await make_staff("reviewer", departments=["scjgj"])
    return headers


def from_address(client, ip: str) -> httpx.AsyncClient:
    """Another client of the same started app, seen as coming from `ip`."""
    transport = httpx.ASGITransport(app=client.sanic_app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{ASGI_HOST}:{ASGI_PORT}")


async def upload(client, headers, data: bytes, name: str) -> dict:
    files = {"file": (name, data, "application/octet-stream")}
    _, r = await client.post("/api/v1/uploads", headers=headers, files=files)
    assert r.status_code == 201, r.text
    return r.json


async def submit(client, headers, *, name: str = NAME, id_number: str | None = None) -> dict:
    pdf = await upload(client, headers, PDF, "申请书.pdf")
    png = await upload(client, headers, PNG, "id.png")
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": name, "id_number": id_number or make_id_number()},
        "form": {"company_name": "张家界测试有限公司"},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf["id"]]},
            {"name": "居民身份证", "upload_ids": [png["id"]]},
        ],
        "delivery": {"method": "window"},
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json


async def act(client, headers, case_no: str, action: str, **args) -> dict:
    _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args}, headers=headers)
    assert r.status_code == 200, (action, r.text)
    return r.json


async def query(client, **params):
    _, r = await client.get(PROGRESS, params=params)
    return r


def flip(code: str, index: int) -> str:
    """The code with one base32 character changed."""
    old = code[index]
    new = "A" if old != "A" else "B"
    return code[:index] + new + code[index + 1 :]


# ---------------------------------------------------------------- by number and query code


async def test_anonymous_progress_shows_timeline_and_next_step_but_no_identity(
    fake_clock, seeded, make_citizen, reviewer
):
    _, headers = await make_citizen()
    id_number = make_id_number(seq="456")
    case = await submit(seeded, headers, id_number=id_number)
    case_no, code = case["case_no"], case["query_code"]

    r = await query(seeded, case_no=case_no, query_code=code)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    body = r.json
    assert body["case_no"] == case_no and body["status"] == "submitted"
    assert body["matter"]["code"] == MATTER
    # Submitted on Wednesday 2026-09-30: the next working day is 10-08, after National Day.
    assert body["next_step"] == {"name": "窗口受理", "expected_by": "2026-10-08"}
    assert [(e["action"], e["status"]) for e in body["timeline"]] == [("submit", "submitted")]

    await act(seeded, reviewer, case_no, "accept")
    r = await query(seeded, case_no=case_no, query_code=code)
    assert r.status_code == 200, r.text
    body = r.json
    assert body["status"] == "accepted"
    # The same answer with the query code in the body (POST): it never appears in an address.
    _, posted = await seeded.post(PROGRESS, json={"case_no": case_no, "query_code": code})
    assert posted.status_code == 200 and posted.json == body
    _, wrong = await seeded.post(PROGRESS, json={"case_no": case_no, "query_code": flip(code, 0)})
    assert wrong.status_code == 404 and wrong.json["error"]["code"] == "PROGRESS_NOT_FOUND"
    assert [e["action"] for e in body["timeline"]] == ["submit", "accept"]
    assert all(set(e) == {"action", "label", "status", "status_name", "text", "at"} for e in body["timeline"])
    # Three promised working days from 09-30: 10-08, 10-09 and the make-up Saturday 10-10.
    assert body["next_step"] == {"name": "审批决定", "expected_by": "2026-10-10"}
    assert body["sla"]["due_on"] == "2026-10-10"

    # The anonymous view names nobody: the principal's name masked, no ID number, form, materials or account.
    assert body["principal"] == {"name": "欧***"}
    assert NAME not in r.text and id_number not in r.text and id_number[-4:] not in r.text
    assert "张家界测试有限公司" not in r.text
    for private in ("id", "form", "materials", "delivery", "query_code", "receipt", "agent", "applicant_account"):
        assert private not in body
    assert all("actor" not in e and "note" not in e for e in body["timeline"])


async def test_wrong_code_and_unknown_number_answer_the_same_404(seeded, make_citizen):
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    case_no, code = case["case_no"], case["query_code"]
    wrong_code = "22222222" if code != "22222222" else "33333333"
    unknown_no = case_no[:-6] + "999999"

    wrong = await query(seeded, case_no=case_no, query_code=wrong_code)
    unknown = await query(seeded, case_no=unknown_no, query_code=code)
    nonsense = await query(seeded, case_no="NOSUCHCASE", query_code="ABCDEFGH")
    assert wrong.status_code == unknown.status_code == nonsense.status_code == 404
    assert wrong.json["error"]["code"] == "PROGRESS_NOT_FOUND"
    assert wrong.json == unknown.json == nonsense.json  # nothing tells a real number from a made-up one
    assert wrong.headers["content-type"] == unknown.headers["content-type"]
    assert case_no not in wrong.text


async def test_query_code_and_case_number_are_read_in_any_case_and_with_separators(seeded, make_citizen):
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    case_no, code = case["case_no"], case["query_code"]
    for number, typed in [
        (case_no, code.lower()),
        (case_no.lower(), code),
        (f" {case_no} ", f"{code[:4].lower()}-{code[4:]}"),
        (case_no, f"{code[:4]} {code[4:].lower()}"),
    ]:
        r = await query(seeded, case_no=number, query_code=typed)
        assert r.status_code == 200, (number, typed, r.text)
        assert r.json["case_no"] == case_no


async def test_missing_parameters_are_422(seeded):
    for params in ({}, {"case_no": "ZJJ20260930000001"}, {"query_code": "ABCDEFGH"}):
        r = await query(seeded, **params)
        assert r.status_code == 422, (params, r.text)


# ---------------------------------------------------------------- rate limits


@pytest.mark.parametrize("settings", [{"progress_rate_per_minute": 3}], indirect=True)
async def test_more_queries_than_the_per_minute_limit_from_one_address_are_429(seeded, make_citizen, settings):
    assert settings.progress_rate_per_minute == 3
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    case_no, code = case["case_no"], case["query_code"]

    answers = [
        await query(seeded, case_no=case_no, query_code=code),
        await query(seeded, case_no=case_no, query_code="22222222"),
        await query(seeded, code=case["receipt"]["case_code"]),
    ]
    assert [r.status_code for r in answers] == [200, 404, 200]  # misses and hits and receipt codes all count

    for params in ({"case_no": case_no, "query_code": code}, {"code": case["receipt"]["case_code"]}):
        r = await query(seeded, **params)
        assert r.status_code == 429, (params, r.text)
        assert r.json["error"]["code"] == "TOO_MANY_REQUESTS"
        assert r.json["error"]["details"]["limit"] == "progress-ip-1m"
        retry = int(r.headers["retry-after"])
        assert 1 <= retry <= 60 and r.json["error"]["details"]["retry_after"] == retry

    async with from_address(seeded, "10.1.2.3") as other:  # another address has its own allowance
        r = await other.get(PROGRESS, params={"case_no": case_no, "query_code": code})
        assert r.status_code == 200, r.text


async def test_default_per_minute_limit_serves_ten_and_refuses_the_eleventh(seeded, make_citizen, settings):
    assert settings.progress_rate_per_minute == 10
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    statuses = [(await query(seeded, code=case["receipt"]["case_code"])).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


async def test_thirty_wrong_codes_from_a_few_addresses_no_longer_lock_the_owner_out(seeded, make_citizen, settings):
    """As found: 30 wrong codes for one number from three addresses made even the right code 429 for an hour."""
    assert settings.progress_rate_per_case_hour == 30
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    case_no = case["case_no"]
    statuses = []
    for n in range(3):
        async with from_address(seeded, f"10.0.0.{n + 1}") as c:
            for _ in range(10):
                r = await c.get(PROGRESS, params={"case_no": case_no, "query_code": "22222222"})
                statuses.append(r.status_code)
    assert statuses == [404] * 30
    async with from_address(seeded, "10.9.9.9") as owner:
        r = await owner.get(PROGRESS, params={"case_no": case_no.lower(), "query_code": case["query_code"]})
        assert r.status_code == 200, r.text
        assert r.json()["case_no"] == case_no


async def test_the_owner_gets_in_after_a_thousand_wrong_guesses(seeded, make_citizen, settings):
    """1,000 wrong codes from 100 addresses: the case is under attack, the owner still opens it."""
    per_case, hot_pair = settings.progress_rate_per_case_hour, service.PROGRESS_HOT_PAIR_FAILS
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    other_case = await submit(seeded, headers)
    case_no = case["case_no"]
    statuses = []
    for n in range(100):
        async with from_address(seeded, f"10.1.{n // 250}.{n % 250 + 1}") as c:
            for _ in range(10):
                r = await c.get(PROGRESS, params={"case_no": case_no, "query_code": "22222222"})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    refused = r
    assert len(statuses) == 1000
    # Only the first 30 wrong codes and then 3 per new address were checked; the rest were refused unchecked.
    checked = statuses.count(404)
    assert checked == per_case + hot_pair * (100 - per_case // 10), statuses[:60]
    assert statuses.count(429) == 1000 - checked
    assert refused.json()["error"]["details"]["limit"] == "progress-fail-pair-1h"
    assert 60 < int(refused.headers["retry-after"]) <= 3600
    # An address refused for this case is refused even with the right code (it is not checked) …
    async with from_address(seeded, "10.2.0.1") as guesser:
        for _ in range(hot_pair):
            r = await guesser.get(PROGRESS, params={"case_no": case_no, "query_code": "33333333"})
            assert r.status_code == 404
        r = await guesser.get(PROGRESS, params={"case_no": case_no, "query_code": case["query_code"]})
        assert r.status_code == 429, r.text
        # … but may still open another case with its code.
        other = {"case_no": other_case["case_no"], "query_code": other_case["query_code"]}
        r = await guesser.get(PROGRESS, params=other)
        assert r.status_code == 200, r.text
    # The owner, from their own address, gets in at once: by number and code, and by the receipt's code.
    async with from_address(seeded, "10.9.9.9") as owner:
        r = await owner.get(PROGRESS, params={"case_no": case_no, "query_code": case["query_code"]})
        assert r.status_code == 200, r.text
        r = await owner.get(PROGRESS, params={"code": case["receipt"]["case_code"]})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("settings", [{"progress_rate_per_minute": 100}], indirect=True)
async def test_an_address_has_a_budget_of_wrong_codes_across_case_numbers(seeded, make_citizen, settings):
    """Sequential numbers: one address guessing across many numbers is refused after 20 wrong codes an hour."""
    budget = settings.progress_fail_per_address_hour
    assert budget == 20 and settings.progress_fail_per_address_day == 100
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    prefix = case["case_no"][:-4]
    statuses = []
    for n in range(budget + 5):
        r = await query(seeded, case_no=f"{prefix}{n:04d}", query_code="22222222")
        statuses.append(r.status_code)
    assert statuses == [404] * budget + [429] * 5
    r = await query(seeded, case_no=case["case_no"], query_code=case["query_code"])
    assert r.status_code == 429 and r.json["error"]["details"]["limit"] == "progress-fail-ip-1h"
    # Right answers are not guesses: another address's right codes never use up its budget.
    async with from_address(seeded, "10.7.7.7") as c:
        for _ in range(budget + 5):
            r = await c.get(PROGRESS, params={"case_no": case["case_no"], "query_code": case["query_code"]})
            assert r.status_code == 200, r.text


# ---------------------------------------------------------------- the receipt's signed code and QR image


async def test_receipt_code_opens_the_case(seeded, make_citizen):
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    code = case["receipt"]["case_code"]
    assert code.startswith("ZC1") and code.isalnum() and code == code.upper()
    assert case["receipt"]["progress_url"] == f"http://testserver/p/{code}"

    r = await query(seeded, code=code)
    assert r.status_code == 200, r.text
    assert r.json["case_no"] == case["case_no"] and r.json["principal"] == {"name": "欧***"}
    assert NAME not in r.text
    assert (await query(seeded, code=code.lower())).json["case_no"] == case["case_no"]

    # The case's own page names the same receipt.
    _, r = await seeded.get(f"/api/v1/cases/{case['case_no']}", headers=headers)
    assert r.json["receipt"] == case["receipt"]


@pytest.mark.parametrize("settings", [{"progress_rate_per_minute": 100}], indirect=True)
async def test_tampered_or_forged_receipt_codes_are_404(seeded, make_citizen):
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    code = case["receipt"]["case_code"]
    _, r = await seeded.get(PROGRESS, params={"case_no": case["case_no"], "query_code": "22222222"})
    not_found = r.json
    assert not_found["error"]["code"] == "PROGRESS_NOT_FOUND"

    # Flip a character in the format byte, the case id, the key id and the signature (never the last one,
    # which may carry only padding bits).
    positions = [3, 6, 12, 30, len(code) - 40, len(code) - 10]
    tampered = [flip(code, i) for i in positions]
    case_id, kid, _, _ = codes.decode(code)

    async def forged_sign(build):
        data = build(kid)
        return data, Ed25519PrivateKey.generate().sign(data)

    forged = await codes.issue(forged_sign, case_id)  # right layout, right kid, someone else's key
    for bad in [*tampered, forged, "ZC1", "ZC1AAAA", "hello", code[:-20]]:
        r = await query(seeded, code=bad)
        assert r.status_code == 404, (bad, r.text)
        assert r.json == not_found, bad


async def test_receipt_qr_png_decodes_to_the_progress_url_which_opens_the_case(seeded, make_citizen):
    _, headers = await make_citizen()
    case = await submit(seeded, headers)
    case_no, receipt = case["case_no"], case["receipt"]

    _, r = await seeded.get(f"/api/v1/cases/{case_no}/qr.png", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "no-store" in r.headers["cache-control"]
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG"
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [b.text for b in found] == [receipt["progress_url"]]

    _, r = await seeded.get(f"/api/v1/cases/{case_no}/qr.svg", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(r.content).tag.endswith("svg")

    # What the QR code holds opens the case: its code through the API …
    url = urlsplit(found[0].text)
    assert url.path.startswith("/p/")
    r = await query(seeded, code=url.path.removeprefix("/p/"))
    assert r.status_code == 200 and r.json["case_no"] == case_no
    # … and the URL itself is a page that shows the case (a phone's camera opens it in a browser).
    _, r = await seeded.get(url.path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert case_no in r.text and NAME not in r.text


async def test_another_citizens_receipt_images_and_case_are_404(seeded, make_citizen):
    _, mine = await make_citizen()
    _, theirs = await make_citizen()
    case = await submit(seeded, mine)
    for path in ("qr.png", "qr.svg"):
        _, r = await seeded.get(f"/api/v1/cases/{case['case_no']}/{path}", headers=theirs)
        assert r.status_code == 404 and r.json["error"]["code"] == "CASE_NOT_FOUND", (path, r.text)
    _, r = await seeded.get(f"/api/v1/cases/{case['case_no']}", headers=theirs)
    assert r.status_code == 404 and r.json["error"]["code"] == "CASE_NOT_FOUND"
    _, r = await seeded.get(f"/api/v1/cases/{case['case_no']}/qr.gif", headers=mine)
    assert r.status_code == 404
    _, r = await seeded.get(f"/api/v1/cases/{case['case_no']}/qr.png")
    assert r.status_code == 401


# ---------------------------------------------------------------- my cases


async def test_my_cases_lists_only_mine_newest_first_in_pages(seeded, make_citizen, reviewer):
    _, mine = await make_citizen()
    _, theirs = await make_citizen()
    my_nos = [(await submit(seeded, mine))["case_no"] for _ in range(3)]
    their_no = (await submit(seeded, theirs))["case_no"]
    newest_first = sorted(my_nos, reverse=True)  # one day's numbers count up

    _, r = await seeded.get("/api/v1/cases", params={"page_size": 2}, headers=mine)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    first = r.json
    assert set(first) == {"items", "total", "page", "page_size"}
    assert (first["total"], first["page"], first["page_size"]) == (3, 1, 2)
    _, r = await seeded.get("/api/v1/cases", params={"page": 2, "page_size": 2}, headers=mine)
    second = r.json
    assert (second["total"], second["page"], second["page_size"]) == (3, 2, 2)
    assert [i["case_no"] for i in first["items"] + second["items"]] == newest_first
    _, r = await seeded.get("/api/v1/cases", params={"page": 3, "page_size": 2}, headers=mine)
    assert r.json["items"] == [] and r.json["total"] == 3
    item = first["items"][0]
    assert item["status"] == "submitted" and item["matter"]["code"] == MATTER and "next_step" in item

    _, r = await seeded.get("/api/v1/cases", headers=theirs)
    assert [i["case_no"] for i in r.json["items"]] == [their_no] and r.json["total"] == 1

    await act(seeded, reviewer, my_nos[1], "accept")
    _, r = await seeded.get("/api/v1/cases", params={"status": "accepted"}, headers=mine)
    assert [i["case_no"] for i in r.json["items"]] == [my_nos[1]] and r.json["total"] == 1

    _, r = await seeded.get("/api/v1/cases", params={"page_size": 101}, headers=mine)
    assert r.status_code == 422
    _, r = await seeded.get("/api/v1/cases")
    assert r.status_code == 401
