"""The citizen's H5 journey in real headless Chromium at phone size (390×844), with axe-core on every page.

A real `python -m app run` process with the demo catalogue, the dev SMS sender (its codes are read from
the server log, as a developer reads them) and the fake WeChat API on a thread of this process (the
server reaches it by URL). Each step is its own test; the pages of later steps (booking, applying,
consulting, rating) join by visiting them through `journey.visit` / `journey.check`, which runs axe-core,
prints a one-line summary and saves a screenshot (tmp_path/h5, copied to $H5_SCREENSHOTS when set).

Pass or fail never depends on the fonts installed: font sizes are read from computed styles, and
screenshots are only written, not compared.

Sync Playwright in plain (non-async) tests, as tests/e2e/test_desk_page.py explains.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth.idcard import make_id_number
from tests.e2e import h5
from tests.fakes.wechat import FakeWeChat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python not installed")
pytest.importorskip("zxingcpp", reason="zxing-cpp not installed")
expect = sync_api.expect


@pytest.fixture
def fake_wechat() -> Iterator[FakeWeChat]:
    """The fake WeChat API (official account and mini program of the dev settings) on a thread."""
    with FakeWeChat() as fake:
        yield fake


@pytest.fixture
def service(start_server, fake_wechat: FakeWeChat) -> h5.Service:
    """`python -m app run` as `make run` runs it: demo catalogue, dev SMS and real-name, WeChat = the fake."""
    server = start_server(
        APP_ENV="development", LOAD_DEMO="true", SMS_SENDER="console", REALNAME_VERIFIER="dev",
        **h5.wechat_env(fake_wechat),
    )  # fmt: skip
    return h5.Service(server, fake_wechat)


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
def phone(browser) -> Iterator[Callable[..., Any]]:
    """New phone-sized browser contexts (390×844, touch, zh-CN); page errors fail the test; all closed after."""
    contexts: list[Any] = []
    errors: list[str] = []

    def new(*, user_agent: str = h5.MOBILE_UA, javascript: bool = True) -> Any:
        context = browser.new_context(
            viewport=h5.PHONE, screen=h5.PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
            locale="zh-CN", timezone_id="Asia/Shanghai", user_agent=user_agent, java_script_enabled=javascript,
        )  # fmt: skip
        context.set_default_timeout(15_000)
        context.on("weberror", lambda e: errors.append(str(e.error)))
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
    expect(page.get_by_role("alert")).to_be_visible()
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
    context = phone(user_agent=h5.WECHAT_UA)
    page = context.new_page()
    page.goto(service.url + "/m/login?next=/m/me")
    expect(page).to_have_url(re.compile(r"/m/me(#.*)?$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("我的")
    kv = page.locator("dl.kv")
    expect(kv).to_contain_text("未绑定")
    expect(kv).to_contain_text("已关联")
    assert _scopes(service.fake) == ["snsapi_base", "snsapi_userinfo"]
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
    assert service.fake.count("/sns/oauth2/access_token") == 0  # refused before the code was spent
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
