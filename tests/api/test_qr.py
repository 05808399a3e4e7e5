"""Dynamic matter QR codes over HTTP: default codes, images, scanning, explained errors, no open
redirect, administration, scan analytics, exact counts under concurrency, WeChat-issued codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from PIL import Image

from app import clock
from app.matters import service as matters
from app.server import create_app
from qr import analytics, service
from qr.models import Code, CodeStatus, InvalidScan, ScanDaily, ScanVisitors, WeChatCode
from tests import factories
from tests.conftest import BACKEND, AppClient
from tests.unit.qr.test_render import decode, rasterise

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://testserver"
ADMIN = "/api/v1/admin"
CODES = f"{ADMIN}/codes"
LICENCE, FOOD, FUND = "4308-XK-SS-001", "4308-XK-SS-002", "4308-GG-ZF-001"
LICENCE_NAME, FOOD_NAME, FUND_NAME = "营业执照设立登记", "食品经营许可", "住房公积金提取"
MAIN_PHONE, FUND_HALL_PHONE = "0744-8300000", "0744-8300001"
SLUG_RE = re.compile(r"^[23456789abcdefghjkmnpqrstuvwxyz]{8}$")
ACTIONS = {"guide", "book", "apply", "progress", "consult", "rate"}

SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WECHAT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "User-Agent": SAFARI}
JSON = {"Accept": "application/json", "User-Agent": SAFARI}
GONE_MESSAGES = {
    "CODE_DISABLED": "该二维码已停用",
    "CODE_EXPIRED": "该二维码已过有效期",
    "CODE_NOT_YET_VALID": "该二维码尚未启用",
    "CODE_EXHAUSTED": "该二维码的可用次数已用完",
}
NOT_FOUND_MESSAGE = "二维码不存在或已失效，请确认后重新扫码"


# ---------------------------------------------------------------- helpers


@pytest.fixture
async def catalogue(services) -> None:
    """The three matters of the small catalogue, published (so each has its default code)."""
    await matters.import_catalogue(services.catalogue, data=factories.small_catalogue())


async def default_slug(matter_code: str) -> str:
    return (await Code.get(matter_code=matter_code, is_default=True)).slug


@pytest.fixture
def codes(client) -> service.CodeDeps:
    """The codes' dependencies of the app under test (its cache is the one scans are answered from)."""
    return client.sanic_app.ctx.codes


async def issue(codes: service.CodeDeps, **fields) -> str:
    """Issue a code through the service (no token needed, so it works under a fake clock too)."""
    fields.setdefault("matter_code", LICENCE)
    return (await service.issue_code(codes, **fields)).slug


def assert_error(resp, status: int, code: str) -> dict:
    """The JSON error envelope with this status and code; returns the error object."""
    assert resp.status == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def assert_error_page(resp, status: int, code: str, message: str) -> str:
    """The explained HTML error page with this status, code and Chinese message; returns the HTML."""
    assert resp.status == status, resp.text
    assert resp.headers["content-type"].startswith("text/html"), resp.headers
    html = resp.text
    assert f"错误码：{code}" in html
    assert message in html
    return html


def assert_no_foreign_redirect(resp) -> None:
    """Never a Location header pointing to another host (relative paths of our own are allowed)."""
    location = resp.headers.get("location")
    if location is None:
        return
    parts = urlsplit(location)
    assert not location.startswith(("//", "\\", "/\\")), location
    assert parts.netloc in ("", urlsplit(BASE).netloc), location


def png_text(content: bytes) -> str:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG"
    return decode(image).text


def svg_text(content: bytes, px_per_unit: float) -> str:
    return decode(rasterise(content, px_per_unit=px_per_unit)).text


async def stats_of(client, admin_headers, slug: str, **query) -> dict:
    _, resp = await client.get(f"{CODES}/{slug}/stats", params=query or None, headers=admin_headers)
    assert resp.status == 200, resp.text
    return resp.json


async def publish_v2(client, admin_headers, code: str, **changes) -> None:
    """Save and publish a second version of a matter through the admin API."""
    content = factories.guide(**changes)
    _, resp = await client.put(f"{ADMIN}/matters/{code}/draft", json={"content": content}, headers=admin_headers)
    assert resp.status == 200, resp.text
    no = resp.json["version"]["no"]
    _, resp = await client.post(f"{ADMIN}/matters/{code}/versions/{no}/publish", headers=admin_headers)
    assert resp.status == 200, resp.text


# ---------------------------------------------------------------- 1. default codes


async def test_publishing_through_the_admin_api_creates_one_default_code(client, admin_headers):
    await matters.import_catalogue(
        client.sanic_app.ctx.catalogue, data=factories.catalogue()
    )  # departments and halls only
    content = factories.guide(name="出生医学证明")
    _, resp = await client.post(f"{ADMIN}/matters", json={"code": "4308-GG-WJ-001", "content": content},
                                headers=admin_headers)  # fmt: skip
    assert resp.status == 201, resp.text
    assert not await Code.exists(matter_code="4308-GG-WJ-001")  # a draft has no printed code yet
    _, resp = await client.post(f"{ADMIN}/matters/4308-GG-WJ-001/versions/1/publish", headers=admin_headers)
    assert resp.status == 200, resp.text
    codes = await Code.filter(matter_code="4308-GG-WJ-001")
    assert len(codes) == 1 and codes[0].is_default and codes[0].status is CodeStatus.active
    assert SLUG_RE.match(codes[0].slug)
    # Publishing again keeps the same printed code.
    await publish_v2(client, admin_headers, "4308-GG-WJ-001", name="出生医学证明（第二版）")
    again = await Code.filter(matter_code="4308-GG-WJ-001")
    assert [c.slug for c in again] == [codes[0].slug]


async def test_every_imported_matter_has_a_default_code(client, catalogue):
    rows = await Code.filter(is_default=True).order_by("matter_code")
    assert [r.matter_code for r in rows] == sorted([LICENCE, FOOD, FUND])
    assert len({r.slug for r in rows}) == 3
    for row in rows:
        assert SLUG_RE.match(row.slug), row.slug
        assert not set(row.slug) & set("01ilo")
    # Importing the same file again issues nothing new.
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    assert await Code.all().count() == 3


async def test_guide_json_links_the_default_code(client, catalogue):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.status == 200, resp.text
    assert resp.json["links"]["qr"] == {
        "slug": slug,
        "url": f"{BASE}/q/{slug}",
        "png": f"{BASE}/q/{slug}.png",
        "svg": f"{BASE}/q/{slug}.svg",
        "poster": f"{BASE}/q/{slug}/poster.svg",
    }


async def test_h5_guide_page_shows_the_default_code(client, catalogue):
    slug = await default_slug(FUND)
    _, resp = await client.get(f"/m/{FUND}", headers=BROWSER)
    assert resp.status == 200
    html = resp.text
    assert "本事项二维码" in html
    assert f"短码：<b>{slug}</b>" in html
    assert f'src="{BASE}/q/{slug}.svg"' in html
    assert f'href="{BASE}/q/{slug}/poster.svg"' in html
    assert f'href="{BASE}/q/{slug}.png"' in html


# ---------------------------------------------------------------- 2. images decode and lead to the guide


async def follow(client, url: str, name: str, code: str) -> None:
    """The decoded URL is ours; its path opens the right guide in a browser and as JSON."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    _, resp = await client.get(parts.path, headers=BROWSER)
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
    assert name in resp.text
    _, resp = await client.get(parts.path, headers=JSON)
    assert resp.status == 200 and resp.json["matter"]["code"] == code


@pytest.mark.parametrize("query", ["", "?size=3&margin=2&ec=H", "?size=12&margin=0&ec=l"])
async def test_png_decodes_to_the_scan_url_which_opens_the_guide(client, catalogue, query):
    slug = await default_slug(FOOD)
    _, resp = await client.get(f"/q/{slug}.png{query}")
    assert resp.status == 200 and resp.headers["content-type"] == "image/png"
    text = png_text(resp.content)
    assert text == f"{BASE}/q/{slug}"
    await follow(client, text, FOOD_NAME, FOOD)


@pytest.mark.parametrize(("query", "size"), [("", 8), ("?size=3&margin=2&ec=Q", 3)])
async def test_svg_decodes_to_the_scan_url_which_opens_the_guide(client, catalogue, query, size):
    slug = await default_slug(FUND)
    _, resp = await client.get(f"/q/{slug}.svg{query}")
    assert resp.status == 200 and resp.headers["content-type"].startswith("image/svg+xml")
    text = svg_text(resp.content, px_per_unit=size)
    assert text == f"{BASE}/q/{slug}"
    await follow(client, text, FUND_NAME, FUND)


async def test_poster_decodes_to_the_scan_url_and_names_the_matter(client, catalogue):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}/poster.svg")
    assert resp.status == 200 and resp.headers["content-type"].startswith("image/svg+xml")
    svg = resp.content.decode()
    for expected in (LICENCE_NAME, f"事项编码 {LICENCE}", f"短码 {slug}", "张家界市政务服务中心"):
        assert expected in svg
    text = svg_text(resp.content, px_per_unit=4)
    assert text == f"{BASE}/q/{slug}"
    await follow(client, text, LICENCE_NAME, LICENCE)


async def test_issued_code_poster_shows_its_hall_and_label(codes, client, catalogue):
    slug = await issue(codes, matter_code=FUND, hall="gongjijin", label="二楼 3 号窗口旁")
    _, resp = await client.get(f"/q/{slug}/poster.svg")
    assert resp.status == 200
    assert "住房公积金分厅" in resp.text and "二楼 3 号窗口旁" in resp.text
    assert svg_text(resp.content, px_per_unit=4) == f"{BASE}/q/{slug}"


async def test_poster_of_an_unknown_code_is_404(client, catalogue):
    _, resp = await client.get("/q/zzzzzzzz/poster.svg", headers=JSON)
    assert_error(resp, 404, "CODE_NOT_FOUND")


@pytest.mark.parametrize(("suffix", "max_age"), [(".png", 30 * 86400), (".svg", 30 * 86400), ("/poster.svg", 3600)])
async def test_images_have_etag_304_and_cache_control(client, catalogue, suffix, max_age):
    slug = await default_slug(LICENCE)
    _, first = await client.get(f"/q/{slug}{suffix}")
    assert first.status == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    cache_control = first.headers["cache-control"]
    assert "public" in cache_control and f"max-age={max_age}" in cache_control
    _, again = await client.get(f"/q/{slug}{suffix}", headers={"If-None-Match": etag})
    assert again.status == 304 and again.content == b""
    assert again.headers["etag"] == etag
    _, other = await client.get(f"/q/{slug}{suffix}", headers={"If-None-Match": '"something-else"'})
    assert other.status == 200 and other.content == first.content


async def test_image_etag_differs_by_options(client, catalogue):
    slug = await default_slug(LICENCE)
    _, a = await client.get(f"/q/{slug}.png")
    _, b = await client.get(f"/q/{slug}.png?size=9")
    assert a.headers["etag"] != b.headers["etag"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("size=0", "size"), ("size=41", "size"), ("margin=17", "margin"), ("margin=-1", "margin"),
     ("ec=Z", "ec"), ("size=abc", "size")],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["png", "svg"])
async def test_image_options_out_of_range_are_422_with_details(client, catalogue, query, field, kind):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}.{kind}?{query}", headers=JSON)
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert field in error["details"]["fields"], error
    assert all(isinstance(m, str) and m for m in error["details"]["fields"][field])
    # A browser gets the explained page instead of JSON.
    _, page = await client.get(f"/q/{slug}.{kind}?{query}", headers=BROWSER)
    assert page.status == 422 and page.headers["content-type"].startswith("text/html")


# ---------------------------------------------------------------- 3. resolving a scan


async def test_browser_scan_opens_the_current_published_version(client, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
    assert LICENCE_NAME in resp.text and "第 1 版" in resp.text
    assert "no-store" in resp.headers["cache-control"]
    _, data = await client.get(f"/api/v1/codes/{slug}")
    assert data.json["matter"]["version"] == 1

    await publish_v2(client, admin_headers, LICENCE, name="营业执照设立登记（新版）", counter="综合窗口 C9")
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 200
    assert "营业执照设立登记（新版）" in resp.text and "综合窗口 C9" in resp.text and "第 2 版" in resp.text
    _, data = await client.get(f"/api/v1/codes/{slug}")
    assert data.json["matter"]["version"] == 2 and data.json["matter"]["name"] == "营业执照设立登记（新版）"


@pytest.mark.parametrize("how", ["accept", "api"])
async def test_json_resolution(client, catalogue, how):
    slug = await default_slug(FOOD)
    path = f"/q/{slug}" if how == "accept" else f"/api/v1/codes/{slug}"
    _, resp = await client.get(path, headers=JSON)
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert "no-store" in resp.headers["cache-control"]
    body = resp.json
    assert {"code", "status", "matter", "actions", "target"} <= set(body)
    assert body["status"] == "active"
    assert body["code"]["slug"] == slug and body["code"]["url"] == f"{BASE}/q/{slug}"
    assert body["code"]["status"] == "active" and body["code"]["action"] == "guide"
    assert body["matter"]["code"] == FOOD and body["matter"]["name"] == FOOD_NAME
    assert body["matter"]["url"] == f"{BASE}/m/{FOOD}"
    assert body["target"] == f"{BASE}/m/{FOOD}"
    assert set(body["actions"]) == ACTIONS
    assert body["actions"]["guide"] == f"{BASE}/m/{FOOD}"
    for action in ACTIONS - {"guide"}:
        assert body["actions"][action] == f"{BASE}/m/{FOOD}/{action}"
    assert body.get("notice") is None


async def test_json_accept_with_html_preferred_gets_the_page(client, catalogue):
    slug = await default_slug(FOOD)
    _, resp = await client.get(f"/q/{slug}", headers={"Accept": "text/html, application/json"})
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")


async def test_action_code_targets_its_action(codes, client, catalogue):
    slug = await issue(codes, matter_code=FOOD, action="book")
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    assert resp.json["code"]["action"] == "book"
    assert resp.json["target"] == f"{BASE}/m/{FOOD}/book"
    _, page = await client.get(urlsplit(resp.json["target"]).path, headers=BROWSER)
    assert page.status == 200 and "预约办理" in page.text


async def test_browser_scan_of_an_action_code_opens_that_action(codes, client, catalogue):
    slug = await issue(codes, matter_code=FOOD, action="book")
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert_no_foreign_redirect(resp)
    if resp.status in (301, 302, 303, 307, 308):
        assert urlsplit(resp.headers["location"]).path == f"/m/{FOOD}/book"
    else:
        assert resp.status == 200 and "预约办理" in resp.text


async def test_scan_inside_wechat_opens_the_h5_page_without_mini_program_link_by_default(client, catalogue):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}", headers={"User-Agent": WECHAT})
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
    assert LICENCE_NAME in resp.text
    assert "weixin://" not in resp.text and "小程序" not in resp.text


class TestMiniProgramLink:
    """With a mini-program page configured, WeChat users are offered the mini program."""

    @pytest.fixture
    def settings(self, base_settings):
        return base_settings.replace(wechat_mini_page="pages/qr/index")

    async def test_wechat_scan_offers_the_mini_program(self, client, catalogue, settings):
        slug = await default_slug(LICENCE)
        _, resp = await client.get(f"/q/{slug}", headers={"User-Agent": WECHAT})
        assert resp.status == 200
        html = resp.text
        assert LICENCE_NAME in html
        assert "打开“张家界政务服务”小程序" in html
        link = re.search(r'href="(weixin://dl/business/[^"]+)"', html)
        assert link is not None, html
        target = link.group(1).replace("&amp;", "&")
        assert f"appid={settings.wechat_mini_appid}" in target
        assert "path=pages/qr/index" in target or "path=pages%2Fqr%2Findex" in target
        assert f"query=scene%3D{slug}" in target

    async def test_plain_browser_gets_no_mini_program_link(self, client, catalogue):
        slug = await default_slug(LICENCE)
        _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
        assert resp.status == 200 and "weixin://" not in resp.text

    async def test_guide_page_itself_stays_cacheable_and_plain(self, client, catalogue):
        slug = await default_slug(LICENCE)
        await client.get(f"/q/{slug}", headers={"User-Agent": WECHAT})  # a per-scan page must not be cached
        _, resp = await client.get(f"/m/{LICENCE}", headers={"User-Agent": SAFARI})
        assert resp.status == 200 and "weixin://" not in resp.text


async def make_gone(codes: service.CodeDeps, state: str, fake_clock, *, hall: str | None = None) -> str:
    """A code of LICENCE in one of the four 410 states (the clock is the fake one)."""
    now = clock.now()
    if state == "CODE_DISABLED":
        slug = await issue(codes, hall=hall)
        await service.update_code(codes, slug=slug, status="disabled")
    elif state == "CODE_EXPIRED":
        slug = await issue(
            codes, hall=hall, valid_since=now - dt.timedelta(days=30), valid_until=now + dt.timedelta(hours=1)
        )
        fake_clock.advance(hours=2)
    elif state == "CODE_NOT_YET_VALID":
        slug = await issue(codes, hall=hall, valid_since=now + dt.timedelta(days=1))
    else:
        slug = await issue(codes, hall=hall, max_scans=3)
        await Code.filter(slug=slug).update(scans=3)
    return slug


@pytest.mark.parametrize("state", list(GONE_MESSAGES))
async def test_gone_codes_are_explained_410_pages(codes, client, catalogue, fake_clock, state):
    slug = await make_gone(codes, state, fake_clock)
    _, page = await client.get(f"/q/{slug}", headers=BROWSER)
    html = assert_error_page(page, 410, state, GONE_MESSAGES[state])
    assert f'href="tel:{MAIN_PHONE}"' in html  # the hall's phone
    assert NOT_FOUND_MESSAGE not in html
    for headers in (JSON, {"User-Agent": SAFARI}):
        path = f"/q/{slug}" if headers is JSON else f"/api/v1/codes/{slug}"
        _, resp = await client.get(path, headers=headers)
        error = assert_error(resp, 410, state)
        assert error["message"] == GONE_MESSAGES[state]
        assert error["details"] == {"slug": slug, "phone": MAIN_PHONE}


@pytest.mark.parametrize("state", list(GONE_MESSAGES))
async def test_gone_page_shows_the_phone_of_the_codes_own_hall(codes, client, catalogue, fake_clock, state):
    slug = await make_gone(codes, state, fake_clock, hall="gongjijin")
    _, page = await client.get(f"/q/{slug}", headers=BROWSER)
    html = assert_error_page(page, 410, state, GONE_MESSAGES[state])
    assert FUND_HALL_PHONE in html and MAIN_PHONE not in html


async def test_expiry_follows_the_clock_without_any_write(codes, client, catalogue, fake_clock):
    now = clock.now()
    slug = await issue(codes, valid_since=now + dt.timedelta(hours=1), valid_until=now + dt.timedelta(hours=3))
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert_error(resp, 410, "CODE_NOT_YET_VALID")
    fake_clock.advance(hours=1)
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    fake_clock.advance(hours=2)  # valid_until is exclusive
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert_error(resp, 410, "CODE_EXPIRED")


async def test_scan_limit_is_enforced(codes, client, catalogue):
    slug = await issue(codes, max_scans=2)
    for _ in range(2):
        _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
        assert resp.status == 200
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert_error_page(resp, 410, "CODE_EXHAUSTED", GONE_MESSAGES["CODE_EXHAUSTED"])
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert_error(resp, 410, "CODE_EXHAUSTED")
    assert (await Code.get(slug=slug)).scans == 2


async def test_unknown_code_is_a_404_distinct_from_gone(client, catalogue):
    _, page = await client.get("/q/zzzzzzzz", headers=BROWSER)
    html = assert_error_page(page, 404, "CODE_NOT_FOUND", NOT_FOUND_MESSAGE)
    assert not any(message in html for message in GONE_MESSAGES.values())
    _, resp = await client.get("/q/zzzzzzzz", headers=JSON)
    assert_error(resp, 404, "CODE_NOT_FOUND")
    _, resp = await client.get("/api/v1/codes/zzzzzzzz")
    assert_error(resp, 404, "CODE_NOT_FOUND")


async def test_retired_matter_with_successor_opens_the_successor(client, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)  # warm the snapshot cache
    assert LICENCE_NAME in resp.text
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/retire", json={"successor": FOOD}, headers=admin_headers)
    assert resp.status == 200, resp.text

    _, page = await client.get(f"/q/{slug}", headers=BROWSER)
    assert page.status == 200
    assert f"您扫描的事项「{LICENCE_NAME}」已取消，以下为继任事项的办事指南。" in page.text
    assert f"<h1>{FOOD_NAME}</h1>" in page.text
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    body = resp.json
    assert body["matter"]["code"] == FOOD
    assert body["target"] == f"{BASE}/m/{FOOD}"
    assert LICENCE_NAME in body["notice"] and FOOD_NAME in body["notice"]


async def test_retired_matter_without_successor_shows_the_cancelled_guide(client, catalogue, admin_headers):
    slug = await default_slug(FUND)
    _, resp = await client.post(f"{ADMIN}/matters/{FUND}/retire", headers=admin_headers)
    assert resp.status == 200, resp.text
    _, page = await client.get(f"/q/{slug}", headers=BROWSER)
    assert page.status == 200
    assert f"<h1>{FUND_NAME}</h1>" in page.text
    assert "该事项已取消办理" in page.text
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    assert resp.json["matter"]["code"] == FUND and resp.json["matter"]["status"] == "retired"
    assert resp.json["notice"] == "您扫描的事项已取消。"


# ---------------------------------------------------------------- 4. garbage slugs

GARBAGE = {
    "10kb": "a" * 10240,
    "unicode": quote("二维码🙂", safe=""),
    "sql": quote("'; DROP TABLE qr_code; --", safe=""),
    "sql-or": quote("x' OR '1'='1", safe=""),
    "traversal": quote("../../etc/passwd", safe=""),
    "traversal-dots-encoded": "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "nul": "%00",
    "nul-in-slug": "abcd%00efgh",
    "upper": "ABCDEFGH",
    "too-short": "abc",
    "too-long": "a" * 17,
    "ambiguous-chars": "abcdefg0",
    "percent": "%25",
    "spaces": "%20%20%20%20%20",
}


@pytest.mark.parametrize("slug", list(GARBAGE.values()), ids=list(GARBAGE))
@pytest.mark.parametrize("template", ["/q/{}", "/q/{}.png", "/q/{}.svg", "/api/v1/codes/{}"])
async def test_garbage_slugs_are_404_never_5xx(client, catalogue, slug, template):
    _, resp = await client.get(template.format(slug), headers=JSON)
    assert_error(resp, 404, "CODE_NOT_FOUND")
    assert_no_foreign_redirect(resp)


@pytest.mark.parametrize("slug", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_garbage_slugs_get_the_html_404_page_in_a_browser(client, catalogue, slug):
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert_error_page(resp, 404, "CODE_NOT_FOUND", NOT_FOUND_MESSAGE)


async def test_upper_case_of_a_real_slug_is_unknown(client, catalogue):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/api/v1/codes/{slug.upper()}")
    assert_error(resp, 404, "CODE_NOT_FOUND")


@pytest.mark.parametrize("kind", ["png", "svg"])
async def test_image_of_an_unknown_but_well_formed_slug_is_404(client, catalogue, kind):
    _, resp = await client.get(f"/q/zzzzzzzz.{kind}", headers=JSON)
    assert_error(resp, 404, "CODE_NOT_FOUND")


# ---------------------------------------------------------------- 5. no open redirect

EVIL_TARGETS = ["//evil.example.com", "https://evil.example.com", "4308-XK-SS-999"]


@pytest.mark.parametrize("target", EVIL_TARGETS)
async def test_issue_with_a_foreign_or_missing_target_is_422(client, catalogue, admin_headers, target):
    before = await Code.all().count()
    _, resp = await client.post(CODES, json={"matter_code": target}, headers=admin_headers)
    error = assert_error(resp, 422, "TARGET_INVALID")
    assert "matter_code" in error["details"]["fields"]
    assert await Code.all().count() == before


@pytest.mark.parametrize("target", EVIL_TARGETS)
async def test_retarget_to_a_foreign_or_missing_target_is_422(codes, client, catalogue, admin_headers, target):
    slug = await issue(codes)
    _, resp = await client.patch(f"{CODES}/{slug}", json={"matter_code": target}, headers=admin_headers)
    assert_error(resp, 422, "TARGET_INVALID")
    assert (await Code.get(slug=slug)).matter_code == LICENCE
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200 and resp.json["target"] == f"{BASE}/m/{LICENCE}"


async def test_retarget_to_an_unpublished_matter_is_422(codes, client, catalogue, admin_headers):
    _, resp = await client.post(
        f"{ADMIN}/matters", json={"code": "4308-XK-SS-777", "content": {"name": "草稿"}}, headers=admin_headers
    )
    assert resp.status == 201
    slug = await issue(codes)
    _, resp = await client.patch(f"{CODES}/{slug}", json={"matter_code": "4308-XK-SS-777"}, headers=admin_headers)
    assert_error(resp, 422, "TARGET_INVALID")


ODD_TARGETS = [
    "//evil.example.com",
    "https://evil.example.com",
    "http://evil.example.com/m/4308-XK-SS-001",
    "javascript:alert(1)",
    "\\\\evil.example.com",
    "/\\evil.example.com",
    "evil.example.com",
    "4308-XK-SS-001/../../evil.example.com",
    "%2F%2Fevil.example.com",
    "4308-xk-ss-001",
    "",
]


@pytest.mark.parametrize("target", ODD_TARGETS)
async def test_a_code_with_an_odd_target_written_in_the_db_never_leaves_our_site(client, catalogue, target):
    slug = service.new_slug()
    await Code.create(slug=slug, matter_code=target)
    for path, headers in [(f"/q/{slug}", BROWSER), (f"/q/{slug}", JSON), (f"/api/v1/codes/{slug}", JSON),
                          (f"/q/{slug}", {"User-Agent": WECHAT})]:  # fmt: skip
        _, resp = await client.get(path, headers=headers)
        assert resp.status == 404, (path, resp.status, resp.text[:200])
        assert_no_foreign_redirect(resp)
        assert "evil.example.com" not in resp.text
    _, resp = await client.get(f"/q/{slug}/poster.svg")
    assert resp.status in (200, 404) and "location" not in resp.headers


REDIRECT_QUERIES = [
    "next=https://evil.example.com",
    "redirect=//evil.example.com",
    "url=https%3A%2F%2Fevil.example.com&return_to=//evil.example.com",
    "next=%2F%2Fevil.example.com&redirect_uri=https://evil.example.com&continue=//evil.example.com",
]


@pytest.mark.parametrize("query", REDIRECT_QUERIES)
async def test_scan_responses_never_redirect_elsewhere_whatever_the_query(codes, client, catalogue, fake_clock, query):
    good = await default_slug(LICENCE)
    disabled = await make_gone(codes, "CODE_DISABLED", fake_clock)
    for slug, status in ((good, 200), (disabled, 410), ("zzzzzzzz", 404), ("../x", 404)):
        for path, headers in [(f"/q/{slug}", BROWSER), (f"/q/{slug}", JSON), (f"/q/{slug}", {"User-Agent": WECHAT}),
                              (f"/api/v1/codes/{slug}", JSON)]:  # fmt: skip
            _, resp = await client.get(f"{path}?{query}", headers=headers)
            assert resp.status == status, (path, resp.status)
            assert_no_foreign_redirect(resp)
            assert "evil.example.com" not in resp.text


# ---------------------------------------------------------------- 6. administration

ADMIN_ENDPOINTS = [
    ("post", CODES, {"matter_code": LICENCE}),
    ("get", CODES, None),
    ("get", f"{CODES}/zzzzzzzz", None),
    ("patch", f"{CODES}/zzzzzzzz", {"status": "disabled"}),
    ("get", f"{CODES}/zzzzzzzz/stats", None),
    ("get", f"{CODES}/batch.zip?section=commercial", None),
]
ADMIN_IDS = [f"{m}-{p.removeprefix(CODES) or '/'}" for m, p, _ in ADMIN_ENDPOINTS]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS, ids=ADMIN_IDS)
async def test_admin_endpoints_need_a_token(client, catalogue, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    _, resp = await getattr(client, method)(path, **kwargs)
    assert_error(resp, 401, "TOKEN_MISSING")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS, ids=ADMIN_IDS)
async def test_admin_endpoints_refuse_clerks_and_reviewers(client, catalogue, make_staff, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    for role in ("clerk", "reviewer"):
        _, headers = await make_staff(role)
        _, resp = await getattr(client, method)(path, headers=headers, **kwargs)
        assert_error(resp, 403, "INSUFFICIENT_ROLE")
    assert await Code.all().count() == 3


async def test_admin_endpoints_refuse_citizens(client, catalogue, make_citizen):
    _, headers = await make_citizen()
    _, resp = await client.post(CODES, json={"matter_code": LICENCE}, headers=headers)
    assert resp.status in (401, 403)
    assert await Code.all().count() == 3


async def test_issue_a_code_per_hall_with_label_window_and_limit(client, catalogue, admin_headers):
    now = clock.now().replace(microsecond=0)
    since = (now - dt.timedelta(days=1)).astimezone(clock.SHANGHAI)
    until = (now + dt.timedelta(days=30)).astimezone(clock.SHANGHAI)
    body = {
        "matter_code": FUND.lower(),
        "label": "二楼 3 号窗口旁",
        "hall": "gongjijin",
        "valid_since": since.isoformat(),
        "valid_until": until.isoformat(),
        "max_scans": 100,
    }
    _, resp = await client.post(CODES, json=body, headers=admin_headers)
    assert resp.status == 201, resp.text
    code = resp.json
    slug = code["slug"]
    assert SLUG_RE.match(slug)
    assert code["matter_code"] == FUND and code["hall"] == "gongjijin" and code["label"] == "二楼 3 号窗口旁"
    assert code["action"] == "guide" and code["status"] == "active" and code["is_default"] is False
    assert code["valid_since"] == since.isoformat() and code["valid_until"] == until.isoformat()
    assert code["max_scans"] == 100 and code["limited_scans_used"] == 0
    assert code["created_by"] and code["created_by"] != "system"
    assert code["url"] == f"{BASE}/q/{slug}" and code["png"] == f"{BASE}/q/{slug}.png"
    assert code["svg"] == f"{BASE}/q/{slug}.svg" and code["poster"] == f"{BASE}/q/{slug}/poster.svg"

    _, other = await client.post(CODES, json={"matter_code": FUND, "hall": "main", "label": "一楼大厅"},
                                 headers=admin_headers)  # fmt: skip
    assert other.status == 201 and other.json["slug"] != slug
    assert other.json["max_scans"] is None and other.json["limited_scans_used"] is None

    _, scan = await client.get(f"/q/{slug}", headers=BROWSER)
    assert scan.status == 200 and FUND_NAME in scan.text
    _, got = await client.get(f"{CODES}/{slug}", headers=admin_headers)
    assert got.status == 200 and got.json["limited_scans_used"] == 1
    assert {k: v for k, v in got.json.items() if k != "limited_scans_used"} == {
        k: v for k, v in code.items() if k != "limited_scans_used"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"valid_since": "2026-12-01T08:00:00"}, "valid"),
        ({"valid_until": "2026-12-01T08:00:00"}, "valid"),
        ({"valid_since": "2026-12-02T08:00:00+08:00", "valid_until": "2026-12-01T08:00:00+08:00"}, "valid_until"),
        ({"valid_since": "2026-12-01T08:00:00+08:00", "valid_until": "2026-12-01T00:00:00Z"}, "valid_until"),
        ({"hall": "nowhere"}, "hall"),
        ({"max_scans": 0}, "max_scans"),
        ({"action": "teleport"}, "action"),
        ({"colour": "red"}, "colour"),
        ({"valid_until": "tomorrow"}, "valid_until"),
    ],
)
async def test_issue_rejects_bad_fields(client, catalogue, admin_headers, body, field):
    _, resp = await client.post(CODES, json={"matter_code": LICENCE, **body}, headers=admin_headers)
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert field in error["details"]["fields"], error
    assert await Code.all().count() == 3


async def test_issue_with_malformed_json_is_422(client, catalogue, admin_headers):
    _, resp = await client.post(CODES, content=b"{not json", headers=admin_headers)
    assert resp.status == 422


async def test_list_codes_by_matter_and_section(codes, client, catalogue, admin_headers):
    extra = await issue(codes, matter_code=LICENCE, label="海报")
    _, resp = await client.get(CODES, params={"matter_code": LICENCE.lower()}, headers=admin_headers)
    assert resp.status == 200
    assert resp.json["total"] == 2
    assert {c["slug"] for c in resp.json["items"]} == {await default_slug(LICENCE), extra}
    assert all(c["matter_code"] == LICENCE for c in resp.json["items"])

    _, resp = await client.get(CODES, params={"section": "commercial"}, headers=admin_headers)
    assert resp.status == 200
    assert sorted(c["matter_code"] for c in resp.json["items"]) == [LICENCE, LICENCE, FOOD]

    _, resp = await client.get(CODES, params={"section": "social_security"}, headers=admin_headers)
    assert [c["matter_code"] for c in resp.json["items"]] == [FUND]

    _, resp = await client.get(CODES, params={"page_size": 1, "page": 2}, headers=admin_headers)
    assert resp.json["total"] == 4 and len(resp.json["items"]) == 1 and resp.json["page"] == 2

    _, resp = await client.get(CODES, headers=admin_headers)
    assert resp.json["total"] == 4

    for bad in ({"section": "nope"}, {"page": 0}, {"page_size": 1000}):
        _, resp = await client.get(CODES, params=bad, headers=admin_headers)
        assert_error(resp, 422, "INVALID_INPUT")


async def test_get_one_code(client, catalogue, admin_headers):
    slug = await default_slug(FOOD)
    _, resp = await client.get(f"{CODES}/{slug}", headers=admin_headers)
    assert resp.status == 200
    assert resp.json["slug"] == slug and resp.json["is_default"] is True and resp.json["matter_code"] == FOOD
    for missing in ("zzzzzzzz", "ABC", quote("../x", safe="")):
        _, resp = await client.get(f"{CODES}/{missing}", headers=admin_headers)
        assert_error(resp, 404, "CODE_NOT_FOUND")


async def test_patch_retarget_is_visible_on_the_next_scan(codes, client, catalogue, admin_headers):
    slug = await issue(codes, matter_code=LICENCE)
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert f"<h1>{LICENCE_NAME}</h1>" in resp.text  # the snapshot is cached now
    _, resp = await client.patch(f"{CODES}/{slug}", json={"matter_code": FOOD.lower()}, headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.json["matter_code"] == FOOD
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert f"<h1>{FOOD_NAME}</h1>" in resp.text
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.json["matter"]["code"] == FOOD and resp.json["target"] == f"{BASE}/m/{FOOD}"
    # The printed image never changes: it encodes the slug, not the target.
    _, png = await client.get(f"/q/{slug}.png")
    assert png_text(png.content) == f"{BASE}/q/{slug}"


async def test_patch_retarget_of_a_default_code_hands_its_matter_a_fresh_default(
    codes, client, catalogue, admin_headers
):
    slug = await default_slug(LICENCE)
    food_default = await default_slug(FOOD)
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.json["links"]["qr"]["slug"] == slug  # the guide is cached with its code now
    _, resp = await client.patch(f"{CODES}/{slug}", json={"matter_code": FOOD}, headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.json["matter_code"] == FOOD and resp.json["is_default"] is False
    _, scan = await client.get(f"/api/v1/codes/{slug}")
    assert scan.json["matter"]["code"] == FOOD
    assert await default_slug(FOOD) == food_default
    fresh = await default_slug(LICENCE)
    assert fresh != slug and SLUG_RE.match(fresh)
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.json["links"]["qr"]["slug"] == fresh
    _, scan = await client.get(f"/api/v1/codes/{fresh}")
    assert scan.json["matter"]["code"] == LICENCE
    assert await Code.filter(is_default=True).count() == 3


async def test_patch_disable_enable_relabel(client, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 200
    _, resp = await client.patch(f"{CODES}/{slug}", json={"status": "disabled"}, headers=admin_headers)
    assert resp.status == 200 and resp.json["status"] == "disabled"
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert_error_page(resp, 410, "CODE_DISABLED", GONE_MESSAGES["CODE_DISABLED"])
    _, resp = await client.patch(f"{CODES}/{slug}", json={"status": "active"}, headers=admin_headers)
    assert resp.status == 200 and resp.json["status"] == "active"
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 200

    _, resp = await client.patch(f"{CODES}/{slug}", json={"label": "三楼东侧"}, headers=admin_headers)
    assert resp.status == 200 and resp.json["label"] == "三楼东侧"
    _, resp = await client.get(f"/q/{slug}/poster.svg")
    assert "三楼东侧" in resp.text
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.json["code"]["label"] == "三楼东侧"

    _, resp = await client.patch(f"{CODES}/{slug}", json={}, headers=admin_headers)
    assert resp.status == 200 and resp.json["label"] == "三楼东侧" and resp.json["status"] == "active"


async def test_patch_validity_window(codes, client, catalogue, admin_headers):
    slug = await issue(codes)
    await client.get(f"/api/v1/codes/{slug}")
    # A validity that has already ended is refused (it would kill a printed code by mistake).
    past = (clock.now() - dt.timedelta(hours=1)).isoformat()
    _, resp = await client.patch(f"{CODES}/{slug}", json={"valid_until": past}, headers=admin_headers)
    error = assert_error(resp, 422, "CODE_VALIDITY_ENDED")
    assert "valid_until" in error["details"]["fields"]
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    _, resp = await client.post(CODES, json={"matter_code": LICENCE, "valid_until": past}, headers=admin_headers)
    assert_error(resp, 422, "CODE_VALIDITY_ENDED")
    assert await Code.filter(valid_until__isnull=False).count() == 0

    _, resp = await client.patch(f"{CODES}/{slug}", json={"valid_until": None}, headers=admin_headers)
    assert resp.status == 200 and resp.json["valid_until"] is None
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200

    future = (clock.now() + dt.timedelta(days=2)).isoformat()
    _, resp = await client.patch(f"{CODES}/{slug}", json={"valid_since": future}, headers=admin_headers)
    assert resp.status == 200
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert_error(resp, 410, "CODE_NOT_YET_VALID")

    # Only valid_until given, earlier than the stored valid_since: the window is checked as a whole.
    earlier = (clock.now() + dt.timedelta(days=1)).isoformat()
    _, resp = await client.patch(f"{CODES}/{slug}", json={"valid_until": earlier}, headers=admin_headers)
    assert_error(resp, 422, "INVALID_INPUT")
    _, resp = await client.patch(f"{CODES}/{slug}", json={"valid_since": "2026-12-01T08:00:00"},
                                 headers=admin_headers)  # fmt: skip
    assert_error(resp, 422, "INVALID_INPUT")
    stored = await Code.get(slug=slug)
    assert stored.valid_until is None and stored.valid_since is not None


async def test_patch_max_scans(codes, client, catalogue, admin_headers):
    slug = await issue(codes, max_scans=1)
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert_error(resp, 410, "CODE_EXHAUSTED")
    _, resp = await client.patch(f"{CODES}/{slug}", json={"max_scans": 2}, headers=admin_headers)
    assert resp.status == 200 and resp.json["max_scans"] == 2 and resp.json["limited_scans_used"] == 1
    _, resp = await client.get(f"/api/v1/codes/{slug}")
    assert resp.status == 200
    _, resp = await client.patch(f"{CODES}/{slug}", json={"max_scans": None}, headers=admin_headers)
    assert resp.status == 200 and resp.json["max_scans"] is None
    for _ in range(3):
        _, resp = await client.get(f"/api/v1/codes/{slug}")
        assert resp.status == 200


@pytest.mark.parametrize(
    "body",
    [{"status": "paused"}, {"action": "teleport"}, {"max_scans": 0}, {"label": "x" * 201}, {"slug": "abcdefgh"},
     {"matter_code": "short"}],
)  # fmt: skip
async def test_patch_rejects_bad_fields(codes, client, catalogue, admin_headers, body):
    slug = await issue(codes)
    _, resp = await client.patch(f"{CODES}/{slug}", json=body, headers=admin_headers)
    assert resp.status == 422, resp.text
    assert resp.json["error"]["code"] in ("INVALID_INPUT", "TARGET_INVALID")


async def test_patch_of_an_unknown_code_is_404(client, catalogue, admin_headers):
    for slug in ("zzzzzzzz", "NOPE"):
        _, resp = await client.patch(f"{CODES}/{slug}", json={"status": "disabled"}, headers=admin_headers)
        assert_error(resp, 404, "CODE_NOT_FOUND")


async def test_stats_by_day_and_channel(client, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    today = clock.today().isoformat()
    await client.get(f"/q/{slug}", headers=BROWSER)
    await client.get(f"/q/{slug}", headers={"User-Agent": WECHAT})
    await client.get(f"/api/v1/codes/{slug}", headers={"User-Agent": SAFARI, "X-Client": "miniprogram"})
    await client.get(f"/api/v1/codes/{slug}", headers={"User-Agent": SAFARI, "X-Client": "app"})
    await client.get(f"/api/v1/codes/{slug}", headers={"User-Agent": SAFARI, "X-Client": "app"})
    stats = await stats_of(client, admin_headers, slug, **{"from": today, "to": today})
    assert stats["slug"] == slug and stats["from"] == today and stats["to"] == today
    assert stats["total_scans"] == 5
    assert stats["by_channel"] == {"browser": 1, "wechat": 1, "miniprogram": 1, "app": 2}
    assert len(stats["days"]) == 1
    day = stats["days"][0]
    assert day["date"] == today and day["scans"] == 5 and day["by_channel"] == stats["by_channel"]
    assert day["visitors"] == 1  # one cookie jar, one visitor

    default = await stats_of(client, admin_headers, slug)  # the last 30 days by default
    assert default["to"] == today
    assert default["from"] == (clock.today() - dt.timedelta(days=29)).isoformat()
    assert default["total_scans"] == 5

    yesterday = (clock.today() - dt.timedelta(days=1)).isoformat()
    empty = await stats_of(client, admin_headers, slug, **{"from": yesterday, "to": yesterday})
    assert empty["days"] == [] and empty["total_scans"] == 0


@pytest.mark.parametrize(
    "query",
    [{"from": "2026-02-01", "to": "2026-01-01"}, {"from": "2024-01-01", "to": "2026-01-01"},
     {"from": "not-a-date"}, {"to": "2026-13-01"}],
)  # fmt: skip
async def test_stats_bad_range_is_422(client, catalogue, admin_headers, query):
    slug = await default_slug(LICENCE)
    _, resp = await client.get(f"{CODES}/{slug}/stats", params=query, headers=admin_headers)
    assert_error(resp, 422, "INVALID_INPUT")


async def test_stats_of_an_unknown_code_is_404(client, catalogue, admin_headers):
    _, resp = await client.get(f"{CODES}/zzzzzzzz/stats", headers=admin_headers)
    assert_error(resp, 404, "CODE_NOT_FOUND")


async def test_batch_zip_of_a_section(client, catalogue, admin_headers):
    _, resp = await client.get(f"{CODES}/batch.zip", params={"section": "commercial"}, headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.headers["content-type"] == "application/zip"
    assert 'filename="qr-commercial-2.zip"' in resp.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        assert archive.testzip() is None
        names = sorted(archive.namelist())
        expected = []
        for code in (LICENCE, FOOD):
            slug = await default_slug(code)
            expected += [f"{code}-{slug}.png", f"{code}-{slug}-poster.svg"]
        assert names == sorted(expected)
        for code, name in ((LICENCE, LICENCE_NAME), (FOOD, FOOD_NAME)):
            slug = await default_slug(code)
            url = f"{BASE}/q/{slug}"
            assert decode(Image.open(archive.open(f"{code}-{slug}.png"))).text == url
            poster = archive.read(f"{code}-{slug}-poster.svg")
            assert name in poster.decode() and f"短码 {slug}" in poster.decode()
            assert svg_text(poster, px_per_unit=4) == url


async def test_batch_zip_leaves_out_retired_matters_and_issues_missing_defaults(
    codes, client, catalogue, admin_headers
):
    await client.post(f"{ADMIN}/matters/{FOOD}/retire", headers=admin_headers)
    await Code.filter(matter_code=LICENCE).delete()  # e.g. published before codes existed
    _, resp = await client.get(f"{CODES}/batch.zip", params={"section": "commercial"}, headers=admin_headers)
    assert resp.status == 200
    slug = await default_slug(LICENCE)  # issued by the download
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        assert sorted(archive.namelist()) == [f"{LICENCE}-{slug}-poster.svg", f"{LICENCE}-{slug}.png"]


async def test_batch_zip_of_an_empty_section(client, catalogue, admin_headers):
    _, resp = await client.get(f"{CODES}/batch.zip", params={"section": "investment"}, headers=admin_headers)
    assert resp.status == 200
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        assert archive.namelist() == []


@pytest.mark.parametrize("query", [{"section": "nope"}, {}, {"section": ""}])
async def test_batch_zip_bad_section_is_422(client, catalogue, admin_headers, query):
    _, resp = await client.get(f"{CODES}/batch.zip", params=query, headers=admin_headers)
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert "section" in error["details"]["fields"]


async def run_cli(settings, *args: str) -> tuple[int, str, str]:
    """`python -m app ...` against this session's database, in its own process (its own ORM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "BASE_URL"))}
    env.update(APP_ENV="test", DATABASE_URL=settings.database_url, BASE_URL=BASE, LOG_LEVEL="WARNING")
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args, env=env, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_codes_zip_writes_the_section_print_files(settings, catalogue, tmp_path):
    target = tmp_path / "commercial.zip"
    code, out, err = await run_cli(settings, "codes", "zip", "--section", "commercial", "--out", str(target))
    assert code == 0, err
    assert "wrote 2 matters" in out
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        for matter in (LICENCE, FOOD):
            slug = await default_slug(matter)
            assert decode(Image.open(archive.open(f"{matter}-{slug}.png"))).text == f"{BASE}/q/{slug}"
            assert svg_text(archive.read(f"{matter}-{slug}-poster.svg"), px_per_unit=4) == f"{BASE}/q/{slug}"
        assert len(archive.namelist()) == 4


async def test_cli_codes_zip_bad_section_fails_cleanly(settings, catalogue, tmp_path):
    target = tmp_path / "nope.zip"
    code, _, err = await run_cli(settings, "codes", "zip", "--section", "nope", "--out", str(target))
    assert code == 1
    assert "INVALID_INPUT" in err and "Traceback" not in err
    assert not target.exists()


# ---------------------------------------------------------------- 7. scan analytics


async def daily(slug: str) -> dict[str, int]:
    return {r.channel.value: r.scans for r in await ScanDaily.filter(slug=slug)}


async def invalid_counts() -> dict[str, int]:
    return {r.reason: r.scans for r in await InvalidScan.all()}


async def test_scans_are_counted_per_channel(client, app, catalogue):
    slug = await default_slug(LICENCE)
    requests = [
        (f"/q/{slug}", {"User-Agent": WECHAT}),
        (f"/q/{slug}", {"User-Agent": WECHAT, "Accept": "application/json"}),
        (f"/api/v1/codes/{slug}", {"User-Agent": WECHAT, "X-Client": "miniprogram"}),
        (f"/api/v1/codes/{slug}", {"User-Agent": "Mozilla/5.0 (Linux; Android 14)", "X-Client": "app"}),
        (f"/q/{slug}", BROWSER),
        (f"/q/{slug}", {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"}),
        (f"/api/v1/codes/{slug}", JSON),
    ]
    for path, headers in requests:
        _, resp = await client.get(path, headers=headers)
        assert resp.status == 200
    await app.ctx.scans.flush()
    assert await daily(slug) == {"wechat": 2, "miniprogram": 1, "app": 1, "browser": 3}
    row = await ScanDaily.filter(slug=slug).first()
    assert row is not None and row.day == clock.today()


async def test_images_and_posters_are_not_scans(client, app, catalogue):
    slug = await default_slug(LICENCE)
    for suffix in (".png", ".svg", "/poster.svg"):
        await client.get(f"/q/{slug}{suffix}", headers=BROWSER)
    await app.ctx.scans.flush()
    assert await ScanDaily.all().count() == 0


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "curl/8.0",
        "python-requests/2.32.3",
    ],
)
async def test_bots_are_answered_but_not_counted(codes, client, app, catalogue, ua):
    slug = await default_slug(LICENCE)
    limited = await issue(codes, max_scans=1)
    for path in (f"/q/{slug}", f"/api/v1/codes/{slug}", f"/q/{limited}"):
        _, resp = await client.get(path, headers={"User-Agent": ua})
        assert resp.status == 200
    _, resp = await client.get("/q/zzzzzzzz", headers={"User-Agent": ua})
    assert resp.status == 404
    await app.ctx.scans.flush()
    assert await ScanDaily.all().count() == 0 and await InvalidScan.all().count() == 0
    assert await ScanVisitors.all().count() == 0
    assert (await Code.get(slug=limited)).scans == 0  # a bot does not use up a limited code
    assert "set-cookie" not in resp.headers


async def test_head_requests_are_not_counted(codes, client, app, catalogue):
    slug = await default_slug(LICENCE)
    limited = await issue(codes, max_scans=1)
    for path in (f"/q/{slug}", f"/q/{limited}", f"/q/{limited}"):
        _, resp = await client.head(path, headers=BROWSER)
        assert resp.status == 200
    _, resp = await client.head("/q/zzzzzzzz", headers=BROWSER)
    assert resp.status == 404
    await app.ctx.scans.flush()
    assert await ScanDaily.all().count() == 0 and await InvalidScan.all().count() == 0
    assert (await Code.get(slug=limited)).scans == 0
    _, resp = await client.get(f"/q/{limited}", headers=BROWSER)
    assert resp.status == 200


async def test_exhausted_code_is_gone_for_head_and_bots_too(codes, client, catalogue):
    slug = await issue(codes, max_scans=1)
    await Code.filter(slug=slug).update(scans=1)
    _, resp = await client.get(f"/api/v1/codes/{slug}", headers={"User-Agent": "curl/8.0"})
    assert resp.status == 410
    _, resp = await client.head(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 410


async def test_invalid_scans_are_logged_by_reason(codes, client, app, catalogue, fake_clock):
    for state in GONE_MESSAGES:
        slug = await make_gone(codes, state, fake_clock)
        await client.get(f"/q/{slug}", headers=BROWSER)
        await client.get(f"/api/v1/codes/{slug}", headers=JSON)
    for garbage in ("zzzzzzzz", "ABC", "a" * 300):
        await client.get(f"/q/{garbage}", headers=BROWSER)
    await client.get(f"/q/{GARBAGE['sql']}.png", headers=BROWSER)  # images are not scans
    assert await InvalidScan.all().count() == 0  # buffered until the flush
    await app.ctx.scans.flush()
    assert await invalid_counts() == {
        "unknown": 3, "disabled": 2, "expired": 2, "not_yet_valid": 2, "exhausted": 2,
    }  # fmt: skip
    rows = await InvalidScan.all()
    assert {r.day for r in rows} == {clock.today()}
    assert await ScanDaily.all().count() == 0


async def test_first_scan_sets_the_visitor_cookie_and_one_cookie_is_one_visitor(
    codes, client, app, catalogue, admin_headers
):
    slug = await default_slug(LICENCE)
    _, first = await client.get(f"/q/{slug}", headers=BROWSER)
    cookie = first.headers.get("set-cookie", "")
    assert cookie.startswith("zd_vid="), cookie
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "max-age=31536000" in lowered
    assert "secure" not in lowered  # BASE_URL is http in tests
    vid = client.cookies.get("zd_vid")
    assert vid and re.fullmatch(r"[A-Za-z0-9_-]{8,64}", vid)
    for _ in range(3):
        _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
        assert "set-cookie" not in resp.headers  # the cookie is not minted again
    _, resp = await client.get(f"/api/v1/codes/{slug}", headers={"User-Agent": WECHAT})
    assert resp.status == 200 and "set-cookie" not in resp.headers
    stats = await stats_of(client, admin_headers, slug)
    assert stats["total_scans"] == 5
    assert stats["days"][0]["visitors"] == 1
    assert (await ScanVisitors.get(slug=slug)).visitors == 1


async def test_distinct_clients_are_distinct_visitors(client, app, catalogue, admin_headers):
    slug = await default_slug(FOOD)
    for _ in range(4):
        client.cookies.clear()
        _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
        assert resp.headers["set-cookie"].startswith("zd_vid=")
    client.cookies.clear()
    stats = await stats_of(client, admin_headers, slug)
    assert stats["total_scans"] == 4 and stats["days"][0]["visitors"] == 4


async def test_visitors_add_up_across_flushes(client, app, catalogue, admin_headers):
    slug = await default_slug(FOOD)
    await client.get(f"/q/{slug}", headers=BROWSER)
    await app.ctx.scans.flush()
    await client.get(f"/q/{slug}", headers=BROWSER)  # same cookie
    client.cookies.clear()
    await client.get(f"/q/{slug}", headers=BROWSER)  # a new visitor
    client.cookies.clear()
    stats = await stats_of(client, admin_headers, slug)
    assert stats["total_scans"] == 3 and stats["days"][0]["visitors"] == 2


async def test_scans_are_buffered_until_flushed(client, app, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    for _ in range(3):
        await client.get(f"/q/{slug}", headers=BROWSER)
    await client.get("/q/zzzzzzzz", headers=BROWSER)
    assert await ScanDaily.all().count() == 0
    assert await InvalidScan.all().count() == 0
    assert await ScanVisitors.all().count() == 0
    stats = await stats_of(client, admin_headers, slug)  # the stats endpoint flushes first
    assert stats["total_scans"] == 3
    assert await daily(slug) == {"browser": 3}
    assert await invalid_counts() == {"unknown": 1}
    await app.ctx.scans.flush()  # nothing left: flushing again adds nothing
    assert await daily(slug) == {"browser": 3}


async def test_counts_add_up_across_flushes(client, app, catalogue):
    slug = await default_slug(LICENCE)
    await client.get(f"/q/{slug}", headers=BROWSER)
    await app.ctx.scans.flush()
    await client.get(f"/q/{slug}", headers=BROWSER)
    await client.get(f"/q/{slug}", headers={"User-Agent": WECHAT})
    await app.ctx.scans.flush()
    assert await daily(slug) == {"browser": 2, "wechat": 1}


async def test_nothing_is_lost_on_a_clean_shutdown(app, catalogue):
    slug = await default_slug(LICENCE)
    client = AppClient(app)
    await client.start()
    try:
        for headers in (BROWSER, BROWSER, {"User-Agent": WECHAT}):
            _, resp = await client.get(f"/q/{slug}", headers=headers)
            assert resp.status == 200
        await client.get("/q/zzzzzzzz", headers=BROWSER)
        assert await ScanDaily.all().count() == 0
    finally:
        await client.stop()  # after_server_stop flushes
    assert await daily(slug) == {"browser": 2, "wechat": 1}
    assert await invalid_counts() == {"unknown": 1}
    assert (await ScanVisitors.get(slug=slug)).visitors == 1


async def test_a_failed_flush_keeps_the_counts_for_the_next(client, app, catalogue, monkeypatch):
    slug = await default_slug(LICENCE)
    for _ in range(2):
        await client.get(f"/q/{slug}", headers=BROWSER)
    await client.get("/q/zzzzzzzz", headers=BROWSER)

    async def broken(*args, **kwargs):
        raise ConnectionError("database is away")

    with monkeypatch.context() as patch:
        patch.setattr(analytics, "_upsert_scans", broken)
        await app.ctx.scans.flush()  # logged, not raised
        assert await ScanDaily.all().count() == 0
        await client.get(f"/q/{slug}", headers=BROWSER)  # scans go on meanwhile
        await app.ctx.scans.flush()
        assert await ScanDaily.all().count() == 0
    await app.ctx.scans.flush()
    assert await daily(slug) == {"browser": 3}
    assert await invalid_counts() == {"unknown": 1}
    assert (await ScanVisitors.get(slug=slug)).visitors == 1


async def test_a_failing_database_never_fails_the_scan(client, app, catalogue, monkeypatch):
    slug = await default_slug(LICENCE)
    await client.get(f"/q/{slug}", headers=BROWSER)  # warm the snapshot

    async def broken(*args, **kwargs):
        raise ConnectionError("database is away")

    monkeypatch.setattr(analytics, "_upsert_scans", broken)
    _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
    assert resp.status == 200


# ---------------------------------------------------------------- 8. concurrency


async def test_concurrent_scans_are_counted_exactly(client, app, catalogue, admin_headers):
    slug = await default_slug(LICENCE)
    channels = [BROWSER, {"User-Agent": WECHAT}, {"User-Agent": SAFARI, "X-Client": "app"}, JSON]
    results = await asyncio.gather(
        *(client.get(f"/q/{slug}" if i % 2 else f"/api/v1/codes/{slug}", headers=channels[i % 4]) for i in range(200))
    )
    assert [resp.status for _, resp in results] == [200] * 200
    await app.ctx.scans.flush()
    rows = await daily(slug)
    assert sum(rows.values()) == 200
    assert rows == {"browser": 100, "wechat": 50, "app": 50}
    stats = await stats_of(client, admin_headers, slug)
    assert stats["total_scans"] == 200


async def test_concurrent_scans_while_flushing_lose_nothing(client, app, catalogue):
    slug = await default_slug(LICENCE)

    async def scans(n: int) -> None:
        for _ in range(n):
            _, resp = await client.get(f"/q/{slug}", headers=BROWSER)
            assert resp.status == 200

    async def flushes(n: int) -> None:
        for _ in range(n):
            await app.ctx.scans.flush()
            await asyncio.sleep(0)

    await asyncio.gather(*(scans(25) for _ in range(4)), flushes(20))
    await app.ctx.scans.flush()
    assert await daily(slug) == {"browser": 100}


async def test_scan_limit_is_exact_under_concurrent_scans(codes, client, app, catalogue):
    slug = await issue(codes, max_scans=30)
    results = await asyncio.gather(*(client.get(f"/api/v1/codes/{slug}", headers=JSON) for _ in range(100)))
    statuses = [resp.status for _, resp in results]
    assert statuses.count(200) == 30 and statuses.count(410) == 70
    for _, resp in results:
        if resp.status == 410:
            assert resp.json["error"]["code"] == "CODE_EXHAUSTED"
    assert (await Code.get(slug=slug)).scans == 30
    await app.ctx.scans.flush()
    assert await daily(slug) == {"browser": 30}
    assert await invalid_counts() == {"exhausted": 70}


@pytest.mark.postgres
async def test_scan_limit_is_exact_across_workers_on_postgres(codes, settings, catalogue):
    """Several apps (as separate workers would be) plus raw resolves, all on pooled connections."""
    assert BACKEND == "postgres"
    slug = await issue(codes, max_scans=30)
    clients = [AppClient(create_app(settings)) for _ in range(4)]
    for c in clients:
        await c.start()
    try:
        for c in clients:  # every worker has the snapshot cached: only the database decides
            await c.get(f"/q/{slug}.png")
            await service.snapshot(c.sanic_app.ctx.codes, slug=slug)

        async def raw(deps) -> int:
            try:
                await service.resolve(deps, slug=slug)
            except service.CodeExhausted:
                return 410
            return 200

        async def http(c) -> int:
            _, resp = await c.get(f"/q/{slug}", headers=JSON)
            if resp.status == 410:
                assert resp.json["error"]["code"] == "CODE_EXHAUSTED"
            return resp.status

        jobs = []
        for i in range(100):
            c = clients[i % 4]
            jobs.append(raw(c.sanic_app.ctx.codes) if i % 5 == 0 else http(c))
        statuses = await asyncio.gather(*jobs)
        assert statuses.count(200) == 30 and statuses.count(410) == 70
        assert (await Code.get(slug=slug)).scans == 30
    finally:
        for c in clients:
            await c.stop()


@pytest.mark.postgres
async def test_scan_limit_is_exact_with_separate_connections_on_postgres(codes, base_settings, catalogue):
    """The conditional UPDATE itself, raced from 100 separate PostgreSQL connections."""
    import asyncpg

    slug = await issue(codes, max_scans=30)
    url = base_settings.database_url
    conns = [await asyncpg.connect(url) for _ in range(20)]
    try:
        start = asyncio.Event()

        async def one(conn) -> int:
            await start.wait()
            async with conn.transaction():
                status = await conn.execute(
                    "UPDATE qr_code SET scans = scans + 1 WHERE slug = $1 AND scans < $2", slug, 30
                )
            return int(status.split()[-1])

        tasks = [asyncio.create_task(one(conns[i % 20])) for i in range(20)]
        start.set()
        first = await asyncio.gather(*tasks)
        more = []
        for _ in range(4):
            tasks = [asyncio.create_task(one(c)) for c in conns]
            more += await asyncio.gather(*tasks)
        assert sum(first) + sum(more) == 30
    finally:
        for conn in conns:
            await conn.close()
    assert (await Code.get(slug=slug)).scans == 30


# ---------------------------------------------------------------- 9. WeChat codes


class TestWeChatCodes:
    """Official-account scene QR codes and mini-program codes, created once through WeChat and re-served."""

    @pytest.fixture
    def settings(self, wechat_settings):
        return wechat_settings

    async def test_mp_scene_code_is_created_once(self, client, catalogue, fake_wechat):
        slug = await default_slug(LICENCE)
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/mp.png")
        assert resp.status == 200, resp.text
        assert resp.headers["content-type"] == "image/png"
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 1
        call = next(c for c in fake_wechat.calls if c.path == "/cgi-bin/qrcode/create")
        assert call.json["action_info"]["scene"]["scene_str"] == slug
        assert call.json["action_name"] == "QR_LIMIT_STR_SCENE"
        (record,) = fake_wechat.qrcodes.values()
        assert png_text(resp.content) == record["url"]
        stored = await WeChatCode.get(matter_code=LICENCE, kind="mp")
        assert stored.slug == slug and stored.url == record["url"]

        _, again = await client.get(f"/api/v1/matters/{LICENCE.lower()}/wechat-codes/mp.png")
        assert again.status == 200 and again.content == resp.content
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 1
        _, cached = await client.get(
            f"/api/v1/matters/{LICENCE}/wechat-codes/mp.png", headers={"If-None-Match": resp.headers["etag"]}
        )
        assert cached.status == 304

    async def test_mini_program_code_is_created_once(self, client, catalogue, fake_wechat):
        slug = await default_slug(FOOD)
        _, resp = await client.get(f"/api/v1/matters/{FOOD}/wechat-codes/wxa.png")
        assert resp.status == 200, resp.text
        assert resp.headers["content-type"] == "image/png"
        assert fake_wechat.count("/wxa/getwxacodeunlimit") == 1
        call = next(c for c in fake_wechat.calls if c.path == "/wxa/getwxacodeunlimit")
        assert call.json["scene"] == slug
        assert png_text(resp.content) == f"{call.json['page']}?scene={slug}"
        _, again = await client.get(f"/api/v1/matters/{FOOD}/wechat-codes/wxa.png")
        assert again.status == 200 and again.content == resp.content
        assert fake_wechat.count("/wxa/getwxacodeunlimit") == 1
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 0

    async def test_wechat_codes_are_kept_across_workers(self, settings, catalogue, fake_wechat):
        first = AppClient(create_app(settings))
        await first.start()
        try:
            _, resp = await first.get(f"/api/v1/matters/{FUND}/wechat-codes/mp.png")
            assert resp.status == 200
        finally:
            await first.stop()
        second = AppClient(create_app(settings))
        await second.start()
        try:
            _, again = await second.get(f"/api/v1/matters/{FUND}/wechat-codes/mp.png")
            assert again.status == 200 and again.content == resp.content
        finally:
            await second.stop()
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 1

    @pytest.mark.parametrize("kind", ["xx.png", "mp.gif", "mp", "wxa.svg", "MP.png", "mp_scene.png"])
    async def test_unknown_kind_is_404(self, client, catalogue, fake_wechat, kind):
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/{kind}")
        assert resp.status == 404, resp.text
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 0
        assert fake_wechat.count("/wxa/getwxacodeunlimit") == 0

    async def test_unknown_matter_calls_no_wechat(self, client, catalogue, fake_wechat):
        _, resp = await client.get("/api/v1/matters/4308-XK-SS-999/wechat-codes/mp.png")
        assert resp.status in (404, 422), resp.text
        assert fake_wechat.count("/cgi-bin/qrcode/create") == 0

    @pytest.mark.parametrize(("kind", "path"), [("mp", "/cgi-bin/qrcode/create"), ("wxa", "/wxa/getwxacodeunlimit")])
    async def test_rate_limit_is_a_503_then_the_next_call_creates(self, client, catalogue, fake_wechat, kind, path):
        fake_wechat.inject(path, 45009)
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/{kind}.png")
        error = assert_error(resp, 503, "WECHAT_RATE_LIMITED")
        assert error["details"].get("errcode") == 45009
        assert "retry-after" in resp.headers
        assert not await WeChatCode.exists(matter_code=LICENCE, kind=kind)
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/{kind}.png")
        assert resp.status == 200 and resp.headers["content-type"] == "image/png"
        assert fake_wechat.count(path) == 2

    async def test_wechat_down_is_a_503(self, client, catalogue, fake_wechat):
        fake_wechat.fail("/cgi-bin/qrcode/create", status=502, times=5)
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/mp.png")
        assert resp.status == 503, resp.text
        assert resp.json["error"]["code"] in ("WECHAT_UNAVAILABLE", "WECHAT_RATE_LIMITED")


class TestWeChatMiniProgramPage:
    """The configured mini-program page is the page a mini-program code opens."""

    @pytest.fixture
    def settings(self, wechat_settings):
        return wechat_settings.replace(wechat_mini_page="pages/qr/index")

    async def test_wxa_code_opens_the_configured_page(self, client, catalogue, fake_wechat):
        slug = await default_slug(LICENCE)
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/wechat-codes/wxa.png")
        assert resp.status == 200
        call = next(c for c in fake_wechat.calls if c.path == "/wxa/getwxacodeunlimit")
        assert call.json["page"] == "pages/qr/index" and call.json["scene"] == slug
        assert png_text(resp.content) == f"pages/qr/index?scene={slug}"
