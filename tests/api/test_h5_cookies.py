"""Session cookies are Secure outside development and over https, HttpOnly and SameSite always."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def settings(base_settings):
    return base_settings.replace(base_url="https://zwfw.example.cn")


@pytest.mark.parametrize(("env", "base", "secure"), [
    ("production", "http://10.0.0.1", True), ("development", "https://zwfw.example.cn", True),
    ("development", "http://127.0.0.1:8000", False), ("test", "http://127.0.0.1:8000", False),
])  # fmt: skip
def test_secure_flag_rule(env, base, secure):
    from types import SimpleNamespace

    from app.settings import Settings
    from auth.guards import _secure

    settings = SimpleNamespace(base_url=base, is_dev=Settings.model_construct(env=env).is_dev)
    request = SimpleNamespace(app=SimpleNamespace(ctx=SimpleNamespace(settings=settings)))
    assert _secure(request) is secure


async def test_https_cookies_are_secure(client, app):
    sent: list[tuple[str, str]] = []

    async def capture(*, phone: str, text: str) -> None:
        sent.append((phone, text))

    app.ctx.auth.sms.send = capture
    _, form = await client.get("/m/login?next=/m/me")
    assert form.status == 200, form.text[:300]
    browser = next(c for c in form.headers.get_list("set-cookie") if c.startswith("zd_b="))
    assert "Secure" in browser and "HttpOnly" in browser and "SameSite=Lax" in browser
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    cookie = {"Cookie": browser.split(";")[0]}  # the jar keeps Secure cookies for https only
    await client.post("/m/login/code", data={"csrf": csrf, "phone": "13900005555"}, headers=cookie)
    otp = re.search(r"(\d{6})", sent[-1][1]).group(1)
    _, done = await client.post("/m/login", data={"csrf": csrf, "phone": "13900005555", "otp": otp},
                                headers=cookie, follow_redirects=False)  # fmt: skip
    assert done.status == 303, done.text[:300]
    for name in ("zd_at=", "zd_rt="):
        c = next(c for c in done.headers.get_list("set-cookie") if c.startswith(name))
        assert "Secure" in c and "HttpOnly" in c and "SameSite=Lax" in c
