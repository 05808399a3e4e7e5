"""WeChatClient against the fake WeChat API: wire format, the shared access token, retries and error mapping."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis
import zxingcpp
from PIL import Image
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.settings import Settings
from app.store import Store
from app.wechat import client as client_module
from app.wechat.client import OAuthToken, SceneQr, Session, WeChatClient
from app.wechat.errors import (
    WeChatCodeInvalid,
    WeChatError,
    WeChatQuotaExhausted,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
)
from tests.fakes.wechat import FakeWeChat

STABLE = "/cgi-bin/stable_token"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
QRCODE = "/cgi-bin/qrcode/create"
WXACODE = "/wxa/getwxacodeunlimit"
MENU = "/cgi-bin/menu/create"


def calls_of(fake: FakeWeChat, path: str) -> list:
    """The recorded calls of one path."""
    return [c for c in fake.calls if c.path == path]


def used_tokens(fake: FakeWeChat) -> set[str]:
    """Every access token a client sent to the fake."""
    return {c.query["access_token"] for c in fake.calls if "access_token" in c.query}


async def send_one(wechat: WeChatClient, **extra: object) -> int:
    """A template message with Chinese text."""
    return await wechat.send_template(
        openid="o-citizen-1", template_id="TPL-CASE", data={"thing1": "营业执照设立登记"}, **extra
    )


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """No credential in the exception's message, details or headers."""
    text = f"{exc} {exc!r} {getattr(exc, 'message', '')} {getattr(exc, 'details', '')} {getattr(exc, 'headers', '')}"
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------- access token


async def test_access_token_fetched_with_stable_token_and_cached(
    wechat: WeChatClient, fake: FakeWeChat, store: Store, settings: Settings
):
    token = await wechat.access_token(appid=settings.wechat_mp_appid)

    [call] = fake.calls
    assert call.method == "POST" and call.path == STABLE and call.query == {}
    assert call.json == {
        "grant_type": "client_credential",
        "appid": settings.wechat_mp_appid,
        "secret": settings.wechat_mp_secret,
        "force_refresh": False,
    }
    key = f"wechat:token:{settings.wechat_mp_appid}"
    assert await store.get(key) == token.encode()
    assert 7200 - 300 - 10 <= await store.ttl(key) <= 7200 - 300
    assert not await store.exists(f"wechat:token-lock:{settings.wechat_mp_appid}")  # released

    assert await wechat.access_token(appid=settings.wechat_mp_appid) == token
    assert fake.count(STABLE) == 1


async def test_each_app_has_its_own_token(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    mp = await wechat.access_token(appid=settings.wechat_mp_appid)
    mini = await wechat.access_token(appid=settings.wechat_mini_appid)
    assert mp != mini
    assert fake.token_appid(mp) == settings.wechat_mp_appid
    assert fake.token_appid(mini) == settings.wechat_mini_appid
    assert fake.count(STABLE) == 2


async def test_token_in_store_is_used_without_fetch(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    await store.set("wechat:token:wxdevofficialacct", "token-from-another-worker", ex=600)
    assert await wechat.access_token(appid="wxdevofficialacct") == "token-from-another-worker"
    assert fake.count(STABLE) == 0


async def test_expired_cache_is_refetched(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    await store.set("wechat:token:wxdevofficialacct", "short-lived", px=50)
    await asyncio.sleep(0.1)
    token = await wechat.access_token(appid="wxdevofficialacct")
    assert token != "short-lived"
    assert fake.count(STABLE) == 1


async def test_hundred_concurrent_callers_cause_one_fetch(wechat: WeChatClient, fake: FakeWeChat):
    fake.delay(STABLE, 0.2)  # keep the fetch in flight while the others pile up
    tokens = await asyncio.gather(*(wechat.access_token(appid="wxdevofficialacct") for _ in range(100)))
    assert len(set(tokens)) == 1
    assert fake.count(STABLE) == 1


async def test_concurrent_callers_on_two_workers_cause_one_fetch(
    make_client: Callable[..., WeChatClient], fake: FakeWeChat
):
    # Two clients = two workers: only the store lock stands between them.
    one, two = make_client(), make_client()
    fake.delay(STABLE, 0.2)
    tokens = await asyncio.gather(*(c.access_token(appid="wxdevminiprogram") for _ in range(50) for c in (one, two)))
    assert len(set(tokens)) == 1
    assert fake.count(STABLE) == 1


async def test_waits_for_a_lock_held_by_another_worker(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    await store.set("wechat:token-lock:wxdevofficialacct", "other-worker", px=10_000)

    async def other_worker_finishes() -> None:
        await asyncio.sleep(0.3)
        await store.set("wechat:token:wxdevofficialacct", "fetched-by-other-worker", ex=600)
        await store.delete("wechat:token-lock:wxdevofficialacct")

    finisher = asyncio.create_task(other_worker_finishes())
    assert await wechat.access_token(appid="wxdevofficialacct") == "fetched-by-other-worker"
    await finisher
    assert fake.count(STABLE) == 0


async def test_lock_held_too_long_is_unavailable(
    wechat: WeChatClient, fake: FakeWeChat, store: Store, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(client_module, "LOCK_WAIT", 0.2)
    await store.set("wechat:token-lock:wxdevofficialacct", "stuck-worker", px=10_000)
    with pytest.raises(WeChatUnavailable) as caught:
        await wechat.access_token(appid="wxdevofficialacct")
    assert caught.value.status == 503
    assert fake.count(STABLE) == 0


async def test_lock_expired_during_the_fetch_still_returns_the_token(
    wechat: WeChatClient,
    fake: FakeWeChat,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    # redis-py's Lock releases with a Lua compare-and-delete, which the in-process store runs too (fakeredis[lua]).
    monkeypatch.setattr(client_module, "LOCK_TIMEOUT", 0.1)
    fake.delay(STABLE, 0.3)
    with caplog.at_level(logging.WARNING, logger="app.wechat"):
        token = await wechat.access_token(appid="wxdevofficialacct")
    assert await store.get("wechat:token:wxdevofficialacct") == token.encode()
    assert not await store.exists("wechat:token-lock:wxdevofficialacct")
    assert "expired before the refresh ended" in caplog.text
    assert fake.count(STABLE) == 1


async def test_lock_is_released_for_the_next_refresh(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    first = await wechat.access_token(appid="wxdevofficialacct")
    second = await wechat.refresh_access_token(appid="wxdevofficialacct", rejected=first)
    assert second != first
    assert not await store.exists("wechat:token-lock:wxdevofficialacct")
    assert fake.count(STABLE) == 2


async def test_unknown_appid_is_refused_without_a_call(wechat: WeChatClient, fake: FakeWeChat):
    with pytest.raises(WeChatError) as caught:
        await wechat.access_token(appid="wxsomeoneelse")
    assert caught.value.code == "WECHAT_ERROR"
    assert fake.calls == []


async def test_wrong_secret_is_a_wechat_error_not_retried(make_client: Callable[..., WeChatClient], fake: FakeWeChat):
    wechat = make_client(wechat_mini_secret="not-the-secret")
    with pytest.raises(WeChatError) as caught:
        await wechat.access_token(appid="wxdevminiprogram")
    assert type(caught.value) is WeChatError
    assert caught.value.errcode == 40125
    assert caught.value.status == 502
    assert fake.count(STABLE) == 1
    assert_clean(caught.value, "not-the-secret")


async def test_store_down_still_works_on_this_worker(settings: Settings, fake: FakeWeChat):
    broken = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    wechat = WeChatClient(settings, broken)
    try:
        started = time.monotonic()
        first = await wechat.access_token(appid="wxdevofficialacct")
        assert await wechat.access_token(appid="wxdevofficialacct") == first  # this worker's copy
        assert await send_one(wechat) > 0
        assert fake.count(STABLE) == 1
        assert time.monotonic() - started < 3
    finally:
        await wechat.aclose()
        await broken.aclose()


# ---------------------------------------------------------------------- token rejected: refresh once, retry once


async def test_40001_refreshes_once_and_retries(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    old = await wechat.access_token(appid="wxdevofficialacct")
    fake.inject(TEMPLATE, 40001)

    msgid = await send_one(wechat)

    assert msgid == fake.sent[-1]["msgid"]
    first, second = calls_of(fake, TEMPLATE)
    assert first.query["access_token"] == old
    assert second.query["access_token"] != old
    fetches = calls_of(fake, STABLE)
    assert [c.json["force_refresh"] for c in fetches] == [False, True]
    assert await store.get("wechat:token:wxdevofficialacct") == second.query["access_token"].encode()


async def test_42001_forces_a_refresh_too(wechat: WeChatClient, fake: FakeWeChat):
    fake.inject(QRCODE, 42001)
    await wechat.create_scene_qrcode(scene_str="matter:1")
    assert [c.json["force_refresh"] for c in calls_of(fake, STABLE)] == [False, True]
    assert fake.count(QRCODE) == 2


async def test_40014_refetches_without_forcing(wechat: WeChatClient, fake: FakeWeChat):
    fake.inject(MENU, 40014)
    await wechat.create_menu(
        menu={"button": [{"type": "view", "name": "办事指南", "url": "https://gov.example.cn/m/"}]}
    )
    assert [c.json["force_refresh"] for c in calls_of(fake, STABLE)] == [False, False]
    assert fake.count(MENU) == 2


async def test_40001_twice_is_token_invalid(wechat: WeChatClient, fake: FakeWeChat):
    fake.inject(TEMPLATE, 40001, times=2)
    with pytest.raises(WeChatTokenInvalid) as caught:
        await send_one(wechat)
    assert caught.value.code == "WECHAT_TOKEN_INVALID"
    assert caught.value.errcode == 40001
    assert fake.count(TEMPLATE) == 2
    assert fake.count(STABLE) == 2
    assert_clean(caught.value, *used_tokens(fake))


async def test_expired_tokens_on_many_callers_cause_one_forced_refresh(wechat: WeChatClient, fake: FakeWeChat):
    await wechat.access_token(appid="wxdevofficialacct")
    fake.expire_tokens()  # every caller now gets 42001 with the cached token

    msgids = await asyncio.gather(*(send_one(wechat) for _ in range(10)))

    assert len(set(msgids)) == 10
    assert [c.json["force_refresh"] for c in calls_of(fake, STABLE)] == [False, True]
    assert fake.count(TEMPLATE) == 20


async def test_refresh_replaces_only_the_rejected_token(wechat: WeChatClient, fake: FakeWeChat, store: Store):
    rejected = await wechat.access_token(appid="wxdevofficialacct")
    fresh = await wechat.refresh_access_token(appid="wxdevofficialacct", rejected=rejected)
    assert fresh != rejected
    # A second caller that saw the same rejection finds the fresh token and must not replace it.
    assert await wechat.refresh_access_token(appid="wxdevofficialacct", rejected=rejected) == fresh
    assert await store.get("wechat:token:wxdevofficialacct") == fresh.encode()
    assert fake.count(STABLE) == 2


# ---------------------------------------------------------------------- errors that are not retried


@pytest.mark.parametrize("errcode", [45009, 45011])
async def test_rate_limited_is_not_retried(wechat: WeChatClient, fake: FakeWeChat, errcode: int):
    fake.inject(SUBSCRIBE, errcode)
    with pytest.raises(WeChatRateLimited) as caught:
        await wechat.send_subscribe(openid="o-mini-1", template_id="TPL", data={"thing1": "预约成功"})
    exc = caught.value
    assert (exc.code, exc.status, exc.errcode) == ("WECHAT_RATE_LIMITED", 503, errcode)
    assert exc.headers == {"Retry-After": "60"}
    assert exc.envelope()["error"]["details"]["errcode"] == errcode
    assert fake.count(SUBSCRIBE) == 1
    assert fake.count(STABLE) == 1
    assert_clean(exc, *used_tokens(fake))


async def test_subscription_quota_used_up_is_permanent(wechat: WeChatClient, fake: FakeWeChat):
    fake.inject(SUBSCRIBE, 43101)
    with pytest.raises(WeChatQuotaExhausted) as caught:
        await wechat.send_subscribe(openid="o-mini-1", template_id="TPL", data={"thing1": "预约成功"})
    assert (caught.value.code, caught.value.status, caught.value.errcode) == ("WECHAT_QUOTA_EXHAUSTED", 502, 43101)
    assert fake.count(SUBSCRIBE) == 1


async def test_other_errcode_is_a_wechat_error(wechat: WeChatClient, fake: FakeWeChat):
    # The fake itself answers 40037 for an empty template id, as WeChat does.
    with pytest.raises(WeChatError) as caught:
        await wechat.send_template(openid="o-1", template_id="", data={"thing1": "x"})
    exc = caught.value
    assert type(exc) is WeChatError
    assert (exc.code, exc.status, exc.errcode) == ("WECHAT_ERROR", 502, 40037)
    assert exc.details["api"] == TEMPLATE
    assert "invalid template_id" in exc.details["errmsg"]
    assert fake.count(TEMPLATE) == 1


async def test_slow_answer_is_unavailable_within_the_timeout(
    make_client: Callable[..., WeChatClient], fake: FakeWeChat
):
    wechat = make_client(wechat_timeout=0.5)
    await wechat.access_token(appid="wxdevofficialacct")
    fake.delay(TEMPLATE, 3)
    started = time.monotonic()
    with pytest.raises(WeChatUnavailable) as caught:
        await send_one(wechat)
    assert time.monotonic() - started < 1.2
    assert (caught.value.code, caught.value.status) == ("WECHAT_UNAVAILABLE", 503)
    assert caught.value.details["reason"] == "timeout"
    assert_clean(caught.value, *used_tokens(fake))


async def test_timeout_setting_is_capped_at_five_seconds(make_client: Callable[..., WeChatClient]):
    assert make_client(wechat_timeout=30.0)._timeout == 5.0


async def test_closed_port_is_unavailable(make_client: Callable[..., WeChatClient]):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wechat = make_client(wechat_api_base=f"http://127.0.0.1:{port}")
    with pytest.raises(WeChatUnavailable) as caught:
        await wechat.access_token(appid="wxdevofficialacct")
    assert caught.value.details["reason"] == "network"


async def test_server_gone_after_use_is_unavailable(wechat: WeChatClient, fake: FakeWeChat):
    await send_one(wechat)  # leaves a keep-alive connection in the pool
    fake.stop()
    with pytest.raises(WeChatUnavailable):
        await send_one(wechat)


async def test_http_5xx_is_unavailable(wechat: WeChatClient, fake: FakeWeChat):
    fake.fail(STABLE, 502)
    with pytest.raises(WeChatUnavailable) as caught:
        await wechat.access_token(appid="wxdevofficialacct")
    assert caught.value.details["http_status"] == 502


async def test_unparsable_answer_is_unavailable(wechat: WeChatClient, fake: FakeWeChat):
    fake.fail(TEMPLATE, status=200, body=b"<html>\xe7\xbd\x91\xe5\x85\xb3</html>")
    with pytest.raises(WeChatUnavailable) as caught:
        await send_one(wechat)
    assert caught.value.details["reason"] == "bad_response"


# ---------------------------------------------------------------------- logins


async def test_code2session(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    fake.add_code("061js-code", openid="o-mini-1", unionid="u-1", appid=settings.wechat_mini_appid)

    session = await wechat.code2session(js_code="061js-code")

    assert isinstance(session, Session)
    assert (session.openid, session.unionid) == ("o-mini-1", "u-1")
    assert session.session_key and session.session_key not in repr(session)
    [call] = fake.calls
    assert (call.method, call.path, call.json) == ("GET", "/sns/jscode2session", None)
    assert call.query == {
        "appid": settings.wechat_mini_appid,
        "secret": settings.wechat_mini_secret,
        "js_code": "061js-code",
        "grant_type": "authorization_code",
    }


async def test_code2session_without_unionid(wechat: WeChatClient, fake: FakeWeChat):
    fake.add_code("c1", openid="o-mini-2", appid="wxdevminiprogram")
    assert (await wechat.code2session(js_code="c1")).unionid is None


async def test_reused_and_unknown_codes_are_invalid(wechat: WeChatClient, fake: FakeWeChat):
    fake.add_code("once", openid="o-mini-1", appid="wxdevminiprogram")
    fake.add_code("for-the-official-account", openid="o-mp-1", appid="wxdevofficialacct")
    await wechat.code2session(js_code="once")

    for code, errcode in (("once", 40163), ("never-issued", 40029), ("for-the-official-account", 40029)):
        with pytest.raises(WeChatCodeInvalid) as caught:
            await wechat.code2session(js_code=code)
        assert (caught.value.code, caught.value.status, caught.value.errcode) == ("WECHAT_CODE_INVALID", 401, errcode)
        assert_clean(caught.value, "dev-mini-secret", code)


async def test_oauth_exchange(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    fake.add_code("oauth-code", openid="o-mp-1", unionid="u-1", appid=settings.wechat_mp_appid, scope="snsapi_userinfo")

    token = await wechat.oauth_exchange(code="oauth-code")

    assert isinstance(token, OAuthToken)
    assert (token.openid, token.unionid, token.scope, token.expires_in) == ("o-mp-1", "u-1", "snsapi_userinfo", 7200)
    assert token.access_token and token.refresh_token
    assert token.access_token not in repr(token) and token.refresh_token not in repr(token)
    [call] = fake.calls
    assert (call.method, call.path) == ("GET", "/sns/oauth2/access_token")
    assert call.query == {
        "appid": settings.wechat_mp_appid,
        "secret": settings.wechat_mp_secret,
        "code": "oauth-code",
        "grant_type": "authorization_code",
    }
    with pytest.raises(WeChatCodeInvalid):
        await wechat.oauth_exchange(code="oauth-code")


async def test_oauth_authorize_url(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    url = wechat.oauth_authorize_url(redirect_uri="https://gov.example.cn/m/login?next=/m/cases", state="abc123")
    assert url == (
        f"{settings.wechat_oauth_base}/connect/oauth2/authorize?appid=wxdevofficialacct"
        "&redirect_uri=https%3A%2F%2Fgov.example.cn%2Fm%2Flogin%3Fnext%3D%2Fm%2Fcases"
        "&response_type=code&scope=snsapi_base&state=abc123#wechat_redirect"
    )
    assert "scope=snsapi_userinfo" in wechat.oauth_authorize_url(
        redirect_uri="https://gov.example.cn/", state="s", scope="snsapi_userinfo"
    )
    assert fake.calls == []
    with pytest.raises(ValueError):
        wechat.oauth_authorize_url(redirect_uri="https://gov.example.cn/", state="s", scope="snsapi_login")
    with pytest.raises(ValueError):
        wechat.oauth_authorize_url(redirect_uri="https://gov.example.cn/", state="has space")


async def test_dev_login_through_the_fake_authorize_page(wechat: WeChatClient):
    url = wechat.oauth_authorize_url(redirect_uri="https://gov.example.cn/m/login", state="xyz")
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    back = httpx.URL(answer.headers["location"])
    assert back.host == "gov.example.cn" and back.params["state"] == "xyz"
    token = await wechat.oauth_exchange(code=back.params["code"])
    assert token.openid.startswith("o")


# ---------------------------------------------------------------------- codes and messages


async def test_create_scene_qrcode(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    qr = await wechat.create_scene_qrcode(scene_str="matter:330100-001")

    assert isinstance(qr, SceneQr)
    assert qr.url.startswith("http://weixin.qq.com/q/")
    assert fake.qrcodes[qr.ticket]["scene"] == "matter:330100-001"
    [call] = calls_of(fake, QRCODE)
    assert call.method == "POST"
    assert call.json == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "matter:330100-001"}},
    }
    assert set(call.query) == {"access_token"}
    assert fake.token_appid(call.query["access_token"]) == settings.wechat_mp_appid
    with pytest.raises(ValueError):
        await wechat.create_scene_qrcode(scene_str="x" * 65)


async def test_wxa_code_unlimited(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    png = await wechat.wxa_code_unlimited(scene="m=330100001", page="pages/guide/index")

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert decoded.text == "pages/guide/index?scene=m=330100001"
    [call] = calls_of(fake, WXACODE)
    assert call.json == {"scene": "m=330100001", "page": "pages/guide/index", "width": 430, "check_path": False}
    assert fake.token_appid(call.query["access_token"]) == settings.wechat_mini_appid


async def test_wxa_code_json_answer_is_an_error(wechat: WeChatClient, fake: FakeWeChat):
    fake.inject(WXACODE, 40169)
    with pytest.raises(WeChatError) as caught:
        await wechat.wxa_code_unlimited(scene="m=1", page="pages/guide/index")
    assert caught.value.errcode == 40169
    fake.inject(WXACODE, 40001)  # a token error on an image endpoint is retried like any other
    assert (await wechat.wxa_code_unlimited(scene="m=1", page="pages/guide/index")).startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        await wechat.wxa_code_unlimited(scene="x" * 33, page="pages/guide/index")


async def test_send_template_wire_format(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    msgid = await wechat.send_template(
        openid="o-citizen-1",
        template_id="TPL-CASE",
        data={"first": "您的办件已受理", "keyword1": {"value": "营业执照设立登记", "color": "#173177"}},
        url="https://gov.example.cn/m/cases/abc",
        miniprogram={"appid": settings.wechat_mini_appid, "pagepath": "pages/case/index?id=abc"},
        client_msg_id="outbox-42",
    )

    [request] = [r for r in fake.requests if r.path == TEMPLATE]
    assert "办件已受理".encode() in request.body and b"\\u" not in request.body
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.json == {
        "touser": "o-citizen-1",
        "template_id": "TPL-CASE",
        "data": {"first": {"value": "您的办件已受理"}, "keyword1": {"value": "营业执照设立登记", "color": "#173177"}},
        "url": "https://gov.example.cn/m/cases/abc",
        "miniprogram": {"appid": settings.wechat_mini_appid, "pagepath": "pages/case/index?id=abc"},
        "client_msg_id": "outbox-42",
    }
    assert fake.token_appid(request.query["access_token"]) == settings.wechat_mp_appid
    assert fake.sent[-1]["kind"] == "template" and fake.sent[-1]["msgid"] == msgid
    assert await send_one(wechat) > msgid


async def test_send_subscribe_wire_format(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    result = await wechat.send_subscribe(
        openid="o-mini-1",
        template_id="TPL-BOOKING",
        data={"thing1": "不动产登记", "time2": "2026年10月8日 09:30"},
        page="pages/booking/index?id=b1",
    )

    assert result is None
    [request] = [r for r in fake.requests if r.path == SUBSCRIBE]
    assert "不动产登记".encode() in request.body and b"\\u" not in request.body
    assert request.json == {
        "touser": "o-mini-1",
        "template_id": "TPL-BOOKING",
        "data": {"thing1": {"value": "不动产登记"}, "time2": {"value": "2026年10月8日 09:30"}},
        "page": "pages/booking/index?id=b1",
    }
    assert fake.token_appid(request.query["access_token"]) == settings.wechat_mini_appid
    assert fake.sent[-1]["kind"] == "subscribe" and fake.sent[-1]["appid"] == settings.wechat_mini_appid


async def test_create_menu(wechat: WeChatClient, fake: FakeWeChat, settings: Settings):
    menu = {
        "button": [
            {"type": "view", "name": "办事指南", "url": "https://gov.example.cn/m/"},
            {
                "name": "我的",
                "sub_button": [
                    {
                        "type": "miniprogram",
                        "name": "我的办件",
                        "appid": "wxdevminiprogram",
                        "pagepath": "pages/cases/index",
                        "url": "https://gov.example.cn/m/",
                    }
                ],
            },
        ]
    }
    await wechat.create_menu(menu=menu)

    assert fake.menus[settings.wechat_mp_appid] == menu
    [request] = [r for r in fake.requests if r.path == MENU]
    assert "办事指南".encode() in request.body and b"\\u" not in request.body


# ---------------------------------------------------------------------- secrets stay out of logs and errors


async def test_credentials_never_logged(
    wechat: WeChatClient, fake: FakeWeChat, settings: Settings, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    fake.add_code("js-code-1", openid="o-mini-1", appid=settings.wechat_mini_appid)
    session = await wechat.code2session(js_code="js-code-1")
    fake.inject(TEMPLATE, 40001)
    await send_one(wechat)
    fake.inject(TEMPLATE, 45009)
    with pytest.raises(WeChatRateLimited) as caught:
        await send_one(wechat)

    tokens = used_tokens(fake)
    assert len(tokens) == 2
    text = caplog.text
    assert "access_token=[redacted]" in text  # httpx did log the URLs, redacted
    for secret in (*tokens, settings.wechat_mp_secret, settings.wechat_mini_secret, session.session_key, "js-code-1"):
        assert secret not in text
    assert_clean(caught.value, *tokens)


# ---------------------------------------------------------------------- lifecycle


async def test_injected_http_client_is_used_and_left_open(settings: Settings, store: Store, fake: FakeWeChat):
    async with httpx.AsyncClient() as http:
        wechat = WeChatClient(settings, store, http=http)
        await wechat.create_scene_qrcode(scene_str="s1")
        await wechat.aclose()
        assert not http.is_closed
    assert fake.count(QRCODE) == 1


async def test_aclose_closes_its_own_pool(settings: Settings, store: Store):
    wechat = WeChatClient(settings.replace(), store)
    await wechat.aclose()
    assert wechat._http.is_closed
