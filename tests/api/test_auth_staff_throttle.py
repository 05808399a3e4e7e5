"""Staff sign-in throttling: known and unknown usernames answered alike, and nobody locks a clerk out of the hall."""

from __future__ import annotations

import re

import httpx
import pytest
from sanic_testing.testing import ASGI_HOST, ASGI_PORT

import auth.staff
from auth import logins
from auth.staff import create_staff

LOGIN = "/api/v1/auth/staff/login"
PASSWORD = "clerk pass 1234"


@pytest.fixture
def settings(base_settings):
    """Password-only sign-in (clerks need no second factor)."""
    return base_settings.replace(staff_totp_roles=())


@pytest.fixture
async def clerk(client):
    return await create_staff(username="clerk1", password=PASSWORD, role="clerk", hall="main")


def from_address(client, ip: str) -> httpx.AsyncClient:
    """A client of the same started app, seen as coming from `ip`."""
    transport = httpx.ASGITransport(app=client.sanic_app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{ASGI_HOST}:{ASGI_PORT}")


async def login(c: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await c.post(LOGIN, json={"username": username, "password": password})


def answer(r: httpx.Response) -> tuple:
    """What a caller sees of an answer, but for the exact number of seconds to wait."""
    body = r.json()
    if "retry_after" in body["error"]["details"]:
        assert 1 <= body["error"]["details"].pop("retry_after") <= 900
    return r.status_code, body, "retry-after" in r.headers, r.headers.get("content-type")


class CountingHasher:
    """The test hasher, recording each verify's argon2 parameters."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def verify(self, hash_: str, password: str) -> bool:
        self.calls.append(re.match(r"\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$", hash_).group(0))
        return self.inner.verify(hash_, password)

    def hash(self, password: str) -> str:
        return self.inner.hash(password)


async def test_known_and_unknown_usernames_answer_identically_across_many_attempts(client, clerk, monkeypatch):
    """As found: five wrong passwords locked a known account, while an unknown username was always 401."""
    spy = CountingHasher(auth.staff._hasher)
    monkeypatch.setattr(auth.staff, "_hasher", spy)
    seen = {}
    for username, ip in (("clerk1", "203.0.113.1"), ("no_such_clerk", "203.0.113.2")):
        spy.calls.clear()
        async with from_address(client, ip) as c:
            answers = [await login(c, username, "wrong password") for _ in range(12)]
            answers.append(await login(c, username, PASSWORD))  # the right password too, once refused
        seen[username] = ([answer(r) for r in answers], list(spy.calls))
    known, unknown = seen["clerk1"], seen["no_such_clerk"]
    assert [a[0] for a in known[0]] == [401] * 5 + [429] * 8
    assert known[0] == unknown[0]  # status, body, Retry-After and content type: the same, answer by answer
    assert known[0][0][1]["error"]["code"] == "BAD_CREDENTIALS" and known[0][-1][1]["error"]["code"] == "ACCOUNT_LOCKED"
    # The same hashing work both ways: one argon2id verify with the same parameters per checked attempt,
    # none once refused.
    assert len(known[1]) == len(unknown[1]) == 5
    assert set(known[1]) == set(unknown[1]) and len(set(known[1])) == 1


async def test_an_attacker_elsewhere_cannot_lock_the_clerk_out_of_the_hall(client, clerk):
    hall = "10.20.0.1"
    async with from_address(client, hall) as desk:
        assert (await login(desk, "clerk1", PASSWORD)).status_code == 200  # the clerk's usual address
    # An attacker at one address, then at 30 addresses: 150 wrong passwords, enough for every limit.
    statuses = []
    for n in range(30):
        async with from_address(client, f"198.51.100.{n + 1}") as c:
            statuses += [(await login(c, "clerk1", f"guess {n} {i}")).status_code for i in range(6)]
    assert statuses.count(401) == logins.STAFF_FAILS_ACCOUNT.count  # 100 checked guesses an hour, then none
    assert set(statuses) == {401, 429}
    async with from_address(client, "198.51.100.200") as c:  # a new address: the account's limit holds
        r = await login(c, "clerk1", PASSWORD)
        assert r.status_code == 429 and r.json()["error"]["code"] == "ACCOUNT_LOCKED"
    async with from_address(client, hall) as desk:  # … but the hall signs in, at once
        r = await desk.post(LOGIN, json={"username": "clerk1", "password": PASSWORD})
        assert r.status_code == 200, r.text
        # The hall's own typos are still limited per (account, address): five, then wait.
        codes = [(await login(desk, "clerk1", "typo")).status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]


async def test_one_address_is_limited_across_usernames_and_others_are_not(client, clerk):
    async with from_address(client, "203.0.113.9") as attacker:
        codes = [(await login(attacker, f"user{n}", "wrong password")).status_code for n in range(32)]
        assert codes == [401] * logins.STAFF_FAILS_IP.count + [429] * (32 - logins.STAFF_FAILS_IP.count)
        assert (await login(attacker, "clerk1", PASSWORD)).status_code == 429
    async with from_address(client, "10.20.0.2") as desk:  # the clerk elsewhere, never signed in there before
        assert (await login(desk, "clerk1", PASSWORD)).status_code == 200


async def test_the_console_and_the_api_share_one_rule(client, clerk):
    async with from_address(client, "203.0.113.7") as c:
        for _ in range(3):
            assert (await login(c, "clerk1", "wrong password")).status_code == 401
        statuses = []
        for _ in range(3):
            form = await c.get("/console/login")
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
            data = {"csrf": csrf, "username": "clerk1", "password": "wrong password", "next": "/console"}
            statuses.append((await c.post("/console/login", data=data)).status_code)
        assert statuses == [401, 401, 429]
        assert (await login(c, "clerk1", PASSWORD)).status_code == 429


async def test_a_hash_made_with_other_settings_is_remade_at_the_next_sign_in(client):
    """Older hashes (argon2-cffi's 64 MiB default) verify, and are rehashed so every account costs the same."""
    from argon2 import PasswordHasher

    from auth.models import Staff

    await create_staff(username="old_clerk", password=PASSWORD, role="clerk", hall="main")
    older = PasswordHasher(time_cost=1, memory_cost=2048, parallelism=2).hash(PASSWORD)
    await Staff.filter(username="old_clerk").update(password_hash=older)
    async with from_address(client, "203.0.113.9") as c:
        assert (await login(c, "old_clerk", PASSWORD)).status_code == 200
    rehashed = (await Staff.get(username="old_clerk")).password_hash
    assert rehashed != older and not auth.staff._hasher.check_needs_rehash(rehashed)
    async with from_address(client, "203.0.113.9") as c:
        assert (await login(c, "old_clerk", PASSWORD)).status_code == 200
