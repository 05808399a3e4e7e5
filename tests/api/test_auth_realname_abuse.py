"""Real-name verification is not an oracle: limits per account, address and ID number; a bound number is a mismatch."""

from __future__ import annotations

import logging

import httpx
import pytest
from sanic_testing.testing import ASGI_HOST, ASGI_PORT

from app.audit.models import AuditEntry
from auth import accounts
from auth.idcard import make_id_number
from auth.models import Citizen

URL = "/api/v1/me/real-name"


def from_address(client, ip: str) -> httpx.AsyncClient:
    """A client of the same started app, seen as coming from `ip`."""
    transport = httpx.ASGITransport(app=client.sanic_app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{ASGI_HOST}:{ASGI_PORT}")


@pytest.fixture
def platform(client, monkeypatch):
    """The verifier, recording every pair it is asked about (the real one answers)."""
    verifier = client.sanic_app.ctx.auth.verifier
    original = verifier.verify
    calls = []

    async def spy(**kw):
        calls.append(kw)
        return await original(**kw)

    monkeypatch.setattr(verifier, "verify", spy)
    return calls


async def attempt(client, headers, name: str, number: str, ip: str = "10.30.0.1") -> httpx.Response:
    async with from_address(client, ip) as c:
        return await c.post(URL, json={"name": name, "id_number": number}, headers=headers)


def without_retry(r: httpx.Response) -> dict:
    body = r.json()
    body["error"]["details"].pop("retry_after", None)
    return body


async def test_a_bound_number_is_answered_exactly_as_a_mismatch(client, make_citizen, platform):
    """As found: a signed-in citizen got 409 ID_NUMBER_BOUND for a matching pair of someone with an account."""
    number = make_id_number(seq="321")
    _, owner = await make_citizen()
    assert (await attempt(client, owner, "张三", number)).status_code == 200
    _, prober = await make_citizen()
    platform.clear()
    bound = await attempt(client, prober, "张三", number)  # the right name for a number bound to another account
    mismatch = await attempt(client, prober, "李四", make_id_number(seq="999"))  # a pair that does not match
    assert bound.status_code == mismatch.status_code == 422
    assert bound.json() == mismatch.json()
    assert bound.json()["error"] == {
        "code": "REALNAME_MISMATCH",
        "message": "姓名与身份证号不一致，或该身份证号已绑定其他账号",
        "details": {"reason": "mismatch"},
    }
    assert [c["id_number"] for c in platform] == [number, make_id_number(seq="999")]  # the same work both ways
    # The prober stays unverified, and the owner keeps their number.
    assert await Citizen.filter(real_name_at__isnull=False).count() == 1


async def test_one_id_number_has_five_attempts_a_day_across_accounts_and_addresses(client, make_citizen, platform):
    number = make_id_number(seq="999", region="430811")  # the dev platform says "no match" for it
    answers = []
    for n in range(6):
        _, headers = await make_citizen()
        answers.append(await attempt(client, headers, f"王{'一二三四五六'[n]}", number, ip=f"10.31.0.{n + 1}"))
    assert [r.status_code for r in answers] == [422] * 5 + [429]
    assert len(platform) == 5  # the sixth never reached the platform, nor does the seventh below
    _, headers = await make_citizen()
    refused = await attempt(client, headers, "张三", number, ip="10.31.1.1")
    assert refused.status_code == 429 and len(platform) == 5
    assert refused.json()["error"]["details"]["limit"] == "realname-attempts"  # which limit is not said
    assert int(refused.headers["retry-after"]) > 3600
    # Another number is unaffected.
    assert (await attempt(client, headers, "张三", make_id_number(seq="556"), ip="10.31.1.1")).status_code == 200


async def test_one_address_has_twenty_attempts_a_day_across_accounts(client, make_citizen, platform, settings):
    per_address = settings.realname_attempts_per_address_day
    assert per_address == 20 and settings.realname_attempts_per_account_day == 5
    codes = []
    for n in range(per_address + 2):
        if n % 4 == 0:
            _, headers = await make_citizen()  # a new account every four tries (under the per-account limit)
        codes.append(
            (await attempt(client, headers, "赵六", make_id_number(seq="999", region=f"4308{n:02d}"))).status_code
        )
    assert codes == [422] * per_address + [429, 429]
    assert len(platform) == per_address
    _, headers = await make_citizen()
    assert (await attempt(client, headers, "赵六", make_id_number(seq="777"), ip="10.32.0.9")).status_code == 200


async def test_per_account_limit_answers_the_same_429_and_keys_hold_no_number(client, make_citizen, platform, caplog):
    caplog.set_level(logging.DEBUG)
    _, headers = await make_citizen()
    numbers = [make_id_number(seq="999", region=f"4308{n:02d}") for n in range(7)]
    answers = [await attempt(client, headers, "孙七", n, ip="10.33.0.1") for n in numbers]
    assert [r.status_code for r in answers] == [422] * 5 + [429, 429]
    _, other = await make_citizen()
    for n in range(5):  # exhaust one ID number from other accounts: its 429 reads exactly like the account's
        _, h = await make_citizen()
        await attempt(client, h, "周八", make_id_number(seq="888"), ip=f"10.33.1.{n + 1}")
    by_number = await attempt(client, other, "周八", make_id_number(seq="888"), ip="10.33.2.1")
    assert by_number.status_code == 429 and without_retry(by_number) == without_retry(answers[-1])
    store = client.sanic_app.ctx.auth.store
    keys = [k.decode() if isinstance(k, bytes) else k for k in await store.keys("rl:realname*")]
    assert any(k.startswith("rl:realname-id:") for k in keys)
    everything = " ".join(keys) + caplog.text
    for number in [*numbers, make_id_number(seq="888")]:
        assert number not in everything and number[:17] not in everything


async def test_a_verified_account_cannot_verify_again_until_staff_reset_it(client, make_citizen, platform):
    citizen, headers = await make_citizen()
    assert (await attempt(client, headers, "吴九", make_id_number(seq="901"))).status_code == 200
    platform.clear()
    again = await attempt(client, headers, "郑十", make_id_number(seq="902"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "REALNAME_ALREADY_VERIFIED"
    assert platform == []  # not counted, not asked
    # The support process: staff check the person's document at a counter, then clear the verification.
    deps = client.sanic_app.ctx.auth
    found = await accounts.citizen_for_id_number(deps, id_number=make_id_number(seq="901"))
    assert found == citizen.id  # staff find the account by the number on the card (its blind index)
    await accounts.reset_real_name(deps, citizen_id=found, reason="窗口核验身份证原件后重置")
    row = await Citizen.get(id=citizen.id)
    assert row.real_name_at is None and row.id_number_bidx is None and row.loa == 2
    entry = await AuditEntry.get(action="citizen.reset_real_name")
    assert entry.object_id == str(citizen.id)
    async with from_address(client, "10.30.0.1") as c:
        revoked = await c.get("/api/v1/me", headers=headers)
        assert revoked.status_code == 401  # the old token said level 3
    _, fresh = await make_citizen()
    assert (await attempt(client, fresh, "吴九", make_id_number(seq="901"))).status_code == 200  # the number is free
