"""The console's staff session: password sign-in into HttpOnly SameSite=Strict cookies, roles, sign-out."""

from __future__ import annotations

import re

import pytest

from auth.staff import create_staff


@pytest.fixture
def settings(base_settings):
    """Password-only sign-in here; two-factor sign-in is tests/api/test_console_totp.py's."""
    return base_settings.replace(staff_totp_roles=())


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


async def _sign_in(client, username: str, password: str, next_path: str = "/console"):
    _, form = await client.get(f"/console/login?next={next_path}")
    assert form.status == 200
    data = {"csrf": _csrf(form.text), "username": username, "password": password, "next": next_path}
    _, done = await client.post("/console/login", data=data, follow_redirects=False)
    return done


async def test_staff_sign_in_sets_strict_httponly_cookies_and_lists_the_role_s_tools(client):
    await create_staff(username="rev1", password="reviewer pass 123", role="reviewer",
                       departments=["scjgj"])  # fmt: skip
    done = await _sign_in(client, "rev1", "reviewer pass 123")
    assert done.status == 303 and done.headers["location"] == "/console"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("zd_st="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    _, home = await client.get("/console")
    assert home.status == 200 and "办件审核" in home.text and "前台签到" not in home.text


async def test_wrong_password_is_said_on_the_form_and_signed_out_pages_ask_to_sign_in(client):
    await create_staff(username="clerk1", password="clerk pass 1234", role="clerk", hall="main")
    bad = await _sign_in(client, "clerk1", "nope")
    assert bad.status == 401 and 'role="alert"' in bad.text and 'value="clerk1"' in bad.text
    _, away = await client.get("/console", follow_redirects=False)
    assert away.status == 303 and away.headers["location"] == "/console/login?next=/console"


async def test_a_citizen_session_is_not_a_staff_session_and_sign_out_ends_it(client):
    await create_staff(username="adm1", password="admin pass 1234", role="admin")
    await _sign_in(client, "adm1", "admin pass 1234")
    _, home = await client.get("/console")
    assert "改革成效看板" in home.text
    _, out = await client.post("/console/logout", data={"csrf": _csrf(home.text)}, follow_redirects=False)
    assert out.status == 303
    _, again = await client.get("/console", follow_redirects=False)
    assert again.status == 303
