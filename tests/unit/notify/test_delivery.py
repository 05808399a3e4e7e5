"""The outbox delivery worker against the fake WeChat API: sends once, retries, gives up, survives crashes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from app import clock
from app.notify import delivery
from app.notify import service as notify
from app.notify.deps import NotifyDeps
from app.notify.models import Notification, NotificationStatus
from app.store import make_store
from app.wechat.client import WeChatClient
from auth.models import Channel, ChannelBinding, Citizen

PAYLOAD = {
    "matter_name": "营业执照设立登记",
    "hall_name": "张家界市政务服务中心",
    "hall_address": "永定区子午路 1 号",
    "starts_at": "2026-10-08T09:00:00+08:00",
    "ends_at": "2026-10-08T09:30:00+08:00",
    "url": "http://127.0.0.1:8000/api/v1/bookings/x",
}
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"


@pytest.fixture
async def wechat(wechat_settings):
    store = make_store(wechat_settings)
    client = WeChatClient(wechat_settings, store)
    yield client
    await client.aclose()
    await store.aclose()


async def citizen_with(settings, *channels: str, subscribed: bool = True) -> Citizen:
    citizen = await Citizen.create(id=uuid.uuid4())
    for channel in channels:
        appid = settings.wechat_mp_appid if channel == Channel.official_account else settings.wechat_mini_appid
        await ChannelBinding.create(
            citizen=citizen, channel=channel, appid=appid, openid=f"o{channel[:4]}{uuid.uuid4().hex[:20]}",
            subscribed=subscribed,
        )  # fmt: skip
    return citizen


async def queue(citizen: Citizen, kind: str = "booking_reminder", **extra) -> Notification:
    row = await notify.enqueue(
        kind=kind,
        citizen_id=citizen.id,
        subject_type="booking",
        subject_id=uuid.uuid4().hex,
        payload=PAYLOAD,
        dedupe_key=uuid.uuid4().hex,
        **extra,
    )
    assert row is not None
    return row


async def test_official_account_subscriber_gets_one_template_message(wechat_settings, wechat, fake_wechat):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    row = await queue(citizen)
    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert (outcome.sent, outcome.retried, outcome.failed) == (1, 0, 0)
    [sent] = fake_wechat.sent
    assert sent["kind"] == "template" and sent["client_msg_id"] == str(row.id)
    assert sent["template_id"] == wechat_settings.wechat_templates["booking_reminder"]
    assert sent["data"]["keyword1"]["value"] == "营业执照设立登记"
    assert sent["data"]["keyword2"]["value"] == "2026-10-08 09:00"
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.sent and stored.channel == "official_account"
    assert stored.msgid == str(sent["msgid"]) and stored.sent_at is not None and stored.claimed_until is None
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0
    assert len(fake_wechat.sent) == 1


async def test_mini_program_user_gets_a_subscribe_message_with_short_fields(wechat_settings, wechat, fake_wechat):
    citizen = await citizen_with(wechat_settings, Channel.miniprogram)
    await queue(citizen)
    await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    [sent] = fake_wechat.sent
    assert sent["kind"] == "subscribe"
    assert all(len(v["value"]) <= 20 for k, v in sent["data"].items() if k.startswith("thing"))


async def test_unsubscribed_official_account_falls_back_to_the_mini_program(wechat_settings, wechat, fake_wechat):
    citizen = await citizen_with(wechat_settings, Channel.official_account, subscribed=False)
    await ChannelBinding.create(
        citizen=citizen, channel=Channel.miniprogram, appid=wechat_settings.wechat_mini_appid, openid="omini-1"
    )
    await queue(citizen)
    await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert [s["kind"] for s in fake_wechat.sent] == ["subscribe"]


async def test_43101_is_a_permanent_failure(wechat_settings, wechat, fake_wechat, fake_clock):
    citizen = await citizen_with(wechat_settings, Channel.miniprogram)
    row = await queue(citizen)
    fake_wechat.inject(SUBSCRIBE, 43101)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).failed == 1
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.failed and "43101" in stored.last_error
    fake_clock.advance(hours=2)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0
    assert fake_wechat.sent == []


async def test_no_channel_fails_with_a_reason(wechat_settings, wechat, fake_wechat):
    row = await queue(await citizen_with(wechat_settings))
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).failed == 1
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.failed and stored.last_error == "NO_CHANNEL"


async def test_wechat_down_keeps_rows_pending_then_delivers_each_once(wechat_settings, wechat, fake_wechat, fake_clock):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    rows = [await queue(citizen) for _ in range(3)]
    fake_wechat.fail(TEMPLATE, status=502, times=3)
    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert (outcome.sent, outcome.retried) == (0, 3)
    for row in rows:
        stored = await Notification.get(id=row.id)
        assert stored.status is NotificationStatus.pending and stored.attempts == 1
        assert stored.send_after == clock.now() + delivery.backoff(1) and "WECHAT_UNAVAILABLE" in stored.last_error
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0  # backing off
    fake_clock.advance(seconds=31)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 3
    assert sorted(s["client_msg_id"] for s in fake_wechat.sent) == sorted(str(r.id) for r in rows)


async def test_slow_wechat_times_out_and_is_retried(base_settings, fake_wechat, fake_clock):
    settings = base_settings.replace(
        wechat_api_base=fake_wechat.url, wechat_oauth_base=fake_wechat.url, wechat_timeout=0.3
    )
    store = make_store(settings)
    client = WeChatClient(settings, store)
    try:
        citizen = await citizen_with(settings, Channel.official_account)
        row = await queue(citizen)
        await client.access_token(appid=settings.wechat_mp_appid)
        fake_wechat.delay(TEMPLATE, 1.0)
        assert (await delivery.deliver(NotifyDeps(settings=settings, wechat=client))).retried == 1
        fake_clock.advance(minutes=1)
        assert (await delivery.deliver(NotifyDeps(settings=settings, wechat=client))).sent == 1
        assert (await Notification.get(id=row.id)).status is NotificationStatus.sent
    finally:
        await client.aclose()
        await store.aclose()


async def test_gives_up_after_max_attempts(wechat_settings, wechat, fake_wechat, fake_clock):
    row = await queue(await citizen_with(wechat_settings, Channel.official_account))
    fake_wechat.fail(TEMPLATE, status=502, times=delivery.MAX_ATTEMPTS)
    for _ in range(delivery.MAX_ATTEMPTS):
        await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
        fake_clock.advance(hours=2)
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.failed and stored.attempts == delivery.MAX_ATTEMPTS
    assert fake_wechat.sent == []


async def test_not_due_yet_is_left_alone(wechat_settings, wechat, fake_wechat, fake_clock):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    await queue(citizen, send_after=clock.now() + dt.timedelta(hours=1))
    assert await delivery.claim(batch=10) == []
    fake_clock.advance(hours=1)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 1


async def test_worker_killed_after_claiming_is_delivered_after_the_lease(
    wechat_settings, wechat, fake_wechat, fake_clock
):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    row = await queue(citizen)
    claimed = await delivery.claim(batch=10)  # this worker "dies" here: claimed and committed, never sent
    assert [r.id for r in claimed] == [row.id]
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0  # still leased
    fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 1
    assert len(fake_wechat.sent) == 1
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.sent and stored.attempts == 2


async def test_row_whose_lease_ran_out_in_a_slow_batch_is_not_sent_again(
    wechat_settings, wechat, fake_wechat, fake_clock
):
    """Worker A claimed a batch; WeChat was slow, the lease of its last row ran out and B sent that row."""
    citizen = await citizen_with(wechat_settings, Channel.miniprogram)  # subscribe messages: no client_msg_id
    await queue(citizen)
    await queue(citizen)
    stale = await delivery.claim(batch=10)  # A's batch, still in its memory
    assert len(stale) == 2
    fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 2  # B
    assert len(fake_wechat.sent) == 2
    for row in stale:  # A's turn comes for its rows: the lease is no longer its own
        assert not await delivery._renew(row)
    assert len(fake_wechat.sent) == 2


async def test_unexpected_error_retries_the_row_and_goes_on_with_the_batch(
    wechat_settings, wechat, fake_wechat, fake_clock, monkeypatch
):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    broken = await queue(citizen, kind="no_such_renderer_crash")
    fine = await queue(citizen, send_after=clock.now() + dt.timedelta(seconds=1))
    fake_clock.advance(seconds=2)
    real = delivery.send_one

    async def flaky(deps, row):
        if row.id == broken.id:
            raise RuntimeError("boom")
        return await real(deps, row)

    monkeypatch.setattr(delivery, "send_one", flaky)
    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert outcome.sent == 1 and outcome.retried == 1
    assert (await Notification.get(id=fine.id)).status is NotificationStatus.sent
    stored = await Notification.get(id=broken.id)
    assert stored.status is NotificationStatus.pending and stored.last_error == "INTERNAL_ERROR"
    assert stored.send_after > clock.now()


async def test_answer_lost_after_sending_is_not_sent_twice(wechat_settings, wechat, fake_wechat, fake_clock):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    row = await queue(citizen)
    assert len(await delivery.claim(batch=10)) == 1
    # The send reached WeChat, then the worker died before recording it.
    binding = await ChannelBinding.get(citizen_id=citizen.id)
    await wechat.send_template(
        openid=binding.openid, template_id="dev-tpl-booking-reminder", data={"first": "x"}, client_msg_id=str(row.id)
    )
    fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 1
    assert len(fake_wechat.sent) == 1  # WeChat dropped the duplicate by client_msg_id
    assert (await Notification.get(id=row.id)).msgid == str(fake_wechat.sent[0]["msgid"])


async def test_cancelled_notifications_are_never_sent(wechat_settings, wechat, fake_wechat):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    row = await queue(citizen)
    assert await notify.cancel_pending(subject_type="booking", subject_id=row.subject_id) == 1
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0
    assert fake_wechat.sent == []


@pytest.mark.postgres
async def test_concurrent_workers_never_send_one_notification_twice(wechat_settings, fake_wechat):
    citizen = await citizen_with(wechat_settings, Channel.official_account)
    rows = [await queue(citizen) for _ in range(60)]
    clients = []
    for _ in range(4):
        store = make_store(wechat_settings)
        clients.append((store, WeChatClient(wechat_settings, store)))

    async def worker(client: WeChatClient) -> int:
        total = 0
        while True:
            outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=client), batch=5)
            if outcome.sent == 0:
                return total
            total += outcome.sent

    try:
        counts = await asyncio.gather(*(worker(c) for _, c in clients))
    finally:
        for store, client in clients:
            await client.aclose()
            await store.aclose()
    assert sum(counts) == 60
    assert sorted(s["client_msg_id"] for s in fake_wechat.sent) == sorted(str(r.id) for r in rows)
    assert await Notification.filter(status=NotificationStatus.sent).count() == 60
