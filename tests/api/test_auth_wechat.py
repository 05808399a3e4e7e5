"""WeChat logins against the fake WeChat API: mini program, official-account OAuth, linking and merging."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs, urlsplit

import pytest

from auth.accounts import PROFILES
from auth.models import Channel, ChannelBinding, Citizen
from tests.api.wechat_messages import event_xml, signed


@pytest.fixture
def settings(wechat_settings):
    return wechat_settings


async def test_miniprogram_login_creates_then_finds_the_citizen(client, fake_wechat, settings):
    fake_wechat.add_code("code-1", openid="o-mini-1", appid=settings.wechat_mini_appid)
    _, first = await client.post("/api/v1/auth/miniprogram", json={"code": "code-1"})
    assert first.status == 200, first.text
    assert first.json["audience"] == "miniprogram"
    fake_wechat.add_code("code-2", openid="o-mini-1", appid=settings.wechat_mini_appid)
    _, second = await client.post("/api/v1/auth/miniprogram", json={"code": "code-2"})
    assert second.status == 200
    assert await Citizen.all().count() == 1
    _, me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {second.json['access_token']}"})
    assert me.json["loa"] == 1 and me.json["channels"][0]["channel"] == "miniprogram"


async def test_miniprogram_bad_or_reused_code_is_401(client, fake_wechat, settings):
    _, unknown = await client.post("/api/v1/auth/miniprogram", json={"code": "nope"})
    assert unknown.status == 401 and unknown.json["error"]["code"] == "WECHAT_CODE_INVALID"
    fake_wechat.add_code("once", openid="o1", appid=settings.wechat_mini_appid)
    await client.post("/api/v1/auth/miniprogram", json={"code": "once"})
    _, reused = await client.post("/api/v1/auth/miniprogram", json={"code": "once"})
    assert reused.status == 401 and reused.json["error"]["code"] == "WECHAT_CODE_INVALID"


async def test_wechat_down_or_limited_is_503_never_500(client, fake_wechat, settings):
    fake_wechat.add_code("c", openid="o1", appid=settings.wechat_mini_appid)
    fake_wechat.inject("/sns/jscode2session", 45009)
    _, limited = await client.post("/api/v1/auth/miniprogram", json={"code": "c"})
    assert limited.status == 503 and limited.json["error"]["code"] == "WECHAT_RATE_LIMITED"
    assert limited.headers["retry-after"]
    fake_wechat.stop()
    _, down = await client.post("/api/v1/auth/miniprogram", json={"code": "c"})
    assert down.status == 503 and down.json["error"]["code"] == "WECHAT_UNAVAILABLE"


def _browser_cookie(response) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith("zd_b=")).split(";")[0]


async def _oauth(client, fake_wechat, settings, *, openid, unionid=None, next_path="/m/4308-XK-SS-001"):
    """Authorize then call back from the same browser (its zd_b cookie); a consent round if WeChat asks one."""
    _, go = await client.get("/api/v1/auth/wechat/authorize", params={"next": next_path})
    assert go.status == 302
    cookie = _browser_cookie(go)
    assert "HttpOnly" in next(c for c in go.headers.get_list("set-cookie") if c.startswith("zd_b="))
    location = urlsplit(go.headers["location"])
    query = parse_qs(location.query)
    assert location.netloc == urlsplit(fake_wechat.url).netloc
    assert query["appid"] == [settings.wechat_mp_appid]
    assert query["redirect_uri"] == [f"{settings.base_url}/api/v1/auth/wechat/callback"]
    assert query["scope"] == ["snsapi_base"]
    first_state = state = query["state"][0]
    for scope in ("snsapi_base", "snsapi_userinfo"):
        code = f"oauth-{openid}-{scope}"
        # As WeChat: the silent grant carries the unionid only for a follower; the consent grant always.
        fake_wechat.add_code(
            code, openid=openid, unionid=unionid if scope == "snsapi_userinfo" else None,
            appid=settings.wechat_mp_appid, scope=scope,
        )  # fmt: skip
        _, back = await client.get(
            "/api/v1/auth/wechat/callback", params={"code": code, "state": state}, headers={"Cookie": cookie}
        )
        again = back.status == 302 and back.headers["location"].startswith(fake_wechat.url)
        if not again:
            break
        query = parse_qs(urlsplit(back.headers["location"]).query)
        assert query["scope"] == ["snsapi_userinfo"]
        state = query["state"][0]
    return back, first_state


async def test_oauth_signs_in_with_httponly_cookie_and_returns_to_next(client, fake_wechat, settings):
    back, _ = await _oauth(client, fake_wechat, settings, openid="o-mp-1")
    assert back.status == 302, back.text
    assert back.headers["location"] == "/m/4308-XK-SS-001"
    cookies = back.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("zd_at="))
    assert "HttpOnly" in access and "SameSite=Lax" in access
    token = access.split(";")[0].split("=", 1)[1]
    _, me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200 and me.json["channels"][0]["channel"] == "official_account"


@pytest.mark.parametrize(
    "evil",
    [
        "//evil.example.com/x",
        "https://evil.example.com",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "/m/%0d%0aSet-Cookie:x=1",
        "http:/evil.example.com",
    ],
)
async def test_oauth_next_is_never_an_open_redirect(client, fake_wechat, settings, evil):
    back, _ = await _oauth(client, fake_wechat, settings, openid="o-mp-2", next_path=evil)
    assert back.status == 302
    location = back.headers["location"]
    assert location.startswith("/") and not location.startswith("//") and "evil" not in location


async def test_oauth_state_is_single_use_and_tamper_proof(client, fake_wechat, settings):
    back, state = await _oauth(client, fake_wechat, settings, openid="o-mp-3")
    assert back.status == 302
    fake_wechat.add_code("again", openid="o-mp-3", appid=settings.wechat_mp_appid)
    _, replay = await client.get(
        "/api/v1/auth/wechat/callback", params={"code": "again", "state": state}, headers={"Cookie": "zd_b=" + "b" * 32}
    )
    assert replay.status == 400 and replay.json["error"]["code"] == "OAUTH_STATE_INVALID"
    tampered = state[:-1] + ("0" if state[-1] != "0" else "1")
    _, bad = await client.get("/api/v1/auth/wechat/callback", params={"code": "again", "state": tampered})
    assert bad.status == 400 and bad.json["error"]["code"] == "OAUTH_STATE_INVALID"


async def test_oauth_callback_from_another_browser_signs_nobody_in(client, fake_wechat, settings):
    """Login CSRF: an attacker starts a sign-in, then makes the victim's browser open the callback."""
    _, attacker = await client.get("/api/v1/auth/wechat/authorize", params={"next": "/m"})
    state = parse_qs(urlsplit(attacker.headers["location"]).query)["state"][0]
    fake_wechat.add_code("attacker-code", openid="o-attacker", unionid="u-attacker", appid=settings.wechat_mp_appid)
    params = {"code": "attacker-code", "state": state}
    client.cookies.clear()  # the victim's browser: not the attacker's cookie jar
    for cookie in ({}, {"Cookie": "zd_b=" + "v" * 32}):  # no browser cookie, and the victim's own
        _, victim = await client.get("/api/v1/auth/wechat/callback", params=params, headers=cookie)
        assert victim.status == 400, victim.text
        assert victim.json["error"]["code"] in {"OAUTH_STATE_FOREIGN", "OAUTH_STATE_INVALID"}
        assert not [c for c in victim.headers.get_list("set-cookie") if c.startswith(("zd_at=", "zd_rt="))]
    assert await Citizen.all().count() == 0
    # The attacker's code was never exchanged at WeChat, so it cannot be spent through us afterwards either.
    assert not [c for c in fake_wechat.calls if c.path == "/sns/oauth2/access_token"]


async def test_oauth_known_follower_signs_in_silently_new_visitor_is_asked_once(client, fake_wechat, settings):
    fake_wechat.add_code("m", openid="o-mini-7", unionid="u-7", appid=settings.wechat_mini_appid)
    await client.post("/api/v1/auth/miniprogram", json={"code": "m"})
    back, _ = await _oauth(client, fake_wechat, settings, openid="o-mp-7", unionid="u-7")
    assert back.status == 302 and back.headers["location"] == "/m/4308-XK-SS-001"
    assert await Citizen.filter(disabled=False).count() == 1  # the consent round linked the mini-program account
    # Signed in once, the next visit is silent: the binding is known, no consent page.
    _, go = await client.get("/api/v1/auth/wechat/authorize", params={"next": "/m"})
    state = parse_qs(urlsplit(go.headers["location"]).query)["state"][0]
    fake_wechat.add_code("silent", openid="o-mp-7", appid=settings.wechat_mp_appid)
    assert "zd_b=" not in " ".join(go.headers.get_list("set-cookie"))  # the browser keeps its id
    _, silent = await client.get("/api/v1/auth/wechat/callback", params={"code": "silent", "state": state})
    assert silent.status == 302 and silent.headers["location"] == "/m"


async def test_oauth_state_expires(client, fake_wechat, settings, fake_clock):
    _, go = await client.get("/api/v1/auth/wechat/authorize")
    state = parse_qs(urlsplit(go.headers["location"]).query)["state"][0]
    fake_clock.advance(minutes=11)
    fake_wechat.add_code("late", openid="o-late", appid=settings.wechat_mp_appid)
    _, late = await client.get("/api/v1/auth/wechat/callback", params={"code": "late", "state": state})
    assert late.status == 400 and late.json["error"]["code"] == "OAUTH_STATE_INVALID"


async def test_same_unionid_is_one_citizen_across_channels(client, fake_wechat, settings):
    fake_wechat.add_code("m", openid="o-mini", unionid="u-1", appid=settings.wechat_mini_appid)
    _, mini = await client.post("/api/v1/auth/miniprogram", json={"code": "m"})
    back, _ = await _oauth(client, fake_wechat, settings, openid="o-mp", unionid="u-1")
    assert mini.status == 200 and back.status == 302
    assert await Citizen.all().count() == 1
    assert await ChannelBinding.all().count() == 2


async def test_unionid_arriving_later_merges_two_citizens(client, fake_wechat, settings):
    # Without unionid the two channels first make two citizens ...
    fake_wechat.add_code("m1", openid="o-mini", appid=settings.wechat_mini_appid)
    await client.post("/api/v1/auth/miniprogram", json={"code": "m1"})
    await _oauth(client, fake_wechat, settings, openid="o-mp", unionid="u-9")
    assert await Citizen.filter(disabled=False).count() == 2
    # ... then the mini program reports the same unionid: one citizen remains, with both bindings.
    fake_wechat.add_code("m2", openid="o-mini", unionid="u-9", appid=settings.wechat_mini_appid)
    _, again = await client.post("/api/v1/auth/miniprogram", json={"code": "m2"})
    assert again.status == 200
    alive = await Citizen.filter(disabled=False)
    assert len(alive) == 1 and alive[0].unionid == "u-9"
    assert await ChannelBinding.filter(citizen_id=alive[0].id).count() == 2


async def test_verifying_a_phone_while_signed_in_merges_with_its_owner(client, app, fake_wechat, settings):
    import re

    # An app user owns the phone (LoA 2) ...
    await client.post("/api/v1/auth/sms/send", json={"phone": "13900001111"})
    otp = re.search(r"(\d{6})", app.ctx.auth.sms.outbox[-1][1]).group(1)
    _, login = await client.post("/api/v1/auth/sms/verify", json={"phone": "13900001111", "otp": otp})
    assert login.status == 200
    owner_id = (await Citizen.get(disabled=False)).id
    # ... a WeChat-only citizen (LoA 1) verifies the same phone: merged into the owner.
    fake_wechat.add_code("m", openid="o-mini", appid=settings.wechat_mini_appid)
    _, mini = await client.post("/api/v1/auth/miniprogram", json={"code": "m"})
    headers = {"Authorization": f"Bearer {mini.json['access_token']}"}
    await app.ctx.store.delete("rl:otp-send-phone-1m:" + app.ctx.auth.cipher.blind_index("13900001111", kind="phone"))
    await client.post("/api/v1/auth/sms/send", json={"phone": "13900001111"})
    otp = re.search(r"(\d{6})", app.ctx.auth.sms.outbox[-1][1]).group(1)
    _, linked = await client.post("/api/v1/auth/sms/verify", json={"phone": "13900001111", "otp": otp}, headers=headers)
    assert linked.status == 200, linked.text
    alive = await Citizen.filter(disabled=False)
    assert [c.id for c in alive] == [owner_id]
    assert await ChannelBinding.filter(citizen_id=owner_id).count() == 1
    # The merged-away citizen's old token no longer works; the new one is the owner's.
    _, old = await client.get("/api/v1/me", headers=headers)
    assert old.status == 401
    _, me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {linked.json['access_token']}"})
    assert me.json["id"] == str(owner_id) and me.json["phone"] == "139****1111"


# ---------------------------------------------------------------- subscribing and the profile

_event_times = itertools.count(1_795_000_000)  # distinct CreateTime per event: none is taken for a retry


async def _event(client, settings, openid: str, event: str) -> None:
    query, body = signed(settings, event_xml(openid, event, at=next(_event_times)), mode="aes")
    _, r = await client.post("/wechat/callback", params=query, content=body)
    assert r.status_code == 200, r.text


async def _subscribed(client, headers) -> list[bool]:
    _, me = await client.get("/api/v1/me", headers=headers)
    assert me.status == 200, me.text
    return [c["subscribed"] for c in me.json["channels"] if c["channel"] == "official_account"]


async def test_me_tells_an_unsubscribe_from_the_wechat_callback_at_once(client, app, settings, make_citizen):
    citizen, headers = await make_citizen()
    await ChannelBinding.create(
        citizen=citizen, channel=Channel.official_account, appid=settings.wechat_mp_appid, openid="o-follower"
    )
    assert await _subscribed(client, headers) == [True]
    assert app.ctx.cache.get(PROFILES, str(citizen.id)) is not None  # the next answer comes from the cache
    await _event(client, settings, "o-follower", "unsubscribe")
    assert await _subscribed(client, headers) == [False]  # no cache tick, no wait
    await _event(client, settings, "o-follower", "subscribe")
    assert await _subscribed(client, headers) == [True]


async def test_a_refused_callback_is_an_explained_page_for_a_browser(client):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Cookie": "zd_b=" + "c" * 32}
    _, page = await client.get("/api/v1/auth/wechat/callback", params={"code": "x", "state": "bad"}, headers=browser)
    assert page.status == 400 and page.headers["content-type"].startswith("text/html")
    assert "授权请求已失效" in page.text and "OAUTH_STATE_INVALID" in page.text
    assert 'name="viewport"' in page.text  # laid out for the phone, not as 980 px of JSON
