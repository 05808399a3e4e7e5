"""Signing staff in over HTTP in end-to-end tests, two-factor included (TOTP for admins and reviewers)."""

from __future__ import annotations

import re
import time

import httpx
import pyotp

_SECRET = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<')
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def enrol_totp(url: str, username: str, password: str) -> str:
    """Enrol an authenticator through the console pages (as a browser would): the TOTP secret."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as web:
        form = web.get("/console/login")
        data = {"csrf": _CSRF.search(form.text).group(1), "username": username, "password": password}
        done = web.post("/console/login", data=data)
        assert done.status_code == 303 and done.headers["location"] == "/console/login/enrol", done.text
        enrol = web.get("/console/login/enrol")
        secret = _SECRET.search(enrol.text).group(1).replace(" ", "")
        code = pyotp.TOTP(secret).now()
        confirmed = web.post("/console/login/enrol", data={"csrf": _CSRF.search(enrol.text).group(1), "code": code})
        assert confirmed.status_code == 200, confirmed.text
    return secret


_SIGNED_IN: dict[tuple[str, str], dict[str, str]] = {}


def staff_bearer(url: str, username: str, password: str) -> dict[str, str]:
    """Sign a staff member in through the API (enrolling two-factor first when the role needs it), once per
    server: a second sign-in would need a fresh code of an authenticator only the first one holds."""
    if (url, username) not in _SIGNED_IN:
        _SIGNED_IN[(url, username)] = _sign_in(url, username, password)
    return _SIGNED_IN[(url, username)]


def _sign_in(url: str, username: str, password: str) -> dict[str, str]:
    creds = {"username": username, "password": password}
    login = httpx.post(url + "/api/v1/auth/staff/login", json=creds)
    if login.status_code == 403 and login.json()["error"]["code"] == "TOTP_ENROLMENT_REQUIRED":
        secret = enrol_totp(url, username, password)
        # The enrolment spent this step's code; the next step's is accepted (one step of clock drift).
        code = pyotp.TOTP(secret).at(time.time(), counter_offset=1)
        login = httpx.post(url + "/api/v1/auth/staff/login", json={**creds, "totp": code})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}
