"""Citizen sign-in in the browser: SMS code, WeChat OAuth by user agent, CSRF on forms, sign-out, real name."""

from __future__ import annotations

import re

import pytest

from app.matters import service
from auth.idcard import make_id_number
from tests import factories
from tests.api.test_pages import LICENCE


@pytest.fixture
async def catalogue(client):
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


WECHAT_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.50"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def _otp(app) -> str:
    return re.search(r"(\d{6})", app.ctx.auth.sms.outbox[-1][1]).group(1)


async def _sign_in(client, app, phone="13900002222", next_path="/m/me"):
    _, form = await client.get("/m/login", params={"next": next_path})
    assert form.status == 200 and "获取验证码" in form.text
    csrf = _csrf(form.text)
    _, sent = await client.post("/m/login/code", data={"csrf": csrf, "phone": phone, "next": next_path})
    assert sent.status == 200 and "验证码已发送至 139****" in sent.text
    _, done = await client.post(
        "/m/login", data={"csrf": csrf, "phone": phone, "otp": _otp(app), "next": next_path}, follow_redirects=False
    )
    return done


async def test_sms_sign_in_lands_on_the_page_it_came_from(client, app):
    done = await _sign_in(client, app, next_path="/m/me")
    assert done.status == 303 and done.headers["location"] == "/m/me"
    cookies = " ".join(done.headers.get_list("set-cookie"))
    assert "zd_at=" in cookies and "HttpOnly" in cookies and "SameSite=Lax" in cookies
    _, me = await client.get("/m/me")
    assert me.status == 200 and "139****2222" in me.text and "退出登录" in me.text


async def test_wrong_code_is_shown_next_to_the_field_and_keeps_the_phone(client, app):
    _, form = await client.get("/m/login")
    csrf = _csrf(form.text)
    await client.post("/m/login/code", data={"csrf": csrf, "phone": "13900003333"})
    _, bad = await client.post("/m/login", data={"csrf": csrf, "phone": "13900003333", "otp": "000000"})
    assert bad.status == 401
    assert 'id="otp-err"' in bad.text and "验证码错误或已过期" in bad.text and 'value="13900003333"' in bad.text
    _, phone = await client.post("/m/login/code", data={"csrf": csrf, "phone": "123"})
    assert phone.status == 422 and 'id="phone-err"' in phone.text and "请输入 11 位中国大陆手机号" in phone.text


async def test_forms_without_the_token_or_from_another_site_are_refused(client, app):
    await client.get("/m/login")
    _, no_token = await client.post("/m/login/code", data={"phone": "13900004444"})
    assert no_token.status == 403 and "FORM_EXPIRED" in no_token.text
    _, form = await client.get("/m/login")
    _, foreign = await client.post(
        "/m/login/code", data={"csrf": _csrf(form.text), "phone": "13900004444"},
        headers={"Origin": "https://evil.example.com"},
    )  # fmt: skip
    assert foreign.status == 403 and "CSRF_REJECTED" in foreign.text
    assert app.ctx.auth.sms.outbox == []


async def test_pages_that_need_sign_in_send_there_and_back(client):
    _, me = await client.get("/m/me", follow_redirects=False)
    assert me.status == 303 and me.headers["location"] == "/m/login?next=/m/me"


async def test_inside_wechat_sign_in_goes_to_oauth_without_a_form(client):
    _, go = await client.get("/m/login", params={"next": "/m/me"}, headers={"User-Agent": WECHAT_UA},
                             follow_redirects=False)  # fmt: skip
    assert go.status == 302 and go.headers["location"].startswith("/api/v1/auth/wechat/authorize?next=/m/me")


async def test_sign_out_ends_the_session(client, app):
    await _sign_in(client, app)
    _, me = await client.get("/m/me")
    _, out = await client.post("/m/logout", data={"csrf": _csrf(me.text)}, follow_redirects=False)
    assert out.status == 303
    _, again = await client.get("/m/me", follow_redirects=False)
    assert again.status == 303 and again.headers["location"].startswith("/m/login")


async def test_expired_access_cookie_is_renewed_from_the_refresh_cookie(client, app, fake_clock):
    await _sign_in(client, app)
    fake_clock.advance(minutes=20)  # past the 15-minute access token
    _, me = await client.get("/m/me")
    assert me.status == 200 and "139****2222" in me.text
    assert "zd_at=" in " ".join(me.headers.get_list("set-cookie"))


async def test_real_name_form_masks_afterwards_and_errors_sit_by_their_field(client, app):
    await _sign_in(client, app)
    _, form = await client.get("/m/me/real-name")
    csrf = _csrf(form.text)
    _, bad = await client.post(
        "/m/me/real-name", data={"csrf": csrf, "name": "张三", "id_number": "430802199001011230"}
    )
    assert bad.status == 422 and 'id="id_number-err"' in bad.text and "430802199001011230" not in bad.text
    number = make_id_number()
    right = {"csrf": csrf, "name": "张三", "id_number": number, "next": "/m/me"}
    _, ok = await client.post("/m/me/real-name", data=right, follow_redirects=False)
    assert ok.status == 303 and ok.headers["location"] == "/m/me"
    _, me = await client.get("/m/me")
    assert "张*" in me.text and number not in me.text and number[:3] + "*" * 11 + number[-4:] in me.text


@pytest.mark.parametrize("path", ["/m", "/m/login"])
async def test_elder_mode_is_one_tap_and_remembered(client, path):
    _, before = await client.get(path)
    assert 'class="elder"' not in before.text
    assert 'action="/m/elder"' in before.text
    _, toggled = await client.post("/m/elder", data={"next": path}, follow_redirects=False)
    assert toggled.status == 303 and toggled.headers["location"] == path
    _, after = await client.get(path)
    assert 'class="elder"' in after.text and "标准模式" in after.text
    _, foreign = await client.post("/m/elder", data={"next": path}, headers={"Origin": "https://evil.example.com"})
    assert foreign.status == 403


async def test_guide_page_in_elder_mode_is_its_own_cached_rendition(client, catalogue):

    _, plain = await client.get(f"/m/{LICENCE}")
    await client.post("/m/elder", data={"next": f"/m/{LICENCE}"})
    _, elder = await client.get(f"/m/{LICENCE}")
    assert 'class="elder"' not in plain.text and 'class="elder"' in elder.text
    assert plain.headers["etag"] != elder.headers["etag"] and "Cookie" in elder.headers["vary"]


async def test_every_form_on_the_sign_in_pages_carries_the_same_non_empty_token(client, app):
    _, form = await client.get("/m/login")
    tokens = re.findall(r'name="csrf" value="([^"]*)"', form.text)
    assert len(tokens) >= 2 and len(set(tokens)) == 1 and tokens[0]
    await client.post("/m/login/code", data={"csrf": tokens[0], "phone": "13900006666"})
    _, sent = await client.post("/m/login/code", data={"csrf": tokens[0], "phone": "13900006666"})
    assert sent.status == 429 and 'id="phone-err"' in sent.text  # one code a minute, said by the field


async def test_static_scripts_are_ours_and_cached(client):
    _, js = await client.get("/static/h5.js")
    assert js.status == 200 and js.headers["content-type"].startswith("text/javascript") and js.headers["etag"]
    _, again = await client.get("/static/h5.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status == 304
    for bad in ("/static/nope.js", "/static/..%2Fkit.py", "/static/.hidden.js"):
        _, missing = await client.get(bad)
        assert missing.status == 404, bad
