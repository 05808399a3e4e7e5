"""The fake WeChat API on its own: the wire format, token and code rules, fault injection, dev endpoints."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image

from tests.fakes.wechat import FakeWeChat

ROOT = Path(__file__).resolve().parents[3]
MP, MP_SECRET = "wxdevofficialacct", "dev-mp-secret"
MINI, MINI_SECRET = "wxdevminiprogram", "dev-mini-secret"


@pytest.fixture
def http(fake: FakeWeChat) -> Iterator[httpx.Client]:
    """A plain HTTP client on the fake."""
    with httpx.Client(base_url=fake.url, timeout=5) as client:
        yield client


def stable(http: httpx.Client, appid: str = MP, secret: str = MP_SECRET, force: bool = False) -> dict:
    """POST /cgi-bin/stable_token."""
    body = {"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force}
    return http.post("/cgi-bin/stable_token", json=body).json()


def menu(http: httpx.Client, token: str) -> dict:
    """POST /cgi-bin/menu/create with a one-button menu (a cheap call that needs a token)."""
    body = {"button": [{"type": "view", "name": "办事", "url": "https://gov.example.cn/"}]}
    return http.post("/cgi-bin/menu/create", params={"access_token": token}, json=body).json()


def test_stable_token_is_stable_until_forced(http: httpx.Client, fake: FakeWeChat):
    first = stable(http)
    assert set(first) == {"access_token", "expires_in"} and first["expires_in"] == 7200
    again = stable(http)
    assert again["access_token"] == first["access_token"] and again["expires_in"] <= 7200
    forced = stable(http, force=True)
    assert forced["access_token"] != first["access_token"]
    assert menu(http, first["access_token"])["errcode"] == 40001  # the forced refresh revoked it
    assert menu(http, forced["access_token"])["errcode"] == 0
    assert fake.token_appid(forced["access_token"]) == MP


def test_classic_token_endpoint(http: httpx.Client):
    answer = http.get(
        "/cgi-bin/token", params={"grant_type": "client_credential", "appid": MINI, "secret": MINI_SECRET}
    ).json()
    assert answer["expires_in"] == 7200 and answer["access_token"]
    bad = http.get("/cgi-bin/token", params={"grant_type": "password", "appid": MINI, "secret": MINI_SECRET}).json()
    assert bad["errcode"] == 40002


@pytest.mark.parametrize(
    ("appid", "secret", "errcode"),
    [("wxnobody", MP_SECRET, 40013), (MP, "wrong", 40125), ("", MP_SECRET, 41002), (MP, "", 41004)],
)
def test_credentials_are_checked(http: httpx.Client, appid: str, secret: str, errcode: int):
    answer = stable(http, appid, secret)
    assert answer["errcode"] == errcode
    assert answer["errmsg"].split(" rid: ")[0]  # WeChat-style message with a request id
    assert " rid: " in answer["errmsg"]


def test_token_rules(http: httpx.Client, fake: FakeWeChat):
    token = stable(http)["access_token"]
    assert menu(http, token)["errcode"] == 0
    assert menu(http, "made-up")["errcode"] == 40001
    assert http.post("/cgi-bin/menu/create", json={"button": [{}]}).json()["errcode"] == 41001
    fake.expire_tokens()
    assert menu(http, token)["errcode"] == 42001
    fresh = stable(http)["access_token"]
    assert fresh != token and menu(http, fresh)["errcode"] == 0
    fake.revoke(fresh)
    assert menu(http, fresh)["errcode"] == 40001


def test_token_expires_after_its_lifetime():
    with FakeWeChat(token_ttl=1) as fake, httpx.Client(base_url=fake.url) as http:
        token = stable(http)["access_token"]
        assert menu(http, token)["errcode"] == 0
        time.sleep(1.1)
        assert menu(http, token)["errcode"] == 42001
        assert stable(http)["access_token"] != token


def test_request_shape_errors(http: httpx.Client):
    token = stable(http)["access_token"]
    assert http.get("/cgi-bin/menu/create", params={"access_token": token}).json()["errcode"] == 43002
    assert http.post("/sns/jscode2session").json()["errcode"] == 43001
    assert http.post("/cgi-bin/menu/create", params={"access_token": token}).json()["errcode"] == 44002
    assert (
        http.post("/cgi-bin/menu/create", params={"access_token": token}, content=b"{nope").json()["errcode"] == 47001
    )
    assert menu(http, token)["errcode"] == 0
    assert (
        http.post("/cgi-bin/menu/create", params={"access_token": token}, json={"button": []}).json()["errcode"]
        == 40016
    )
    assert http.get("/cgi-bin/nothing-here").status_code == 404


def test_login_codes_are_single_use_and_per_app(http: httpx.Client, fake: FakeWeChat):
    fake.add_code("js1", openid="o-1", unionid="u-1", appid=MINI)
    fake.add_code("mp1", openid="o-2", appid=MP)
    params = {"appid": MINI, "secret": MINI_SECRET, "grant_type": "authorization_code"}

    answer = http.get("/sns/jscode2session", params={**params, "js_code": "js1"})
    assert answer.headers["content-type"].startswith("text/plain")  # as WeChat labels it
    data = json.loads(answer.content)
    assert (data["openid"], data["unionid"]) == ("o-1", "u-1") and data["session_key"]

    def errcode(code: str) -> int:
        return http.get("/sns/jscode2session", params={**params, "js_code": code}).json()["errcode"]

    assert errcode("js1") == 40163
    assert errcode("unknown") == 40029
    assert errcode("mp1") == 40029
    assert errcode("") == 41008

    oauth = http.get(
        "/sns/oauth2/access_token",
        params={"appid": MP, "secret": MP_SECRET, "code": "mp1", "grant_type": "authorization_code"},
    ).json()
    assert oauth["openid"] == "o-2" and oauth["scope"] == "snsapi_base" and "unionid" not in oauth
    assert menu(http, oauth["access_token"])["errcode"] == 40001  # a web token is no API token


def test_calls_are_recorded(http: httpx.Client, fake: FakeWeChat):
    token = stable(http)["access_token"]
    menu(http, token)
    http.get("/sns/jscode2session", params={"appid": MINI, "js_code": "x"})

    assert fake.count("/cgi-bin/stable_token") == 1 and fake.count("/cgi-bin/menu/create") == 1
    method, path, query, body = fake.calls[1]
    assert (method, path, query) == ("POST", "/cgi-bin/menu/create", {"access_token": token})
    assert body["button"][0]["name"] == "办事"
    assert fake.calls[2].json is None and fake.calls[2].query == {"appid": MINI, "js_code": "x"}
    assert fake.requests[1].headers["content-type"] == "application/json"


def test_inject_errcode_then_recover(http: httpx.Client, fake: FakeWeChat):
    token = stable(http)["access_token"]
    fake.inject("/cgi-bin/menu/create", 45009, times=2)
    assert [menu(http, token)["errcode"] for _ in range(3)] == [45009, 45009, 0]
    assert fake.count("/cgi-bin/menu/create") == 3


def test_fail_with_http_status(http: httpx.Client, fake: FakeWeChat):
    fake.fail("/cgi-bin/stable_token", 503)
    assert http.post("/cgi-bin/stable_token", json={}).status_code == 503
    assert "access_token" in stable(http)


def test_delay(http: httpx.Client, fake: FakeWeChat):
    fake.delay("/cgi-bin/stable_token", 0.3)
    started = time.monotonic()
    stable(http)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    stable(http)
    assert time.monotonic() - started < 0.3


def test_stop_cuts_open_connections(fake: FakeWeChat):
    with httpx.Client(base_url=fake.url, timeout=5) as http:
        stable(http)  # keep-alive connection now open
        fake.stop()
        with pytest.raises(httpx.TransportError):
            stable(http)
    with pytest.raises(RuntimeError):
        _ = fake.url


def test_stop_does_not_wait_for_a_delayed_answer(fake: FakeWeChat):
    fake.delay("/cgi-bin/stable_token", 30)
    outcome: list[BaseException | dict] = []

    def call() -> None:
        with httpx.Client(base_url=fake.url, timeout=10) as http:
            try:
                outcome.append(stable(http))
            except httpx.HTTPError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)


def test_messages_menus_and_qrcodes(http: httpx.Client, fake: FakeWeChat):
    mp_token = stable(http)["access_token"]
    mini_token = stable(http, MINI, MINI_SECRET)["access_token"]
    template = {"touser": "o-1", "template_id": "T1", "data": {"first": {"value": "已受理"}}}
    first = http.post("/cgi-bin/message/template/send", params={"access_token": mp_token}, json=template).json()
    second = http.post("/cgi-bin/message/template/send", params={"access_token": mp_token}, json=template).json()
    assert first["errcode"] == 0 and second["msgid"] > first["msgid"]
    subscribe = {"touser": "o-1", "template_id": "S1", "data": {"thing1": {"value": "预约成功"}}}
    answer = http.post("/cgi-bin/message/subscribe/send", params={"access_token": mini_token}, json=subscribe).json()
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert [(s["kind"], s["appid"]) for s in fake.sent] == [("template", MP), ("template", MP), ("subscribe", MINI)]
    assert fake.sent[2]["msgid"] > fake.sent[1]["msgid"]
    missing = http.post(
        "/cgi-bin/message/subscribe/send", params={"access_token": mini_token}, json={"template_id": "S1", "data": {}}
    ).json()
    assert missing["errcode"] == 40003

    menu(http, mp_token)
    assert fake.menus[MP]["button"][0]["name"] == "办事"

    qr = http.post(
        "/cgi-bin/qrcode/create",
        params={"access_token": mp_token},
        json={"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "m:1"}}},
    ).json()
    assert set(qr) == {"ticket", "url"} and fake.qrcodes[qr["ticket"]]["scene"] == "m:1"
    temp = http.post(
        "/cgi-bin/qrcode/create",
        params={"access_token": mp_token},
        json={"expire_seconds": 600, "action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 7}}},
    ).json()
    assert temp["expire_seconds"] == 600
    bad = http.post(
        "/cgi-bin/qrcode/create", params={"access_token": mp_token}, json={"action_name": "QR_LIMIT_STR_SCENE"}
    ).json()
    assert bad["errcode"] == 40097


def test_wxa_code_is_a_png_of_page_and_scene(http: httpx.Client):
    token = stable(http, MINI, MINI_SECRET)["access_token"]
    answer = http.post("/wxa/getwxacodeunlimit", params={"access_token": token}, json={"scene": "b=1", "page": "p/x"})
    assert answer.headers["content-type"] == "image/png"
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(answer.content)))
    assert decoded.text == "p/x?scene=b=1"
    too_long = http.post("/wxa/getwxacodeunlimit", params={"access_token": token}, json={"scene": "x" * 33})
    assert too_long.json()["errcode"] == 40169


def test_dev_endpoints(http: httpx.Client, fake: FakeWeChat):
    created = http.post("/__fake__/codes", json={"code": "dev1", "openid": "o-dev", "unionid": "u-dev", "appid": MINI})
    assert created.status_code == 201 and created.json() == {"code": "dev1"}
    generated = http.post("/__fake__/codes", json={"openid": "o-dev2"}).json()["code"]
    assert http.post("/__fake__/codes", json={"code": "x"}).status_code == 400

    params = {"appid": MINI, "secret": MINI_SECRET, "grant_type": "authorization_code"}
    assert http.get("/sns/jscode2session", params={**params, "js_code": "dev1"}).json()["unionid"] == "u-dev"
    assert http.get("/sns/jscode2session", params={**params, "js_code": generated}).json()["openid"] == "o-dev2"

    calls = http.get("/__fake__/calls").json()
    assert [c["path"] for c in calls] == ["/sns/jscode2session", "/sns/jscode2session"]
    assert calls[0]["query"]["js_code"] == "dev1" and calls[0]["method"] == "GET"
    assert http.get("/__fake__/sent").json() == []


def test_authorize_redirects_back_with_a_code(http: httpx.Client):
    answer = http.get(
        "/connect/oauth2/authorize",
        params={
            "appid": MP,
            "redirect_uri": "https://gov.example.cn/m/login?next=/m/",
            "response_type": "code",
            "scope": "snsapi_userinfo",
            "state": "s1",
            "fake_openid": "o-chosen",
        },
    )
    assert answer.status_code == 302
    back = httpx.URL(answer.headers["location"])
    assert back.path == "/m/login" and back.params["next"] == "/m/" and back.params["state"] == "s1"
    token = http.get(
        "/sns/oauth2/access_token",
        params={"appid": MP, "secret": MP_SECRET, "code": back.params["code"], "grant_type": "authorization_code"},
    ).json()
    assert (token["openid"], token["scope"]) == ("o-chosen", "snsapi_userinfo")
    assert http.get("/connect/oauth2/authorize", params={"appid": "wxnobody"}).status_code == 400


def test_runs_standalone_with_the_dev_apps():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.wechat", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=5) as http:
            assert "access_token" in stable(http) and "access_token" in stable(http, MINI, MINI_SECRET)
            http.post("/__fake__/codes", json={"code": "c", "openid": "o", "appid": MINI})
            params = {"appid": MINI, "secret": MINI_SECRET, "js_code": "c", "grant_type": "authorization_code"}
            assert http.get("/sns/jscode2session", params=params).json()["openid"] == "o"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_standalone_apps_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.wechat", "--port", "0", "--app", "wxother:s3cret"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        with httpx.Client(base_url=url, timeout=5) as http:
            assert "access_token" in stable(http, "wxother", "s3cret")
            assert stable(http)["errcode"] == 40013
    finally:
        process.terminate()
        process.wait(timeout=10)
