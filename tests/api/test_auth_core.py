"""Core identity flows through HTTP: SMS sign-in, /me, refresh rotation and reuse, logout, staff login."""

from __future__ import annotations

import re

import pytest

from auth.models import Citizen


def _sms_code(app) -> str:
    _phone, text = app.ctx.auth.sms.outbox[-1]
    return re.search(r"(\d{6})", text).group(1)


async def _sms_login(client, app, phone="13812345678"):
    _, resp = await client.post("/api/v1/auth/sms/send", json={"phone": phone})
    assert resp.status == 200, resp.text
    _, resp = await client.post("/api/v1/auth/sms/verify", json={"phone": phone, "otp": _sms_code(app)})
    assert resp.status == 200, resp.text
    return resp.json


async def test_sms_login_then_me_is_masked(client, app):
    tokens = await _sms_login(client, app)
    assert tokens["token_type"] == "Bearer" and tokens["audience"] == "app"
    _, resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status == 200, resp.text
    assert resp.json["phone"] == "138****5678"
    assert resp.json["loa"] == 2
    assert "13812345678" not in resp.text


async def test_phone_is_encrypted_at_rest(client, app):
    await _sms_login(client, app)
    row = (await Citizen.all().values("phone_enc", "phone_bidx"))[0]
    assert "13812345678" not in row["phone_enc"] and row["phone_enc"].startswith("v1.")
    assert "13812345678" not in row["phone_bidx"]


async def test_wrong_otp_then_lockout(client, app):
    _, resp = await client.post("/api/v1/auth/sms/send", json={"phone": "13812345678"})
    code = _sms_code(app)
    wrong = "000000" if code != "000000" else "111111"
    statuses = []
    for _ in range(6):
        _, resp = await client.post("/api/v1/auth/sms/verify", json={"phone": "13812345678", "otp": wrong})
        statuses.append(resp.status)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert int(resp.headers["retry-after"]) > 0
    # Even the right code is refused once the attempts are used up.
    _, resp = await client.post("/api/v1/auth/sms/verify", json={"phone": "13812345678", "otp": code})
    assert resp.status == 429


async def test_otp_send_limited_per_phone(client):
    _, first = await client.post("/api/v1/auth/sms/send", json={"phone": "13812345678"})
    _, second = await client.post("/api/v1/auth/sms/send", json={"phone": "13812345678"})
    assert first.status == 200
    assert second.status == 429 and second.json["error"]["code"] == "TOO_MANY_REQUESTS"
    assert second.headers["retry-after"]


async def test_invalid_phone(client):
    _, resp = await client.post("/api/v1/auth/sms/send", json={"phone": "12345678901"})
    assert resp.status == 422 and resp.json["error"]["code"] == "INVALID_PHONE"


async def test_refresh_rotates_and_reuse_revokes_family(client, app):
    tokens = await _sms_login(client, app)
    _, r1 = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r1.status == 200, r1.text
    assert r1.json["refresh_token"] != tokens["refresh_token"]
    # Replaying the first refresh token: reuse -> the whole family is revoked.
    _, replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status == 401 and replay.json["error"]["code"] == "REFRESH_TOKEN_REUSED"
    _, r2 = await client.post("/api/v1/auth/refresh", json={"refresh_token": r1.json["refresh_token"]})
    assert r2.status == 401
    _, me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {r1.json['access_token']}"})
    assert me.status == 401 and me.json["error"]["code"] == "TOKEN_REVOKED"


async def test_refresh_token_is_not_an_access_token(client, app):
    tokens = await _sms_login(client, app)
    _, resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert resp.status == 401 and resp.json["error"]["code"] == "TOKEN_INVALID"


async def test_logout_revokes_at_once(client, app):
    tokens = await _sms_login(client, app)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    _, ok = await client.get("/api/v1/me", headers=headers)
    assert ok.status == 200  # now cached as verified
    _, out = await client.post("/api/v1/auth/logout", headers=headers)
    assert out.status == 204
    _, after = await client.get("/api/v1/me", headers=headers)
    assert after.status == 401 and after.json["error"]["code"] == "TOKEN_REVOKED"


async def test_staff_login_and_lockout(client, make_staff):
    await make_staff("clerk", username="clerk1", password="right password 1")
    _, ok = await client.post("/api/v1/auth/staff/login", json={"username": "clerk1", "password": "right password 1"})
    assert ok.status == 200 and ok.json["audience"] == "staff"
    for _ in range(5):
        _, bad = await client.post("/api/v1/auth/staff/login", json={"username": "clerk1", "password": "nope"})
        assert bad.status == 401 and bad.json["error"]["code"] == "BAD_CREDENTIALS"
    _, locked = await client.post(
        "/api/v1/auth/staff/login", json={"username": "clerk1", "password": "right password 1"}
    )
    assert locked.status == 429 and locked.json["error"]["code"] == "ACCOUNT_LOCKED"
    assert int(locked.headers["retry-after"]) > 0


async def test_citizen_token_cannot_reach_admin(client, make_citizen):
    _, headers = await make_citizen()
    _, resp = await client.get("/api/v1/admin/catalogue/export", headers=headers)
    assert resp.status == 401 and resp.json["error"]["code"] == "TOKEN_INVALID"


async def test_clerk_cannot_reach_admin(client, make_staff):
    _, headers = await make_staff("clerk")
    _, resp = await client.get("/api/v1/admin/catalogue/export", headers=headers)
    assert resp.status == 403 and resp.json["error"]["code"] == "INSUFFICIENT_ROLE"


async def test_disabling_staff_revokes_sessions(client, make_staff, admin_headers):
    _staff, headers = await make_staff("admin", username="second_admin")
    _, ok = await client.get("/api/v1/admin/catalogue/export", headers=headers)
    assert ok.status == 200
    _, resp = await client.post("/api/v1/admin/staff/second_admin/disable", headers=admin_headers)
    assert resp.status == 200
    _, after = await client.get("/api/v1/admin/catalogue/export", headers=headers)
    assert after.status == 401 and after.json["error"]["code"] == "TOKEN_REVOKED"


@pytest.mark.parametrize("id_number,code", [("430802199001011230", "INVALID_ID_NUMBER"), ("abc", "INVALID_ID_NUMBER")])
async def test_real_name_rejects_bad_numbers(client, make_citizen, id_number, code):
    _, headers = await make_citizen()
    _, resp = await client.post("/api/v1/me/real-name", json={"name": "张三", "id_number": id_number}, headers=headers)
    assert resp.status == 422 and resp.json["error"]["code"] == code


async def test_real_name_raises_loa(client, make_citizen):
    from auth.idcard import make_id_number

    _, headers = await make_citizen()
    number = make_id_number()
    _, resp = await client.post("/api/v1/me/real-name", json={"name": "张三", "id_number": number}, headers=headers)
    assert resp.status == 200, resp.text
    assert resp.json["loa"] == 3 and resp.json["real_name"]["name"] == "张*"
    assert resp.json["real_name"]["id_number"] == number[:3] + "*" * 11 + number[-4:]
    row = (await Citizen.all().values("id_number_enc"))[0]
    assert number not in row["id_number_enc"]


async def test_verified_account_cannot_test_other_pairs_and_attempts_are_limited(client, app, make_citizen):
    from auth.idcard import make_id_number

    _, headers = await make_citizen()
    url = "/api/v1/me/real-name"
    _, done = await client.post(url, json={"name": "张三", "id_number": make_id_number()}, headers=headers)
    assert done.status == 200
    calls = []
    verifier = app.ctx.auth.verifier
    original = verifier.verify

    async def spy(**kw):
        calls.append(kw)
        return await original(**kw)

    verifier.verify = spy
    try:
        for seq in ("111", "999"):  # another person's number, matching or not: the platform is never asked
            body = {"name": "李四", "id_number": make_id_number(seq=seq)}
            _, again = await client.post(url, json=body, headers=headers)
            assert again.status == 409 and again.json["error"]["code"] == "REALNAME_ALREADY_VERIFIED"
        assert calls == []
        # An unverified account gets five tries a day, then 429.
        _, other = await make_citizen()
        codes = []
        for _ in range(6):
            body = {"name": "王五", "id_number": make_id_number(seq="999")}
            _, r = await client.post(url, json=body, headers=other)
            codes.append(r.status)
        assert codes == [422] * 5 + [429]
    finally:
        verifier.verify = original


async def test_jwks_and_discovery(client):
    _, resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    keys = resp.json["keys"]
    assert keys and all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in keys)
    _, disc = await client.get("/.well-known/openid-configuration")
    assert disc.json["jwks_uri"].endswith("/.well-known/jwks.json")


async def test_profile_cache_follows_changes_made_on_another_worker(app, client, make_citizen, settings):
    """/me is served from a per-worker cache; a real-name done through another worker shows after a tick."""
    from app.server import create_app
    from auth.idcard import make_id_number
    from tests.conftest import AppClient

    _, headers = await make_citizen()
    _, before = await client.get("/api/v1/me", headers=headers)
    assert before.json["loa"] == 2
    other = AppClient(create_app(settings))
    await other.start()
    try:
        _, done = await other.post(
            "/api/v1/me/real-name", json={"name": "李四", "id_number": make_id_number(seq="456")}, headers=headers
        )
        assert done.status == 200, done.text
    finally:
        await other.stop()
    await app.ctx.cache.sync()  # this worker's tick
    _, after = await client.get("/api/v1/me", headers=headers)
    assert after.json["loa"] == 3 and after.json["real_name"]["name"] == "李*"
