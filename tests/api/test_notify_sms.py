"""A citizen who applied from a phone browser (signed in by SMS, no WeChat) hears of each step of their case
by text, once each, through the app's own outbox worker and SMS sender; a WeChat follower still gets WeChat."""

from __future__ import annotations

import re

import pytest

from app.matters import service as catalogue
from app.notify import delivery
from auth.models import Channel, ChannelBinding, Citizen
from auth.sms import SmsUnavailable
from tests.api import case_helpers as cases

PHONE = "13900005678"
# submit, then every step a case can take to completion with a correction on the way
STEPS = ["require_correction", "resubmit", "accept", "start_review", "approve", "deliver", "complete"]


@pytest.fixture
def settings(wechat_settings):
    """The app's WeChat API is the fake (only the follower test sends through it's template message)."""
    return wechat_settings


@pytest.fixture
async def app_ready(client, app):
    """The catalogue loaded; the worker's outbox job stopped, so each test runs delivery itself."""
    await catalogue.import_catalogue(app.ctx.catalogue, data=cases.catalogue())
    await app.ctx.scheduler.stop()
    return client


async def sms_sign_in(client, app, phone: str = PHONE) -> dict[str, str]:
    """Sign in by SMS code like a phone browser's citizen; bearer headers."""
    _, sent = await client.post("/api/v1/auth/sms/send", json={"phone": phone})
    assert sent.status == 200, sent.text
    code = re.search(r"(\d{6})", app.ctx.auth.sms.outbox[-1][1]).group(1)
    _, resp = await client.post("/api/v1/auth/sms/verify", json={"phone": phone, "otp": code})
    assert resp.status == 200, resp.text
    return {"Authorization": f"Bearer {resp.json['access_token']}"}


def texts_since(app, start: int) -> list[tuple[str, str]]:
    return app.ctx.auth.sms.outbox[start:]


async def test_each_step_of_a_phone_only_citizens_case_is_one_text(app_ready, app, make_staff):
    client = app_ready
    citizen = await sms_sign_in(client, app)
    _, staff = await make_staff("reviewer", departments=["scjgj"])
    outbox = app.ctx.auth.sms.outbox
    body = await cases.submit(client, citizen)
    case_no, query_code = body["case_no"], body["query_code"]
    progress_url = body["receipt"]["progress_url"]
    link = f"{app.ctx.settings.base_url}/m/me/cases/{case_no}"

    seen = len(outbox)
    for action in ["submit", *STEPS]:
        if action != "submit":
            await cases.step(client, citizen, staff, case_no, action)
        outcome = await delivery.deliver(app.ctx.services.notify)
        assert (outcome.sent, outcome.retried, outcome.failed) == (1, 0, 0), action
        [(phone, text)] = texts_since(app, seen)
        seen = len(outbox)
        assert phone == PHONE and case_no in text and text.endswith(f"详情：{link}"), (action, text)
        assert query_code not in text and progress_url not in text and "张三" not in text
        assert len(text.rsplit("http", 1)[0]) <= 70, text

    assert (await delivery.deliver(app.ctx.services.notify)).sent == 0  # nothing twice
    assert len(outbox) == seen
    view = await cases.staff_case(client, staff, case_no)
    assert len(view["notifications"]) == len(STEPS) + 1
    assert {(n["status"], n["channel"], n["attempts"]) for n in view["notifications"]} == {("sent", "sms", 1)}
    admin = await make_staff("admin")
    _, page = await client.get("/api/v1/admin/notifications", params={"subject_id": case_no}, headers=admin[1])
    assert page.status == 200 and {n["channel"] for n in page.json["items"]} == {"sms"}


async def test_gateway_failure_is_retried_after_the_backoff_then_texted_once(
    app_ready, app, make_staff, fake_clock, monkeypatch
):
    client = app_ready
    citizen = await sms_sign_in(client, app)
    _, staff = await make_staff("reviewer", departments=["scjgj"])
    case_no = (await cases.submit(client, citizen))["case_no"]
    sender = app.ctx.auth.sms
    real_send = sender.send
    refused = []

    async def gateway_down_once(*, phone: str, text: str, ref: str | None = None) -> None:
        if not refused:
            refused.append(ref)
            raise SmsUnavailable()
        await real_send(phone=phone, text=text, ref=ref)

    monkeypatch.setattr(sender, "send", gateway_down_once)
    seen = len(sender.outbox)
    assert (await delivery.deliver(app.ctx.services.notify)).retried == 1
    [note] = (await cases.staff_case(client, staff, case_no))["notifications"]
    assert (note["status"], note["channel"], note["last_error"], note["attempts"]) == (
        "pending", "sms", "SMS_UNAVAILABLE", 1,
    )  # fmt: skip
    assert (await delivery.deliver(app.ctx.services.notify)).sent == 0  # still backing off
    fake_clock.advance(seconds=delivery.backoff(1).total_seconds() + 1)
    assert (await delivery.deliver(app.ctx.services.notify)).sent == 1
    assert (await delivery.deliver(app.ctx.services.notify)).sent == 0
    [(phone, text)] = texts_since(app, seen)
    assert phone == PHONE and case_no in text and refused == [note["id"]]
    [note] = (await cases.staff_case(client, staff, case_no))["notifications"]
    assert (note["status"], note["channel"], note["last_error"], note["attempts"]) == ("sent", "sms", None, 2)


async def test_an_official_account_follower_with_a_phone_gets_wechat_not_a_text(
    app_ready, app, make_staff, fake_wechat
):
    client = app_ready
    citizen = await sms_sign_in(client, app)
    who = await Citizen.get(phone_bidx=app.ctx.auth.cipher.blind_index(PHONE, kind="phone"))
    await ChannelBinding.create(citizen=who, channel=Channel.official_account, appid=app.ctx.settings.wechat_mp_appid,
                                openid="ofollower-0001", subscribed=True)  # fmt: skip
    _, staff = await make_staff("reviewer", departments=["scjgj"])
    case_no = (await cases.submit(client, citizen))["case_no"]
    seen = len(app.ctx.auth.sms.outbox)
    await cases.step(client, citizen, staff, case_no, "accept")
    assert (await delivery.deliver(app.ctx.services.notify)).sent == 2
    assert texts_since(app, seen) == []
    assert [(s["kind"], s["touser"]) for s in fake_wechat.sent] == [("template", "ofollower-0001")] * 2
    notes = (await cases.staff_case(client, staff, case_no))["notifications"]
    assert {(n["status"], n["channel"]) for n in notes} == {("sent", "official_account")}
