"""Two-factor console sign-in (TOTP, RFC 6238): enrolment, replay, recovery codes, idle timeout, sign-out everywhere."""

from __future__ import annotations

import html
import re

import pyotp
import pytest

from app import clock
from auth.staff import create_staff
from tests.conftest import AppClient

PASSWORD = "staff pass 12345"


@pytest.fixture
def settings(base_settings, request):
    """Two-factor roles as the test asks (`indirect` parameter), else the defaults."""
    roles = getattr(request, "param", None)
    return base_settings if roles is None else base_settings.replace(staff_totp_roles=roles)


def _csrf(text: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)


def _code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now(), counter_offset=steps)


async def _password(client, username: str, password: str = PASSWORD, next_path: str = "/console"):
    _, form = await client.get(f"/console/login?next={next_path}")
    data = {"csrf": _csrf(form.text), "username": username, "password": password, "next": next_path}
    _, done = await client.post("/console/login", data=data, follow_redirects=False)
    return done


async def _post_code(client, path: str, code: str):
    _, form = await client.get(path)
    _, done = await client.post(path, data={"csrf": _csrf(form.text), "code": code}, follow_redirects=False)
    return done


def _staff_cookie_set(response) -> bool:
    return any(c.startswith("zd_st=") and "Max-Age=0" not in c for c in response.headers.get_list("set-cookie"))


async def _enrol(client, username: str) -> tuple[str, list[str]]:
    """Password, then the enrolment page: answer (secret, recovery codes) after confirming with a code."""
    done = await _password(client, username)
    assert done.status == 303 and done.headers["location"] == "/console/login/enrol"
    assert not _staff_cookie_set(done)  # no session before the second factor
    _, enrol = await client.get("/console/login/enrol")
    assert enrol.status == 200 and "<svg" in enrol.text and "<h1>绑定两步验证</h1>" in enrol.text
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', enrol.text).group(1).replace(" ", "")
    confirmed = await _post_code(client, "/console/login/enrol", _code(secret))
    assert confirmed.status == 200 and _staff_cookie_set(confirmed)
    codes = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", confirmed.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


async def _sign_out(client) -> None:
    _, home = await client.get("/console")
    await client.post("/console/logout", data={"csrf": _csrf(home.text)}, follow_redirects=False)


async def test_an_admin_enrols_with_a_qr_code_then_signs_in_with_a_code_used_only_once(client, fake_clock):
    await create_staff(username="adm1", password=PASSWORD, role="admin")
    _, pending = await client.get("/console", follow_redirects=False)
    assert pending.status == 303
    secret, _ = await _enrol(client, "adm1")
    assert pyotp.TOTP(secret).provisioning_uri(name="adm1", issuer_name="张家界政务服务").startswith("otpauth://")
    _, home = await client.get("/console")
    assert home.status == 200 and "改革成效看板" in home.text
    await _sign_out(client)

    done = await _password(client, "adm1")
    assert done.status == 303 and done.headers["location"] == "/console/login/code"
    _, still_out = await client.get("/console", follow_redirects=False)
    assert still_out.status == 303  # a right password alone is not a session
    wrong = await _post_code(client, "/console/login/code", "000000" if _code(secret) != "000000" else "111111")
    assert wrong.status == 401 and 'aria-describedby="code-err"' in wrong.text and not _staff_cookie_set(wrong)
    replayed = await _post_code(client, "/console/login/code", _code(secret))  # the code enrolment used
    assert replayed.status == 401 and "已使用过" in html.unescape(replayed.text)
    fake_clock.advance(seconds=30)
    ok = await _post_code(client, "/console/login/code", _code(secret))
    assert ok.status == 303 and ok.headers["location"] == "/console" and _staff_cookie_set(ok)
    _, home = await client.get("/console")
    assert home.status == 200


async def test_the_pending_sign_in_belongs_to_the_browser_that_gave_the_password(client, app):
    await create_staff(username="adm2", password=PASSWORD, role="admin")
    done = await _password(client, "adm2")
    assert done.headers["location"] == "/console/login/enrol"
    other = AppClient(app)
    try:
        _, foreign = await other.get("/console/login/enrol")
        assert foreign.status == 401 and "<svg" not in foreign.text and "登录步骤已过期" in foreign.text
    finally:
        await other.aclose()


async def test_a_recovery_code_signs_in_once(client, fake_clock):
    await create_staff(username="rev1", password=PASSWORD, role="reviewer", departments=["scjgj"])
    _, codes = await _enrol(client, "rev1")
    await _sign_out(client)
    await _password(client, "rev1")
    ok = await _post_code(client, "/console/login/code", codes[3].upper())
    assert ok.status == 303 and _staff_cookie_set(ok)
    await _sign_out(client)
    await _password(client, "rev1")
    again = await _post_code(client, "/console/login/code", codes[3])
    assert again.status == 401 and not _staff_cookie_set(again)


async def test_clerks_are_exempt_by_default(client):
    await create_staff(username="clerk1", password=PASSWORD, role="clerk", hall="main")
    done = await _password(client, "clerk1")
    assert done.status == 303 and done.headers["location"] == "/console" and _staff_cookie_set(done)


@pytest.mark.parametrize("settings", [("admin", "reviewer", "clerk")], indirect=True)
async def test_clerks_need_two_factor_when_configured(client, settings):
    assert settings.staff_totp_roles == ("admin", "reviewer", "clerk")
    await create_staff(username="clerk2", password=PASSWORD, role="clerk", hall="main")
    done = await _password(client, "clerk2")
    assert done.status == 303 and done.headers["location"] == "/console/login/enrol" and not _staff_cookie_set(done)


async def test_the_api_login_needs_a_totp_code_for_a_reviewer(client, fake_clock):
    await create_staff(username="rev2", password=PASSWORD, role="reviewer", departments=["scjgj"])
    creds = {"username": "rev2", "password": PASSWORD}
    _, first = await client.post("/api/v1/auth/staff/login", json=creds)
    assert first.status == 403 and first.json["error"]["code"] == "TOTP_ENROLMENT_REQUIRED"
    secret, _ = await _enrol(client, "rev2")
    _, bare = await client.post("/api/v1/auth/staff/login", json=creds)
    assert bare.status == 401 and bare.json["error"]["code"] == "TOTP_REQUIRED" and "access_token" not in bare.json
    _, wrong = await client.post("/api/v1/auth/staff/login", json={**creds, "totp": "12345x"})
    assert wrong.status == 401 and wrong.json["error"]["code"] == "TOTP_INVALID"
    fake_clock.advance(seconds=30)
    _, ok = await client.post("/api/v1/auth/staff/login", json={**creds, "totp": _code(secret)})
    assert ok.status == 200 and ok.json["audience"] == "staff"
    _, replay = await client.post("/api/v1/auth/staff/login", json={**creds, "totp": _code(secret)})
    assert replay.status == 401 and replay.json["error"]["code"] == "TOTP_INVALID"


async def test_an_idle_console_session_is_signed_out(client, fake_clock, settings):
    await create_staff(username="clerk3", password=PASSWORD, role="clerk", hall="main")
    await _password(client, "clerk3")
    _, home = await client.get("/console")
    assert home.status == 200
    fake_clock.advance(minutes=settings.console_idle_minutes - 1)
    _, busy = await client.get("/console", follow_redirects=False)
    assert busy.status == 200  # in use: renewed (the access token expired meanwhile) and kept
    fake_clock.advance(minutes=settings.console_idle_minutes + 1)
    _, idle = await client.get("/console", follow_redirects=False)
    assert idle.status == 303 and idle.headers["location"].startswith("/console/login")
    assert any(c.startswith("zd_st=") and "Max-Age=0" in c for c in idle.headers.get_list("set-cookie"))
    _, after = await client.get("/console", follow_redirects=False)
    assert after.status == 303


async def test_sign_out_everywhere_ends_the_other_browser_s_session(client, app):
    await create_staff(username="clerk4", password=PASSWORD, role="clerk", hall="main")
    other = AppClient(app)
    try:
        await _password(other, "clerk4")
        _, there = await other.get("/console")
        assert there.status == 200
        _, api = await client.post("/api/v1/auth/staff/login", json={"username": "clerk4", "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {api.json['access_token']}"}
        _, before = await client.get("/api/v1/desk/revocations", headers=bearer)
        assert before.status == 200
        await _password(client, "clerk4")
        _, home = await client.get("/console")
        assert "退出所有设备" in home.text
        _, out = await client.post("/console/logout-all", data={"csrf": _csrf(home.text)}, follow_redirects=False)
        assert out.status == 303 and out.headers["location"] == "/console/login"
        _, gone = await other.get("/console", follow_redirects=False)
        assert gone.status == 303
        _, desk = await client.get("/api/v1/desk/revocations", headers=bearer)
        assert desk.status == 401 and desk.json["error"]["code"] == "TOKEN_REVOKED"  # the app's token too
        _, refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": api.json["refresh_token"]})
        assert refreshed.status == 401
    finally:
        await other.aclose()


async def test_an_admin_reset_forces_enrolment_again_and_ends_the_sessions(client, fake_clock, admin_headers):
    await create_staff(username="adm3", password=PASSWORD, role="admin")
    secret, _ = await _enrol(client, "adm3")
    _, missing = await client.post("/api/v1/admin/staff/nobody/reset-2fa", headers=admin_headers)
    assert missing.status == 404 and missing.json["error"]["code"] == "STAFF_NOT_FOUND"
    _, reset = await client.post("/api/v1/admin/staff/adm3/reset-2fa", headers=admin_headers)
    assert reset.status == 200 and reset.json == {"username": "adm3", "totp_enrolled": False}
    _, gone = await client.get("/console", follow_redirects=False)
    assert gone.status == 303
    new_secret, _ = await _enrol(client, "adm3")
    assert new_secret != secret
