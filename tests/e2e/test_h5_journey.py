"""The citizen's H5 journey in real headless Chromium at phone size (390×844), with axe-core on every page.

One real `python -m app run` process for the module, with the demo catalogue, the dev SMS sender (its
codes and notifications are read from the server log, as a developer reads them) and the fake WeChat
API on a thread of this process (the server reaches it by URL). Each test is its own citizen (its own
phone number, its own WeChat user) and runs alone or in any order: what a test needs from the shared
service (the hall opened all day, staff accounts) it makes itself or takes from a module fixture that
is the same whichever test asks first.

The journeys: a scanned code to sign-in, elder mode and WeChat sign-in; booking from the printed code to
the checked-in ticket and the rated visit; applying online with real files to the decided case, its
text messages, the progress query without sign-in and the rated case; a question answered by the
department; booking inside WeChat without typing; booking and applying with JavaScript off. Every
page is checked with axe-core (no serious or critical violation; with JavaScript off axe cannot run,
those pages are screenshotted only) and every HTML page received must be under 60 KB.

Pass or fail never depends on the fonts installed: font sizes are read from computed styles, and
screenshots are only written, not compared.

Sync Playwright in plain (non-async) tests, as tests/e2e/test_desk_page.py explains.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app import clock, workdays
from auth.idcard import make_id_number
from tests.e2e import h5
from tests.e2e.conftest import Server
from tests.fakes.wechat import FakeWeChat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python not installed")
pytest.importorskip("zxingcpp", reason="zxing-cpp not installed")
icalendar = pytest.importorskip("icalendar", reason="icalendar not installed")
expect = sync_api.expect
expect.set_options(timeout=15_000)  # as the contexts' default: a 2-core machine running other tests is slow

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOOK_MATTER = "营业执照"  # demo 4308-XK-SS-001 营业执照设立登记: booked at hall main
# Demo 个体工商户注册登记: online application with a phone-verified account (apply_loa 2); the form is a
# PDF, the ID card a PDF or a photo.
APPLY_MATTER = "4308-XK-SS-003"
EARLY_MINUTES = 240  # check-in opens this long before a slot (set on the hall below)
LEVELS = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
# The staff actions from submission to completion: (action, timeline label, status shown, what its text says).
CASE_STEPS = (
    ("accept", "已受理", "已受理", "申请已受理"),
    ("start_review", "审查中", "审查中", "正在审查"),
    ("approve", "审批通过", "审批通过，待送达", "审批通过"),
    ("deliver", "已送达", "已送达", "结果已送达"),
    ("complete", "已办结", "已办结", "办件已办结"),
)
TIMELINE = [step[1] for step in reversed(CASE_STEPS)] + ["提交申请"]  # as the pages list it, newest first


@pytest.fixture(scope="module")
def fake_wechat() -> Iterator[FakeWeChat]:
    """The fake WeChat API (official account and mini program of the dev settings) on a thread."""
    with FakeWeChat() as fake:
        yield fake


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, fake_wechat: FakeWeChat) -> Iterator[h5.Service]:
    """`python -m app run` as `make run` runs it: demo catalogue, dev SMS and real-name, WeChat = the fake.

    One process for the module (starting one takes longer than most steps): tests share nothing else.
    """
    tmp = tmp_path_factory.mktemp("h5-journey")
    database_url = f"sqlite://{tmp / 'e2e.sqlite3'}"
    server = Server(
        {
            "APP_ENV": "development", "LOAD_DEMO": "true", "SMS_SENDER": "console", "REALNAME_VERIFIER": "dev",
            "DATABASE_URL": database_url, "ACCESS_LOG": "false", **h5.wechat_env(fake_wechat),
        },
        tmp / "server.log",
    )  # fmt: skip
    try:
        server.wait_ready()
        yield h5.Service(server, fake_wechat, database_url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hall(service: h5.Service) -> str:
    """Hall main open all day every day, check-in from 4 hours before a slot, no booking cutoff: the next
    slot can be booked and checked in on the real clock. The hall's code."""
    admin = service.staff("admin")
    config = {
        "hours": {str(d): [["00:00", "23:59"]] for d in range(1, 8)},
        "early_minutes": EARLY_MINUTES,
        "cutoff_minutes": 0,
    }
    put = httpx.put(service.url + "/api/v1/admin/halls/main/schedule", json=config, headers=admin)
    assert put.status_code == 200, put.text
    if workdays.day_kind(clock.today()) == "holiday":
        pytest.skip(f"{clock.today()} is a statutory holiday: hall main has no hours whatever its calendar says")
    return "main"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for one test (fresh contexts inside it).

    Function-scoped on purpose: sync Playwright runs an event loop on this thread while it is open, and
    the suite's async autouse fixtures cannot be set up while a loop runs.
    """
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def journey(tmp_path: Path, request: pytest.FixtureRequest) -> h5.Journey:
    """axe results and screenshots of the pages a test visits."""
    return h5.Journey.in_dir(tmp_path, request.node.name)


@pytest.fixture
def phone(browser, journey: h5.Journey) -> Iterator[Callable[..., Any]]:
    """New phone-sized browser contexts (390×844, touch, zh-CN); page errors fail the test; all closed after.

    Every tab opened in them has its HTML pages measured by the journey.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def new(*, user_agent: str = h5.MOBILE_UA, javascript: bool = True) -> Any:
        context = browser.new_context(
            viewport=h5.PHONE, screen=h5.PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
            locale="zh-CN", timezone_id="Asia/Shanghai", user_agent=user_agent, java_script_enabled=javascript,
        )  # fmt: skip
        context.set_default_timeout(15_000)
        context.on("weberror", lambda e: errors.append(str(e.error)))
        context.on("page", journey.watch)
        contexts.append(context)
        return context

    yield new
    for context in contexts:
        context.close()
    assert errors == [], errors


def _cookies(context: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in context.cookies()}


def _sign_in_by_sms(page: Any, service: h5.Service, number: str, journey: h5.Journey | None = None) -> None:
    """On the sign-in page: type the phone, ask for the code, read it from the server log, type it."""
    mark = service.sms_mark()
    page.get_by_label("手机号").fill(number)
    if journey:
        journey.check(page, "login")
    page.get_by_role("button", name="获取验证码", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"验证码已发送至 {h5.masked(number)}")
    if journey:
        journey.check(page, "login code step")
    page.get_by_label("短信验证码").fill(service.sms_code(number, after=mark))
    page.get_by_role("button", name="登录", exact=True).click()


def _scopes(fake: FakeWeChat) -> list[str]:
    return [c.query.get("scope", "") for c in fake.calls if c.path == "/connect/oauth2/authorize"]


# ---------------------------------------------------------------- the harness itself


def test_axe_helper_catches_a_serious_problem(phone, journey):
    """The checker is real: an image without alt text, an unlabelled input, a form without its token."""
    page = phone().new_page()
    form = '<form method="post" action="/m/x"><input type="hidden" name="csrf" value=""></form>'
    page.set_content(f'<html lang="zh-CN"><title>t</title><main><img src="data:,"><input>{form}</main></html>')
    visit = journey.check(page, "axe self-test")
    assert {v["id"] for v in visit.blocking()} >= {"image-alt", "label"}, visit.violations
    assert visit.empty_tokens == ["/m/x: csrf"]
    with pytest.raises(AssertionError, match="image-alt") as refused:
        journey.assert_accessible()
    assert "form /m/x: csrf is empty" in str(refused.value)
    assert visit.screenshot.stat().st_size > 0


# ---------------------------------------------------------------- steps that work today


def test_scan_printed_code_sign_in_by_sms_elder_mode(service, phone, journey):
    """Scan → guide → 我的/登录 → SMS code → my account; elder mode; the public pages; axe on each."""
    matter, slug = h5.demo_slug(service.url)

    # -- a. the printed code, decoded by a real QR decoder, opens the guide in the phone's browser --------
    png = httpx.get(service.url + f"/q/{slug}.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    scanned = h5.decode_qr(png.content)
    assert scanned == f"{service.url}/q/{slug}", scanned

    page = phone().new_page()
    journey.visit(page, scanned, "guide (scanned)")
    expect(page).to_have_title(re.compile(re.escape(matter["name"])))
    expect(page.get_by_role("heading", level=1)).to_have_text(matter["name"])
    expect(page.get_by_role("heading", name=re.compile("申请材料"))).to_be_visible()

    # -- b. sign in by SMS from the header link; back on the page the link led to -------------------------
    page.get_by_role("link", name="我的 / 登录").click()
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/me$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("登录")
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number, journey)
    expect(page).to_have_url(f"{service.url}/m/me")
    expect(page.locator("dl.kv")).to_contain_text(h5.masked(number))
    assert number not in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["zd_at"]["httpOnly"] and cookies["zd_at"]["sameSite"] == "Lax"
    journey.check(page, "me")

    journey.visit(page, service.url + "/m/me/real-name", "real-name")
    expect(page.get_by_label("身份证号")).to_be_visible()

    # -- elder mode: one tap, larger type, remembered on the next page ------------------------------------
    page.goto(service.url + "/m/me")
    body, heading = page.locator("body"), page.get_by_role("heading", level=1)
    plain_body, plain_h1 = h5.font_px(body), h5.font_px(heading)
    page.get_by_role("button", name="长辈模式").click()
    expect(page).to_have_url(f"{service.url}/m/me")
    expect(page.locator("html")).to_have_class("elder")
    toggle = page.get_by_role("button", name="标准模式")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert h5.font_px(body) > plain_body and h5.font_px(heading) > plain_h1
    journey.check(page, "me elder")
    journey.visit(page, service.url + "/m", "home elder")
    expect(page.locator("html")).to_have_class("elder")
    assert h5.font_px(page.locator("body")) > plain_body
    journey.visit(page, f"{service.url}/m/{matter['code']}", "guide elder")
    expect(page.locator("html")).to_have_class("elder")
    assert h5.font_px(page.locator("body")) > plain_body
    page.get_by_role("button", name="标准模式").click()
    expect(page.locator("html")).not_to_have_class("elder")
    assert h5.font_px(page.locator("body")) == plain_body

    # -- the other public pages: home with a search, progress query and its error -------------------------
    journey.visit(page, service.url + "/m", "home")
    page.get_by_role("searchbox", name="搜索事项").fill("营业执照")
    page.get_by_role("button", name="搜索").click()
    expect(page.get_by_role("link", name=matter["name"])).to_be_visible()
    journey.check(page, "home search")
    journey.visit(page, service.url + "/p", "progress")
    page.get_by_label("办件编号").fill("ZJJ20260101000001")
    page.get_by_label("查询码").fill("ABCDEF")
    page.get_by_role("button", name="查询").click()
    # Refused next to the code (posted, so the page is the form again), the number typed kept.
    code_field = page.get_by_label("查询码")
    expect(code_field).to_have_attribute("aria-invalid", "true")
    expect(code_field).to_have_attribute("aria-describedby", "query_code-err")
    expect(page.locator("#query_code-err")).to_have_text(re.compile("办件编号或查询码不正确"))
    expect(page.get_by_label("办件编号")).to_have_value("ZJJ20260101000001")
    expect(code_field).to_have_value("")  # a query code is never echoed
    journey.check(page, "progress error")

    journey.assert_accessible()


def test_sign_in_comes_back_to_the_page_that_asked(service, phone, journey):
    """A signed-out visit to a page that needs an account goes through the SMS form and lands back there."""
    page = phone().new_page()
    page.goto(service.url + "/m/me/real-name?next=/m/me")
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/me/real-name"))
    _sign_in_by_sms(page, service, h5.new_phone())
    expect(page).to_have_url(re.compile(r"/m/me/real-name\?next=/m/me$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("实名认证")

    # A wrong ID number is shown next to its field (linked for screen readers); the name typed is kept.
    page.get_by_label("姓名").fill("张三")
    page.get_by_label("身份证号").fill("430802199001011230")
    page.get_by_role("button", name="提交认证").click()
    field = page.get_by_label("身份证号")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "id_number-err")
    expect(page.locator("#id_number-err")).to_be_visible()
    expect(page.get_by_label("姓名")).to_have_value("张三")
    journey.check(page, "real-name error")

    number = make_id_number(seq=f"{secrets.randbelow(899) + 100:03d}")  # 999 is the dev verifier's mismatch
    page.get_by_label("身份证号").fill(number)
    page.get_by_role("button", name="提交认证").click()
    expect(page).to_have_url(f"{service.url}/m/me")
    expect(page.locator("dl.kv")).to_contain_text("张*")
    assert number not in page.content()
    journey.assert_accessible()


def test_inside_wechat_sign_in_needs_no_typing(service, phone, journey):
    """In WeChat's browser /m/login goes through the official account's OAuth and comes back signed in."""
    # A first visitor who does not follow the account: the silent grant cannot tell who it is, so the
    # service asks once more with the consent scope (the fake says yes at once).
    service.fake.oauth_openid = f"op-{uuid.uuid4().hex[:20]}"  # nobody the service has seen
    before = len(_scopes(service.fake))
    context = phone(user_agent=h5.WECHAT_UA)
    page = context.new_page()
    page.goto(service.url + "/m/login?next=/m/me")
    expect(page).to_have_url(re.compile(r"/m/me(#.*)?$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("我的")
    kv = page.locator("dl.kv")
    expect(kv).to_contain_text("未绑定")
    expect(kv).to_contain_text("已关联")
    assert _scopes(service.fake)[before:] == ["snsapi_base", "snsapi_userinfo"]
    assert "zd_at" in _cookies(context)
    journey.check(page, "me (wechat)")

    # A follower with a unionid (another person): the silent grant alone signs in, no consent page.
    follower = f"op-{uuid.uuid4().hex[:20]}"
    added = httpx.post(service.fake.url + "/__fake__/users",
                       json={"openid": follower, "unionid": f"un-{uuid.uuid4().hex[:16]}", "subscribe": 1})  # fmt: skip
    assert added.status_code == 201
    service.fake.oauth_openid = follower
    before = len(_scopes(service.fake))
    other = phone(user_agent=h5.WECHAT_UA).new_page()
    other.goto(service.url + "/m/login?next=/m/me")
    expect(other).to_have_url(re.compile(r"/m/me(#.*)?$"))
    expect(other.locator("dl.kv")).to_contain_text("已关联")
    assert _scopes(service.fake)[before:] == ["snsapi_base"]
    journey.check(other, "me (wechat follower)")
    journey.assert_accessible()


def test_one_identity_from_the_mini_program_to_h5(service, phone, journey):
    """A citizen who signed in in the mini program and bound a phone there is the same account in H5."""
    fake, unionid = service.fake, f"un-{uuid.uuid4().hex[:16]}"
    mini_appid = h5.wechat_env(fake)["WECHAT_MINI_APPID"]
    code = "mini-" + uuid.uuid4().hex  # what wx.login would hand the mini program
    fake.add_code(code, openid=f"om-{uuid.uuid4().hex[:20]}", unionid=unionid, appid=mini_appid)
    signed = httpx.post(service.url + "/api/v1/auth/miniprogram", json={"code": code})
    assert signed.status_code == 200, signed.text
    bearer = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    number, mark = h5.new_phone(), service.sms_mark()
    sent = httpx.post(service.url + "/api/v1/auth/sms/send", json={"phone": number})
    assert sent.status_code == 200, sent.text
    otp = service.sms_code(number, after=mark)
    bound = httpx.post(service.url + "/api/v1/auth/sms/verify", json={"phone": number, "otp": otp}, headers=bearer)
    assert bound.status_code == 200, bound.text

    # The same person opens the official account's page in WeChat: a follower, so WeChat gives the unionid.
    mp_openid = f"op-{uuid.uuid4().hex[:20]}"
    added = httpx.post(fake.url + "/__fake__/users", json={"openid": mp_openid, "unionid": unionid, "subscribe": 1})
    assert added.status_code == 201
    fake.oauth_openid = mp_openid
    page = phone(user_agent=h5.WECHAT_UA).new_page()
    page.goto(service.url + "/m/login?next=/m/me")
    expect(page).to_have_url(re.compile(r"/m/me(#.*)?$"))
    kv = page.locator("dl.kv")
    expect(kv).to_contain_text(h5.masked(number))
    expect(kv).to_contain_text("已关联")
    assert page.get_by_role("textbox").count() == 0  # nothing was typed: no form on the way
    # The same account id behind both sessions, with both WeChat channels on it.
    mini_me = httpx.get(service.url + "/api/v1/me", headers=bearer).json()
    h5_me = page.request.get(service.url + "/api/v1/me").json()  # the browser's session cookie
    assert h5_me["id"] == mini_me["id"] and h5_me["phone"] == h5.masked(number)
    assert {c["channel"] for c in h5_me["channels"]} >= {"miniprogram", "official_account"}, h5_me["channels"]
    journey.check(page, "me (mini program account)")
    journey.assert_accessible()


def test_oauth_callback_opened_in_another_browser_signs_nobody_in(service, phone, journey):
    """Login CSRF: a callback URL started in one browser and opened in another is refused, nothing set."""
    attacker = phone(user_agent=h5.WECHAT_UA)
    service.fake.oauth_openid = f"op-{uuid.uuid4().hex[:20]}"
    spent = service.fake.count("/sns/oauth2/access_token")
    to_wechat: list[str] = []

    def capture(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        assert response.status == 302, response.text()
        to_wechat.append(response.headers["location"])
        stop = '<!doctype html><html lang="zh-CN"><title>已截获</title><main>已截获</main></html>'
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=stop)

    attacker.route(re.compile(r".*/api/v1/auth/wechat/authorize\?.*"), capture)
    attacker.new_page().goto(service.url + "/api/v1/auth/wechat/authorize?next=/m/me")
    assert len(to_wechat) == 1 and to_wechat[0].startswith(service.fake.url + "/connect/oauth2/authorize?")
    # What WeChat would send the attacker's browser back to: the callback with a fresh code and the state.
    agreed = httpx.get(to_wechat[0].split("#")[0], follow_redirects=False)
    assert agreed.status_code == 302
    callback = agreed.headers["location"]
    assert callback.startswith(service.url + "/api/v1/auth/wechat/callback?")

    victim = phone()  # the link sent to someone else, opened in their phone's browser
    page = victim.new_page()
    response = page.goto(callback)
    assert response is not None and response.status == 400
    # The message and its code are on the page (today as the JSON envelope: /api/ paths answer JSON).
    expect(page.locator("body")).to_contain_text("登录链接不是在本浏览器中发起的，请重新登录")
    expect(page.locator("body")).to_contain_text("OAUTH_STATE_FOREIGN")
    assert "zd_at" not in _cookies(victim) and "zd_rt" not in _cookies(victim)
    assert service.fake.count("/sns/oauth2/access_token") == spent  # refused before the code was spent
    journey.check(page, "oauth callback refused")
    page.goto(service.url + "/m/me")
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/me$"))

    # The honest path in the attacker's own browser still works (the interception removed).
    attacker.unroute(re.compile(r".*/api/v1/auth/wechat/authorize\?.*"))
    own = attacker.new_page()
    own.goto(service.url + "/m/login?next=/m/me")
    expect(own).to_have_url(re.compile(r"/m/me(#.*)?$"))
    assert "zd_at" in _cookies(attacker)
    journey.assert_accessible()


def test_sms_sign_in_with_javascript_off(service, phone, journey):
    """Every form posts and redirects: the SMS sign-in and the real-name form work without JavaScript."""
    context = phone(javascript=False)
    page = context.new_page()
    page.goto(service.url + "/m/me")
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/me$"))
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number)
    expect(page).to_have_url(f"{service.url}/m/me")
    expect(page.locator("dl.kv")).to_contain_text(h5.masked(number))
    journey.check(page, "me (no javascript)", axe=False)

    page.get_by_role("link", name="去认证").click()
    page.get_by_label("姓名").fill("李四")
    page.get_by_label("身份证号").fill(make_id_number(seq="456"))
    page.get_by_role("button", name="提交认证").click()
    expect(page).to_have_url(f"{service.url}/m/me")
    expect(page.locator("dl.kv")).to_contain_text("李*")

    page.get_by_role("button", name="长辈模式").click()
    expect(page.locator("html")).to_have_class("elder")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(f"{service.url}/m")
    assert "zd_at" not in _cookies(context)
    journey.check(page, "signed out (no javascript)", axe=False)
    journey.assert_accessible()  # the form tokens and the pages' sizes (axe cannot run here)


# ---------------------------------------------------------------- the journeys of the issue


def _id_number() -> str:
    """A well-formed ID number of its own (999 is the dev real-name verifier's mismatch)."""
    return make_id_number(seq=f"{secrets.randbelow(899) + 100:03d}")


def _slot_start(slot_id: str) -> dt.datetime:
    """When a slot starts: its id ends with the day and the time in Asia/Shanghai (main.commercial.20261207.0930)."""
    day, hhmm = slot_id.split(".")[-2:]
    return dt.datetime.strptime(day + hhmm, "%Y%m%d%H%M").replace(tzinfo=SHANGHAI)


def _choose_day_and_time(page: Any, journey: h5.Journey, *, axe: bool = True) -> str:
    """On the booking page: the first day with seats, then its first time; the chosen slot's id."""
    expect(page.get_by_role("heading", level=1)).to_have_text("预约办理")
    journey.check(page, "book: days", axe=axe)
    page.get_by_role("region", name="选择日期").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/book\?day=\d{4}-\d{2}-\d{2}$"))
    first = page.locator("ul.times a.time").first
    expect(first).to_be_visible()
    journey.check(page, "book: times", axe=axe)
    slot = re.search(r"[?&]slot=([^&]+)", first.get_attribute("href") or "")
    assert slot, first.get_attribute("href")
    first.click()
    return slot.group(1)


def _confirm(page: Any, slot: str, journey: h5.Journey, *, axe: bool = True) -> str:
    """On the confirm page with the chosen time checked: book it; the booking's id (from the ticket's address)."""
    expect(page.get_by_role("heading", level=1)).to_have_text("确认预约")
    expect(page.locator(f"input[name=slot][value='{slot}']")).to_be_checked()
    journey.check(page, "book: confirm", axe=axe)
    if _slot_start(slot) - dt.datetime.now(dt.UTC) > dt.timedelta(minutes=EARLY_MINUTES - 5):
        pytest.skip(f"the first open time is {slot}: too far ahead to check in on the real clock (holiday?)")
    page.get_by_role("button", name="确认预约").click()
    expect(page).to_have_url(re.compile(r"/m/me/bookings/[0-9a-f-]+\?done=booked$"))
    expect(page.get_by_role("status")).to_contain_text("预约成功")
    return page.url.rsplit("/", 1)[-1].split("?")[0]


def _download(page: Any, link: Any) -> tuple[str, bytes]:
    """Follow a download link; the file's suggested name and its bytes."""
    with page.expect_download() as info:
        link.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _rate(page: Any, journey: h5.Journey, *, level: str, tag: str, comment: str, kind: str, step: str) -> None:
    """On the rating form of a `kind` (its heading's word): the five levels are offered; choose one and a tag,
    write a line, submit; the rating's page shows them."""
    expect(page.get_by_role("heading", level=1)).to_have_text(f"评价{kind}")
    expect(page.locator("input[type=radio][name=level]")).to_have_count(len(LEVELS))
    for name in LEVELS:
        expect(page.get_by_role("radio", name=name, exact=True)).to_be_visible()
    journey.check(page, f"rate {step}")
    page.get_by_role("radio", name=level, exact=True).check()
    page.get_by_role("checkbox", name=tag, exact=True).check()
    page.get_by_label("意见建议").fill(comment)
    page.get_by_role("button", name="提交评价").click()
    expect(page).to_have_url(re.compile(r"/m/me/ratings/[0-9a-f-]+\?done=1$"))
    expect(page.locator("#level")).to_have_text(level)
    expect(page.locator("#tags")).to_contain_text(tag)
    expect(page.locator("#comment")).to_have_text(comment)
    journey.check(page, f"rating of {step}")


def test_booking_from_the_printed_code_to_the_rated_visit(service, hall, phone, journey):
    """Scan → guide → 预约 → day → time → SMS sign-in → confirm → ticket (QR, .ics, image) → desk check-in →
    评价本次窗口服务 → five levels and a tag → the rating."""
    matter, slug = h5.demo_slug(service.url, name=BOOK_MATTER)
    assert matter["booking"] and matter["hall"]["code"] == hall
    scanned = h5.decode_qr(httpx.get(f"{service.url}/q/{slug}.png").content)
    assert scanned == f"{service.url}/q/{slug}"

    page = phone().new_page()
    journey.visit(page, scanned, "guide (scanned)")
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="预约").click()
    expect(page).to_have_url(f"{service.url}/m/{matter['code']}/book")
    slot = _choose_day_and_time(page, journey)

    # Choosing a time needs an account with a phone: sign in by SMS, and come back to the choice.
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/.+/book/confirm"))
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number, journey)
    expect(page).to_have_url(f"{service.url}/m/{matter['code']}/book/confirm?slot={slot}")
    booking_id = _confirm(page, slot, journey)

    # -- the ticket: its QR code shown, saved as a calendar entry and as an image ---------------------------
    qr = page.get_by_role("img", name=re.compile("预约码二维码"))
    expect(qr).to_be_visible()
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    assert qr.evaluate("i => i.naturalWidth") > 0, "the ticket's QR code did not load"
    expect(page.locator("dl.kv")).to_contain_text(matter["name"])
    journey.check(page, "ticket")

    name, ics = _download(page, page.get_by_role("link", name=re.compile("加入手机日历")))
    assert name.endswith(".ics"), name
    calendar = icalendar.Calendar.from_ical(ics)
    events = calendar.walk("VEVENT")
    assert len(events) == 1, ics
    assert events[0].decoded("dtstart") == _slot_start(slot), (events[0].decoded("dtstart"), slot)
    assert matter["name"] in str(events[0]["summary"])
    assert events[0].decoded("dtend") - events[0].decoded("dtstart") == dt.timedelta(minutes=30)

    name, png = _download(page, page.get_by_role("link", name="保存预约码图片"))
    assert name.endswith(".png"), name
    ticket = h5.decode_qr(png)
    mine = page.request.get(f"{service.url}/api/v1/bookings/{booking_id}")  # the browser's own session
    assert mine.ok, mine.text()
    assert ticket == mine.json()["ticket"]

    # -- at the hall: the clerk scans the ticket (the desk API, with what the scanner read) --------------
    clerk = service.staff("clerk", hall=hall)
    scan = httpx.post(service.url + "/api/v1/desk/checkins", json={"ticket": ticket, "nonce": uuid.uuid4().hex},
                      headers=clerk)  # fmt: skip
    assert scan.status_code == 200, scan.text
    assert scan.json()["result"] == "checked_in", scan.json()
    queue_no = scan.json()["queue_no"]

    # Back in 我的 → 我的预约: the visit is there with its number and the link to rate it, and on its ticket.
    page.get_by_role("banner").get_by_role("link", name="我的", exact=True).click()
    page.get_by_role("link", name="我的预约").click()
    expect(page).to_have_url(f"{service.url}/m/me/bookings")
    item = page.locator("ul.list li").filter(has_text=matter["name"])
    expect(item).to_have_count(1)
    expect(item).to_contain_text(f"排队号 {queue_no}")
    expect(item.get_by_role("link", name="评价本次窗口服务")).to_be_visible()
    journey.check(page, "my bookings")
    item.get_by_role("link", name=matter["name"]).click()
    expect(page).to_have_url(f"{service.url}/m/me/bookings/{booking_id}")
    expect(page.locator("p.queue")).to_have_text(queue_no)
    expect(page.get_by_role("img", name=re.compile("预约码二维码"))).to_have_count(0)  # used: no code to show
    journey.check(page, "ticket checked in")
    page.get_by_role("link", name="评价本次窗口服务").click()
    comment = "窗口工作人员很耐心，一次就办好了。"
    _rate(page, journey, level="非常满意", tag="服务态度好", comment=comment, kind="窗口服务", step="visit")
    expect(page.locator("dl.kv")).to_contain_text("窗口服务")

    # The same link again leads to the rating (one rating per visit).
    page.goto(f"{service.url}/m/me/bookings/{booking_id}")
    page.get_by_role("link", name="评价本次窗口服务").click()
    expect(page).to_have_url(re.compile(r"/m/me/ratings/[0-9a-f-]+\?rated=1$"))
    expect(page.locator("#level")).to_have_text("非常满意")
    journey.assert_accessible()


def _apply_matter(base_url: str) -> dict[str, Any]:
    """The demo matter applied for online with a phone-verified account, asserted as the tests need it."""
    guide = httpx.get(f"{base_url}/api/v1/matters/{APPLY_MATTER}").json()
    assert guide["online_apply"] and guide["apply_loa"] <= 2 and guide["status"] == "active", guide
    kinds = [m["file_types"] for m in guide["materials"]]
    assert kinds[0] == ["pdf"] and "jpg" in kinds[1], kinds  # file-0 takes the PDF, file-1 the photo
    return guide


def _fill_applicant(page: Any, name: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("网上申报")
    page.get_by_label("申请人姓名").fill(name)
    page.get_by_label("申请人身份证号码").fill(_id_number())


def _read_receipt(page: Any) -> tuple[str, str]:
    """On the receipt: the case number and the query code (shown this once)."""
    expect(page).to_have_url(re.compile(r"/m/me/cases/[A-Z0-9]+/receipt$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("申报回执")
    case_no = page.locator("#case-no").inner_text().strip()
    code = page.locator("#query-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{6,16}", code), code
    assert page.url.endswith(f"/m/me/cases/{case_no}/receipt")
    return case_no, code


def test_applying_online_to_the_decided_case_with_texts_progress_and_rating(service, phone, journey):
    """SMS sign-in → 申报 → applicant, a real PDF and a real JPEG → receipt (query code once) → a reviewer moves the
    case to completion, each step on the case page and in a text message → progress by number and code in
    another browser, the code never in an address → the case rated."""
    guide = _apply_matter(service.url)
    page = phone().new_page()
    journey.visit(page, f"{service.url}/m/{APPLY_MATTER}", "guide")
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="申报").click()
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/.+/apply$"))
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number)
    expect(page).to_have_url(f"{service.url}/m/{APPLY_MATTER}/apply")
    _fill_applicant(page, "王五")
    journey.check(page, "apply form")

    # Files go up as soon as they are chosen (apply.js), each shown with its name once stored.
    pdf, jpeg = h5.one_page_pdf(), h5.small_jpeg()
    page.locator("#file-0-pick").set_input_files(files=[{"name": "登记申请书.pdf", "mimeType": "application/pdf",
                                                         "buffer": pdf}])  # fmt: skip
    expect(page.locator("#mat-file-0 ul.files")).to_contain_text("登记申请书.pdf")
    expect(page.locator("#file-0-status")).to_contain_text("已上传「登记申请书.pdf」")
    page.locator("#file-1-pick").set_input_files(files=[{"name": "身份证.jpg", "mimeType": "image/jpeg",
                                                         "buffer": jpeg}])  # fmt: skip
    expect(page.locator("#mat-file-1 ul.files")).to_contain_text("身份证.jpg")
    journey.check(page, "apply form with files")
    page.get_by_role("button", name="提交申请").click()
    case_no, code = _read_receipt(page)
    expect(page.locator("#status")).to_have_text("已提交，待受理")
    # The receipt's QR code (drawn into the page) opens the progress; the query code is not in it.
    receipt_qr = h5.decode_qr(page.get_by_role("img", name=re.compile("回执二维码")).screenshot())
    assert receipt_qr.startswith(f"{service.url}/p/") and code not in receipt_qr, receipt_qr
    journey.check(page, "receipt")
    page.reload()
    expect(page.locator("#query-code")).to_have_count(0)
    expect(page.locator("body")).to_contain_text("查询码只在提交成功时显示一次")
    assert code not in page.content()
    journey.check(page, "receipt reloaded")

    page.get_by_role("link", name="查看办件详情").click()
    expect(page).to_have_url(f"{service.url}/m/me/cases/{case_no}")
    submitted = page.locator("ul.list").first
    expect(submitted).to_contain_text("登记申请书.pdf")
    expect(submitted).to_contain_text("身份证.jpg")
    expect(page.locator("#timeline")).to_contain_text("提交申请")
    journey.check(page, "case submitted")

    # -- the department's reviewer moves the case; the citizen's page follows each step --------------------
    reviewer = service.staff("reviewer", department=guide["department"]["code"])
    for action, label, status, _ in CASE_STEPS:
        moved = httpx.post(f"{service.url}/api/v1/staff/cases/{case_no}/actions", json={"action": action},
                           headers=reviewer)  # fmt: skip
        assert moved.status_code == 200, (action, moved.text)
        page.reload()
        expect(page.locator("#status")).to_have_text(status)
        expect(page.locator("#timeline li").first).to_contain_text(label)  # newest first
        journey.check(page, f"case {action}")
    timeline = page.locator("#timeline li b")
    expect(timeline).to_have_text(TIMELINE)

    # A citizen WeChat cannot reach is told each step by text, with the link to the case (never the code).
    for action, _, _, words in CASE_STEPS:
        text = service.wait_for_text(number, case_no, words)
        assert text.endswith(f"{service.url}/m/me/cases/{case_no}"), (action, text)
        assert code not in text, (action, text)
    print(f"[sms] {number}: " + " | ".join(service.texts(number)), flush=True)

    # -- progress without signing in, in another browser: typed, posted, never in an address -------------
    addresses: list[str] = []
    other = phone().new_page()
    other.on("request", lambda r: addresses.append(r.url))
    journey.visit(other, f"{service.url}/p", "progress form")
    other.get_by_label("办件编号").fill(case_no)
    other.get_by_label("查询码").fill(code)
    other.get_by_role("button", name="查询").click()
    expect(other.get_by_role("heading", level=1)).to_have_text(guide["name"])
    expect(other.locator("#status")).to_have_text("已办结")
    expect(other.locator("#timeline li b")).to_have_text(TIMELINE)
    journey.check(other, "progress")
    assert code not in other.url
    # The receipt's QR code, scanned, shows the same timeline without typing anything.
    journey.visit(other, receipt_qr, "progress (receipt code)")
    expect(other.locator("#timeline li b")).to_have_text(TIMELINE)
    assert addresses and all(code not in url for url in addresses), addresses
    assert "zd_at" not in _cookies(other.context)

    # -- the case rated from its page -------------------------------------------------------------------
    page.get_by_role("link", name=f"评价办件 {case_no}").click()
    comment = "不用跑腿，手机上就办好了。"
    _rate(page, journey, level="满意", tag="网上办理方便", comment=comment, kind="办件", step="case")
    expect(page.locator("dl.kv")).to_contain_text(case_no)
    journey.assert_accessible()


def test_a_question_on_a_matter_page_answered_by_the_department(service, phone, journey):
    """咨询 → sign in → ask → the reviewer answers through the staff API → the answer on the question's page."""
    matter, _ = h5.demo_slug(service.url, name=BOOK_MATTER)
    page = phone().new_page()
    journey.visit(page, f"{service.url}/m/{matter['code']}", "guide")
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="咨询").click()
    expect(page).to_have_url(f"{service.url}/m/{matter['code']}/consult")
    expect(page.get_by_role("heading", level=1)).to_have_text("咨询")
    journey.check(page, "consult (signed out)")
    question = f"个人独资企业可以用住宅作为经营场所吗？（{uuid.uuid4().hex[:6]}）"
    page.get_by_role("link", name="登录后提问").click()
    expect(page).to_have_url(re.compile(r"/m/login\?next=/m/.+/consult$"))
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number)
    expect(page).to_have_url(f"{service.url}/m/{matter['code']}/consult")
    page.get_by_label("您的问题").fill(question)
    journey.check(page, "consult")
    page.get_by_role("button", name="提交咨询").click()
    expect(page).to_have_url(re.compile(r"/m/me/questions/[0-9a-f-]+$"))
    question_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#question")).to_have_text(question)
    expect(page.locator("#status")).to_contain_text("待答复")
    journey.check(page, "question pending")

    reviewer = service.staff("reviewer", department=matter["department"]["code"])
    answer = "可以。住宅作为经营场所的，需提交住所（经营场所）信息申报承诺书。"
    answered = httpx.post(f"{service.url}/api/v1/staff/questions/{question_id}/answer", json={"answer": answer},
                          headers=reviewer)  # fmt: skip
    assert answered.status_code == 200, answered.text

    page.reload()
    expect(page.locator("#status")).to_contain_text("已答复")
    expect(page.locator("#answer")).to_have_text(answer)
    expect(page.get_by_role("link", name="评价本次答复")).to_be_visible()
    journey.check(page, "question answered")
    page.get_by_role("link", name="← 返回我的咨询").click()
    expect(page.get_by_role("link", name=re.compile(re.escape(question[:10])))).to_be_visible()
    journey.check(page, "my questions")
    text = service.wait_for_text(number, "咨询已答复")
    assert answer not in text, text  # the answer is read behind the sign-in
    journey.assert_accessible()


def test_booking_inside_wechat_after_the_mini_program_needs_no_typing(service, hall, phone, journey):
    """A mini-program user with a bound phone opens the matter in WeChat and books: no code, nothing typed."""
    fake, unionid = service.fake, f"un-{uuid.uuid4().hex[:16]}"
    mini_appid = h5.wechat_env(fake)["WECHAT_MINI_APPID"]
    code = "mini-" + uuid.uuid4().hex
    fake.add_code(code, openid=f"om-{uuid.uuid4().hex[:20]}", unionid=unionid, appid=mini_appid)
    signed = httpx.post(service.url + "/api/v1/auth/miniprogram", json={"code": code})
    assert signed.status_code == 200, signed.text
    bearer = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    number, mark = h5.new_phone(), service.sms_mark()
    assert httpx.post(service.url + "/api/v1/auth/sms/send", json={"phone": number}).status_code == 200
    otp = service.sms_code(number, after=mark)
    bound = httpx.post(service.url + "/api/v1/auth/sms/verify", json={"phone": number, "otp": otp}, headers=bearer)
    assert bound.status_code == 200, bound.text
    mp_openid = f"op-{uuid.uuid4().hex[:20]}"
    added = httpx.post(fake.url + "/__fake__/users", json={"openid": mp_openid, "unionid": unionid, "subscribe": 1})
    assert added.status_code == 201
    fake.oauth_openid = mp_openid
    texts_before = len(service.texts(number))

    matter, _ = h5.demo_slug(service.url, name=BOOK_MATTER)
    context = phone(user_agent=h5.WECHAT_UA)
    page = context.new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    journey.visit(page, f"{service.url}/m/{matter['code']}", "guide (wechat)")
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="预约").click()
    slot = _choose_day_and_time(page, journey)
    # WeChat signs the citizen in on the way (the silent grant: a follower, known by the unionid); WeChat
    # keeps its #wechat_redirect on the address it sends back to.
    expect(page).to_have_url(
        re.compile(re.escape(f"{service.url}/m/{matter['code']}/book/confirm?slot={slot}") + "(#.*)?$")
    )
    booking_id = _confirm(page, slot, journey)
    expect(page.get_by_role("img", name=re.compile("预约码二维码"))).to_be_visible()
    journey.check(page, "ticket (wechat)")

    assert posts == [f"{service.url}/m/{matter['code']}/book"], posts  # the one tap on 确认预约
    assert service.texts(number)[texts_before:] == []  # no sign-in code was sent
    assert _scopes(fake)[-1:] == ["snsapi_base"]
    # The same account: the mini program (its token since the phone was bound) sees the booking.
    mini = {"Authorization": f"Bearer {bound.json()['access_token']}"}
    mine = httpx.get(f"{service.url}/api/v1/bookings/{booking_id}", headers=mini)
    assert mine.status_code == 200 and mine.json()["slot_id"] == slot, mine.text
    journey.assert_accessible()


def test_booking_and_applying_with_javascript_off(service, hall, phone, journey):
    """Links and posted forms only: SMS sign-in, a booking to its ticket, an application with two files posted
    through the multipart form (one saved first, one with the submit) to its receipt."""
    context = phone(javascript=False)
    page = context.new_page()
    matter, _ = h5.demo_slug(service.url, name=BOOK_MATTER)
    page.goto(f"{service.url}/m/{matter['code']}")
    journey.check(page, "guide (no javascript)", axe=False)
    page.get_by_role("navigation", name="办事入口").get_by_role("link", name="预约").click()
    slot = _choose_day_and_time(page, journey, axe=False)
    expect(page).to_have_url(re.compile(r"/m/login\?next="))
    number = h5.new_phone()
    _sign_in_by_sms(page, service, number)
    expect(page).to_have_url(f"{service.url}/m/{matter['code']}/book/confirm?slot={slot}")
    booking_id = _confirm(page, slot, journey, axe=False)
    expect(page.get_by_role("img", name=re.compile("预约码二维码"))).to_be_visible()
    assert page.get_by_role("img", name=re.compile("预约码二维码")).evaluate("i => i.naturalWidth") > 0
    journey.check(page, "ticket (no javascript)", axe=False)
    assert booking_id in page.url

    _apply_matter(service.url)
    page.goto(f"{service.url}/m/{APPLY_MATTER}/apply")
    _fill_applicant(page, "赵六")
    page.locator("#file-0-pick").set_input_files(files=[{"name": "申请书.pdf", "mimeType": "application/pdf",
                                                         "buffer": h5.one_page_pdf("No script")}])  # fmt: skip
    page.get_by_role("button", name="上传所选文件并保存").click()
    expect(page).to_have_url(f"{service.url}/m/{APPLY_MATTER}/apply?saved=1")
    expect(page.locator("#mat-file-0 ul.files")).to_contain_text("申请书.pdf")
    expect(page.get_by_label("申请人姓名")).to_have_value("赵六")  # what was typed is kept with the files
    journey.check(page, "apply saved (no javascript)", axe=False)
    page.locator("#file-1-camera").set_input_files(files=[{"name": "photo.jpg", "mimeType": "image/jpeg",
                                                           "buffer": h5.small_jpeg()}])  # fmt: skip
    page.get_by_role("button", name="提交申请").click()
    case_no, _ = _read_receipt(page)
    journey.check(page, "receipt (no javascript)", axe=False)
    page.goto(f"{service.url}/m/me/cases/{case_no}")
    submitted = page.locator("ul.list").first
    expect(submitted).to_contain_text("申请书.pdf")
    expect(submitted).to_contain_text("photo.jpg")
    journey.check(page, "case (no javascript)", axe=False)
    journey.assert_accessible()
