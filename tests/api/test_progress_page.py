"""The H5 progress page: the query form, a case's timeline by number and code or by the receipt's QR code."""

from __future__ import annotations

import html

import pytest

from tests.api.test_cases_flow import MATTER, submit
from tests.api.test_pages import assert_html, page


@pytest.fixture
async def case(client, make_citizen, make_staff):
    from app.matters import service as catalogue
    from tests import factories

    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    _, headers = await make_citizen()
    r = await submit(client, headers)
    assert r.status_code == 201, r.text
    body = r.json
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.post(
        f"/api/v1/staff/cases/{body['case_no']}/actions", json={"action": "accept"}, headers=reviewer
    )
    assert r.status_code == 200, r.text
    return body


async def test_guide_progress_entry_opens_the_query_form(client, case):
    resp = await page(client, f"/m/{MATTER}/progress", follow_redirects=False)
    assert resp.status == 302 and resp.headers["location"] == "/p"
    text = assert_html(await page(client, "/p"))
    assert 'name="case_no"' in text and 'name="query_code"' in text
    assert resp.headers.get("cache-control") != "public"


async def query(client, **form):
    """The form as a browser posts it (the query code never travels in an address)."""
    _, resp = await client.post("/p", data=form)
    return resp


async def test_number_and_code_show_the_timeline_and_the_next_date(client, case):
    resp = await query(client, case_no=case["case_no"], query_code=case["query_code"].lower())
    text = html.unescape(assert_html(resp))
    assert resp.headers["cache-control"] == "no-store"
    assert case["case_no"] in text and "已受理" in text and "提交申请" in text
    assert "张三" not in text and "张*" in text  # the applicant's name is masked
    assert "预计" in text and "承诺办结" in text


async def test_a_query_code_in_the_address_reveals_nothing(client, case):
    params = {"case_no": case["case_no"], "query_code": case["query_code"]}
    resp = await page(client, "/p", params=params, follow_redirects=False)
    assert resp.status == 303 and resp.headers["location"] == f"/p?case_no={case['case_no']}"
    text = assert_html(await page(client, "/p", params=params, follow_redirects=True))
    assert "已受理" not in text and case["query_code"] not in text and 'name="query_code"' in text


async def test_wrong_code_shows_the_form_again_with_one_message(client, case):
    wrong = await query(client, case_no=case["case_no"], query_code="ZZZZZZZZ")
    unknown = await query(client, case_no="ZJJ20990101000001", query_code=case["query_code"])
    for resp in (wrong, unknown):
        text = assert_html(resp, 404)
        assert "办件编号或查询码不正确" in text and 'name="query_code"' in text
    assert case["query_code"] not in unknown.text  # the code typed is never echoed


async def test_receipt_qr_code_opens_the_case(client, case):
    url = case["receipt"]["progress_url"]
    assert url.startswith("http://testserver/p/ZC1")
    text = assert_html(await page(client, url.removeprefix("http://testserver")))
    assert case["case_no"] in text and "已受理" in text
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    text = assert_html(await page(client, tampered.removeprefix("http://testserver")), 404)
    assert "二维码无效" in text and "办件编号或查询码不正确" not in text  # nobody typed a number or a code
    assert 'name="query_code"' in text


@pytest.fixture
def settings(base_settings):
    return base_settings.replace(progress_rate_per_minute=3)


async def test_the_page_shares_the_api_rate_limit(client, case):
    form = {"case_no": case["case_no"], "query_code": "ZZZZZZZZ"}
    for _ in range(3):
        assert (await query(client, **form)).status == 404
    resp = await query(client, **form)
    assert_html(resp, 429)
    assert int(resp.headers["retry-after"]) >= 1
