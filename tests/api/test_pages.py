"""H5 pages: the guide page, the service entries still to come, search, errors, caching."""

from __future__ import annotations

import re

import pytest

from app.guide import service as guide_view
from app.matters import service
from tests import factories

LICENCE = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
FUND = "4308-GG-ZF-001"
ACTIONS = {"book": "预约办理", "apply": "网上申报", "progress": "进度查询", "consult": "咨询", "rate": "评价"}


@pytest.fixture
async def catalogue(client):
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


async def page(client, path: str, **kwargs):
    _, resp = await client.get(path, **kwargs)
    return resp


def assert_html(resp, status: int = 200) -> str:
    assert resp.status == status, resp.text[:500]
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.text.lstrip().lower().startswith("<!doctype html>")
    return resp.text


async def test_guide_page(client, catalogue):
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "<title>营业执照设立登记 - 办事指南</title>" in text
    assert "<h1>营业执照设立登记</h1>" in text
    assert '<span class="badge visits1">最多跑一次</span>' in text
    assert "市市场监督管理局" in text
    assert LICENCE in text
    # limits
    assert "<b>3</b>承诺时限（工作日）" in text
    assert "<b>15</b>法定时限（工作日）" in text
    # materials table: one row per material with its form and necessity
    assert "申请材料（2 项）" in text
    assert text.count('<span class="req">必需</span>') == 2
    assert "公司登记（备案）申请书" in text
    assert "居民身份证" in text
    assert re.search(r"<td[^>]*>原件</td><td>1</td>", text)
    assert re.search(r"<td[^>]*>复印件</td><td>1</td>", text)
    assert "电子版格式：JPG/PNG" in text
    # steps, conditions, legal basis
    assert "<b>受理</b>：窗口工作人员，即时办理" in text
    assert "<b>审核</b>：登记科，1 个工作日" in text
    assert "申请人具有完全民事行为能力" in text
    assert "《中华人民共和国市场主体登记管理条例》第三条" in text
    # where to go, phones, FAQ
    assert "张家界市政务服务中心" in text
    assert "永定区子午路 1 号" in text
    assert "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公" in text
    assert "商事登记区 A1-A8 号窗口" in text
    assert 'href="tel:0744-8200001"' in text
    assert 'href="tel:0744-12345"' in text
    assert "<summary>可以委托他人办理吗？</summary>" in text
    assert "可以，需提供授权委托书。" in text
    assert "不收费" in text
    assert "可网上申报" in text
    assert "支持 EMS 寄递" in text
    # the five service entries
    nav = text[text.index('<nav class="actions"') :]
    labels = {"book": "预约", "apply": "申报", "progress": "进度查询", "consult": "咨询", "rate": "评价"}
    for action, label in labels.items():
        assert f'href="/m/{LICENCE}/{action}"' in nav
        assert f">{label}</a>" in nav
    assert f'<a href="/m/{LICENCE}/book" class="primary">' in nav


async def test_zero_visit_badge_and_fees(client, catalogue):
    text = assert_html(await page(client, f"/m/{FUND}"))
    assert '<span class="badge visits0">零跑路</span>' in text
    assert "住房公积金分厅" in text
    assert "永定区大庸路 2 号" in text
    assert "工本费" in text
    assert "0 元" in text


async def test_fee_amounts_are_shown_in_yuan(client):
    fees = [{"name": "登记费", "amount_fen": 8050}, {"name": "证书费", "amount_fen": 1000}]
    await service.import_catalogue(
        client.sanic_app.ctx.catalogue, data=factories.catalogue(factories.entry(LICENCE, fees=fees, visits=3))
    )
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "80.50 元" in text
    assert "10 元" in text
    assert '<span class="badge visitsn">跑 3 次</span>' in text


async def test_booking_off_and_apply_off(client):
    await service.import_catalogue(
        client.sanic_app.ctx.catalogue,
        data=factories.catalogue(factories.entry(LICENCE, booking=False, online_apply=False, online_depth=2)),
    )
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert f'<a href="/m/{LICENCE}/book" class="off">' in text
    assert f'<a href="/m/{LICENCE}/apply" class="off">' in text
    assert "可网上申报" not in text


async def test_lower_case_code(client, catalogue):
    text = assert_html(await page(client, f"/m/{LICENCE.lower()}"))
    assert "<h1>营业执照设立登记</h1>" in text


async def test_content_is_html_escaped(client):
    evil = '<script>alert("x")</script>'
    await service.import_catalogue(
        client.sanic_app.ctx.catalogue,
        data=factories.catalogue(
            factories.entry(
                LICENCE,
                name=f"营业执照{evil}",
                summary='<img src=x onerror="alert(1)">',
                faq=[{"question": "<b>问</b>", "answer": "<iframe src=//evil>"}],
                materials=[{"name": "申请书<svg onload=alert(1)>", "notes": "</td></tr></table><script>1</script>"}],
            )
        ),
    )
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "<script>" not in text
    assert "<img src=x" not in text
    assert "<iframe" not in text
    assert "<svg" not in text
    assert "<b>问</b>" not in text
    assert "营业执照&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "&lt;script&gt;" in text
    # also in the search results and on the service entry pages
    results = assert_html(await page(client, "/m", params={"q": "营业执照"}))
    assert "<script>" not in results
    assert "&lt;script&gt;" in results
    entry = assert_html(await page(client, f"/m/{LICENCE}/book"))
    assert "<script>" not in entry


async def test_search_query_is_escaped_when_echoed(client, catalogue):
    text = assert_html(await page(client, "/m", params={"q": '"><script>alert(1)</script>'}))
    assert "<script>alert(1)</script>" not in text
    assert 'value="&#34;&gt;&lt;script&gt;' in text


@pytest.mark.parametrize("action", ["consult", "rate"])  # apply: tests/api/test_h5_apply.py (signs in first)
async def test_service_entries_explain_themselves(client, catalogue, action):
    text = assert_html(await page(client, f"/m/{LICENCE}/{action}"))
    assert "即将上线" not in text
    assert f"<h1>{ACTIONS[action]}</h1>" in text
    assert f'href="/m/{LICENCE}"' in text  # back to the guide
    assert 'href="tel:' in text


async def test_book_page_shows_seats_left_per_slot(client, catalogue, fake_clock):
    # 2026-09-30 10:00: today's later slots, then the first open days after National Day
    text = assert_html(await page(client, f"/m/{LICENCE}/book"))
    assert "<h1>预约办理</h1>" in text and "即将上线" not in text
    assert "?day=2026-09-30" in text and "?day=2026-10-08" in text
    assert "?day=2026-10-01" not in text  # the holiday is closed
    day = assert_html(await page(client, f"/m/{LICENCE}/book", params={"day": "2026-10-08"}))
    assert "13:30–14:00" in day and "余 2 个号" in day
    assert f'href="/m/{LICENCE}"' in text


async def test_book_page_of_a_matter_without_booking(client, fake_clock):
    await service.import_catalogue(
        client.sanic_app.ctx.catalogue, data=factories.catalogue(factories.entry("4308-XK-SS-009", booking=False))
    )
    text = assert_html(await page(client, "/m/4308-XK-SS-009/book"))
    assert "该事项无需预约" in text and 'href="tel:0744-8200001"' in text


async def test_service_entry_of_unknown_matter_is_404(client, catalogue):
    text = assert_html(await page(client, "/m/4308-XX-XX-999/book"), 404)
    assert "未找到该政务服务事项" in text


async def test_unknown_service_entry_is_404(client, catalogue):
    text = assert_html(await page(client, f"/m/{LICENCE}/delete"), 404)
    assert "NOT_FOUND" in text  # no such service entry: the explained 404 page


async def test_unknown_matter_is_an_html_404_for_a_browser(client, catalogue):
    resp = await page(client, "/m/4308-XX-XX-999", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    text = assert_html(resp, 404)
    assert "未找到该政务服务事项" in text
    assert "错误码：MATTER_NOT_FOUND" in text
    assert 'href="/m"' in text


async def test_unknown_matter_is_json_when_asked(client, catalogue):
    resp = await page(client, "/m/4308-XX-XX-999", headers={"Accept": "application/json"})
    assert resp.status == 404
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json["error"]["code"] == "MATTER_NOT_FOUND"
    assert set(resp.json["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("code", ["x" * 5000, "%3Cscript%3E", "营业执照", "%27%20OR%201%3D1"])
async def test_garbage_codes_are_404_pages(client, catalogue, code):
    text = assert_html(await page(client, f"/m/{code}"), 404)
    assert "<script>" not in text


async def test_retired_matter_page(client, catalogue):
    await service.retire(client.sanic_app.ctx.catalogue, code=LICENCE, successor=FOOD)
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "该事项已取消办理" in text
    assert f'href="http://testserver/m/{FOOD}"' in text
    assert "食品经营许可" in text
    assert 'aria-label="办事入口"' not in text  # no service entries for a retired matter


async def test_draft_only_matter_has_no_page(client):
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.catalogue())
    await service.create_matter(code=LICENCE, content=factories.guide())
    assert_html(await page(client, f"/m/{LICENCE}"), 404)


async def test_guide_page_etag_and_304(client, catalogue):
    resp = await page(client, f"/m/{LICENCE}")
    etag = resp.headers["etag"]
    assert "max-age=" in resp.headers["cache-control"]
    again = await page(client, f"/m/{LICENCE}", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""
    stale = await page(client, f"/m/{LICENCE}", headers={"If-None-Match": '"nope"'})
    assert stale.status == 200
    assert stale.headers["etag"] == etag
    # the page's ETag is not the JSON guide's
    _, api = await client.get(f"/api/v1/matters/{LICENCE}")
    assert api.headers["etag"] != etag


async def test_cached_guide_page_follows_a_publish_by_the_service(app, client, catalogue):
    before = await page(client, f"/m/{LICENCE}")
    assert "<h1>营业执照设立登记</h1>" in before.text
    assert guide_view.cached(app.ctx.guide, code=LICENCE, kind="html") is not None  # the rendered page is cached
    await service.save_draft(code=LICENCE, content=factories.guide(name="企业开办一件事"))
    draft = await page(client, f"/m/{LICENCE}")
    assert draft.headers["etag"] == before.headers["etag"]  # a draft is not public
    await service.publish(app.ctx.catalogue, code=LICENCE, no=2)  # no HTTP view involved: the service announces it
    after = await page(client, f"/m/{LICENCE}", headers={"If-None-Match": before.headers["etag"]})
    text = assert_html(after)
    assert "<h1>企业开办一件事</h1>" in text
    assert after.headers["etag"] != before.headers["etag"]
    entry = assert_html(await page(client, f"/m/{LICENCE}/book"))
    assert "企业开办一件事" in entry


async def test_cached_guide_page_follows_a_retirement(client, catalogue):
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "该事项已取消办理" not in text
    await service.retire(client.sanic_app.ctx.catalogue, code=LICENCE, successor=FOOD)
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "该事项已取消办理" in text
    assert 'aria-label="办事入口"' not in text


async def test_cached_guide_page_follows_an_import(client, catalogue):
    assert "商事登记区 A1-A8 号窗口" in assert_html(await page(client, f"/m/{LICENCE}"))
    assert "永定区子午路 1 号" in assert_html(await page(client, f"/m/{FOOD}"))
    data = factories.small_catalogue()
    data["matters"][0]["counter"] = "综合受理区 B2 号窗口"
    data["halls"][0]["address"] = "永定区子午路 9 号"
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=data)
    text = assert_html(await page(client, f"/m/{LICENCE}"))
    assert "综合受理区 B2 号窗口" in text
    assert "永定区子午路 9 号" in text  # hall changes reach guides too
    assert "永定区子午路 9 号" in assert_html(await page(client, f"/m/{FOOD}"))  # unchanged matter, new hall


# ---------------------------------------------------------------- home and search


async def test_home_lists_the_seven_sections(client, catalogue):
    text = assert_html(await page(client, "/m"))
    for name in ("投资项目审批", "商事登记", "不动产登记", "社会保障", "税费缴纳", "公安服务", "其他综合服务"):
        assert name in text
    assert 'href="/m?section=commercial"' in text
    assert "2 个事项" in text
    assert "查询结果" not in text


async def test_home_search_by_q(client, catalogue):
    text = assert_html(await page(client, "/m", params={"q": "公积金"}))
    assert "查询结果（共 1 项）" in text
    assert f'href="/m/{FUND}"' in text
    assert "住房公积金提取" in text
    assert f'href="/m/{LICENCE}"' not in text


async def test_home_search_by_section(client, catalogue):
    text = assert_html(await page(client, "/m", params={"section": "commercial"}))
    assert "查询结果（共 2 项）" in text
    assert f'href="/m/{LICENCE}"' in text
    assert f'href="/m/{FOOD}"' in text
    assert f'href="/m/{FUND}"' not in text
    assert '<input type="hidden" name="section" value="commercial">' in text


async def test_home_search_by_q_and_section(client, catalogue):
    text = assert_html(await page(client, "/m", params={"q": "许可", "section": "commercial"}))
    assert "查询结果（共 1 项）" in text
    assert f'href="/m/{FOOD}"' in text


async def test_home_search_without_results(client, catalogue):
    text = assert_html(await page(client, "/m", params={"q": "不存在"}))
    assert "查询结果（共 0 项）" in text
    assert "没有找到相关事项" in text


async def test_home_search_next_page_link(client):
    entries = [factories.entry(f"4308-XK-PG-{n:03d}", name=f"分页事项{n}") for n in range(25)]
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.catalogue(*entries))
    first = assert_html(await page(client, "/m", params={"q": "分页事项"}))
    assert "查询结果（共 25 项）" in first
    assert first.count('<li><a href="/m/4308-XK-PG-') == 20
    assert "page=2" in first
    second = assert_html(await page(client, "/m", params={"q": "分页事项", "page": "2"}))
    assert second.count('<li><a href="/m/4308-XK-PG-') == 5
    assert "下一页" not in second


async def test_home_bad_section_is_an_html_422(client):
    text = assert_html(await page(client, "/m", params={"section": "bogus"}), 422)
    assert "查询参数不合法" in text


async def test_root_redirects_to_m(client):
    resp = await page(client, "/")
    assert resp.status in (301, 302, 303, 307, 308)
    assert resp.headers["location"] == "/m"


async def test_public_pages_answer_head_without_a_body(client, catalogue):
    for path in ("/m", f"/m/{LICENCE}", f"/m/{LICENCE}/book", "/display/main", "/healthz"):
        _, resp = await client.head(path)
        assert resp.status == 200, path
        assert resp.body == b"", path
