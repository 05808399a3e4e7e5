"""The outbox's SMS channel: citizens WeChat cannot reach are texted at their verified phone, under the
WeChat rules (claim, lease, backoff, give up, once only); WeChat still comes first."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app import clock
from app.notify import delivery
from app.notify import service as notify
from app.notify.deps import NotifyDeps
from app.notify.models import Notification, NotificationStatus
from app.notify.templates import SMS_LIMIT, SMS_RENDERERS, sms_link
from app.store import make_store
from app.wechat.client import WeChatClient
from auth import accounts
from auth.models import Channel, ChannelBinding, Citizen
from auth.pii import PiiCipher
from auth.sms import SIGNATURE, ConsoleSender, HttpSender
from tests.fakes.sms import FakeSmsGateway
from tests.unit.notify.test_delivery import PAYLOAD

TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
CASE_PAYLOAD = {
    "case_no": "ZJJ20260930000001",
    "matter_name": "营业执照设立登记",
    "status": "correction_required",
    "status_name": "待补正材料",
    "text": "请补正以下材料：居民身份证。原因：身份证照片不清晰",
    "at": "2026-09-30T10:00:00+08:00",
    "url": "http://testserver/p/SIGNED-CASE-CODE",
}


@pytest.fixture
async def wechat(wechat_settings):
    store = make_store(wechat_settings)
    client = WeChatClient(wechat_settings, store)
    yield client
    await client.aclose()
    await store.aclose()


@pytest.fixture
def cipher(wechat_settings) -> PiiCipher:
    return PiiCipher.from_settings(wechat_settings)


@pytest.fixture
def sms() -> ConsoleSender:
    return ConsoleSender()


@pytest.fixture
def deps(wechat_settings, wechat, sms, cipher) -> NotifyDeps:
    return NotifyDeps(settings=wechat_settings, wechat=wechat, sms=sms, cipher=cipher)


async def citizen(settings, cipher, *, phone: str | None = None, channel: str | None = None, subscribed=True):
    """A citizen with a verified phone and/or one WeChat binding."""
    row = Citizen(id=uuid.uuid4())
    if phone:
        accounts.set_phone(cipher, row, phone)
    await row.save(force_create=True)
    if channel:
        appid = settings.wechat_mp_appid if channel == Channel.official_account else settings.wechat_mini_appid
        await ChannelBinding.create(citizen=row, channel=channel, appid=appid, openid=f"o{uuid.uuid4().hex[:24]}",
                                    subscribed=subscribed)  # fmt: skip
    return row


async def queue(who: Citizen, kind: str = "case_progress", subject_type: str = "case", **extra) -> Notification:
    payload = CASE_PAYLOAD if kind == "case_progress" else PAYLOAD
    subject_id = payload["case_no"] if kind == "case_progress" else uuid.uuid4().hex
    row = await notify.enqueue(
        kind=kind, citizen_id=who.id, subject_type=subject_type, subject_id=subject_id, payload=payload,
        dedupe_key=uuid.uuid4().hex, **extra,
    )  # fmt: skip
    assert row is not None
    return row


def body(text: str) -> str:
    """A text without its link (what must fit one message)."""
    return text.rsplit("http", 1)[0]


# ---------------------------------------------------------------- who gets what


async def test_a_citizen_without_wechat_is_texted_once_with_the_case_page_link(
    wechat_settings, deps, sms, cipher, fake_wechat
):
    who = await citizen(wechat_settings, cipher, phone="13900001234")
    row = await queue(who)
    outcome = await delivery.deliver(deps)
    assert (outcome.sent, outcome.retried, outcome.failed) == (1, 0, 0)
    [(phone, text)] = sms.outbox
    assert phone == "13900001234" and fake_wechat.sent == []
    assert text.startswith(SIGNATURE) and "ZJJ20260930000001" in text and "营业执照设立登记" in text
    assert text.endswith("详情：http://testserver/m/me/cases/ZJJ20260930000001")
    assert "/p/" not in text and "SIGNED-CASE-CODE" not in text and len(body(text)) <= SMS_LIMIT
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.sent and stored.channel == "sms" and stored.attempts == 1
    assert stored.sent_at is not None and stored.claimed_until is None and stored.last_error is None
    assert "13900001234" not in str(await Notification.all().values())  # the phone is never stored with it
    assert (await delivery.deliver(deps)).sent == 0
    assert len(sms.outbox) == 1


async def test_an_official_account_follower_gets_wechat_not_a_text(wechat_settings, deps, sms, cipher, fake_wechat):
    who = await citizen(wechat_settings, cipher, phone="13900001235", channel=Channel.official_account)
    row = await queue(who)
    assert (await delivery.deliver(deps)).sent == 1
    assert [s["kind"] for s in fake_wechat.sent] == ["template"] and sms.outbox == []
    assert (await Notification.get(id=row.id)).channel == "official_account"


async def test_a_mini_program_user_gets_a_subscribe_message_not_a_text(wechat_settings, deps, sms, cipher, fake_wechat):
    who = await citizen(wechat_settings, cipher, phone="13900001236", channel=Channel.miniprogram)
    await queue(who)
    assert (await delivery.deliver(deps)).sent == 1
    assert [s["kind"] for s in fake_wechat.sent] == ["subscribe"] and sms.outbox == []


async def test_a_follower_who_unsubscribed_is_texted(wechat_settings, deps, sms, cipher, fake_wechat):
    who = await citizen(wechat_settings, cipher, phone="13900001237", channel=Channel.official_account,
                        subscribed=False)  # fmt: skip
    row = await queue(who)
    assert (await delivery.deliver(deps)).sent == 1
    assert fake_wechat.sent == [] and [p for p, _ in sms.outbox] == ["13900001237"]
    assert (await Notification.get(id=row.id)).channel == "sms"


async def test_neither_wechat_nor_a_phone_is_no_channel(wechat_settings, deps, sms, cipher, fake_wechat):
    row = await queue(await citizen(wechat_settings, cipher))
    assert (await delivery.deliver(deps)).failed == 1
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.failed and stored.last_error == "NO_CHANNEL" and stored.channel is None
    assert sms.outbox == [] and fake_wechat.sent == []


async def test_without_an_sms_sender_a_phone_only_citizen_is_no_channel(wechat_settings, wechat, cipher, fake_wechat):
    row = await queue(await citizen(wechat_settings, cipher, phone="13900001238"))
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).failed == 1
    assert (await Notification.get(id=row.id)).last_error == "NO_CHANNEL"


async def test_a_merged_account_is_texted_at_the_phone_it_moved_to(wechat_settings, deps, sms, cipher, fake_wechat):
    survivor = await citizen(wechat_settings, cipher, phone="13900001239")
    merged = await Citizen.create(id=uuid.uuid4(), disabled=True, merged_into=survivor.id)
    await queue(merged)
    assert (await delivery.deliver(deps)).sent == 1
    assert [p for p, _ in sms.outbox] == ["13900001239"]


# ---------------------------------------------------------------- the gateway failing


async def test_gateway_down_retries_with_backoff_then_texts_once(wechat_settings, wechat, cipher, fake_clock):
    with FakeSmsGateway() as gateway:
        deps = NotifyDeps(settings=wechat_settings, wechat=wechat, sms=HttpSender(gateway.url, "gw-key"), cipher=cipher)
        row = await queue(await citizen(wechat_settings, cipher, phone="13900002345"))
        gateway.fail(times=2)
        assert (await delivery.deliver(deps)).retried == 1
        stored = await Notification.get(id=row.id)
        assert stored.status is NotificationStatus.pending and stored.channel == "sms" and stored.attempts == 1
        assert stored.last_error == "SMS_UNAVAILABLE" and stored.send_after == clock.now() + delivery.backoff(1)
        assert (await delivery.deliver(deps)).retried == 0  # backing off
        fake_clock.advance(seconds=delivery.backoff(1).total_seconds() + 1)
        assert (await delivery.deliver(deps)).retried == 1
        fake_clock.advance(seconds=delivery.backoff(2).total_seconds() + 1)
        assert (await delivery.deliver(deps)).sent == 1
        fake_clock.advance(hours=2)
        assert (await delivery.deliver(deps)).sent == 0
    assert len(gateway.received) == 3 and len(gateway.delivered) == 1
    assert {c.key for c in gateway.received} == {str(row.id)}  # every try names the same message
    assert gateway.delivered[0].phone == "13900002345" and gateway.delivered[0].authorization == "Bearer gw-key"
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.sent and stored.attempts == 3 and stored.last_error is None


async def test_gateway_down_for_good_fails_after_max_attempts(wechat_settings, wechat, cipher, fake_clock):
    with FakeSmsGateway() as gateway:
        deps = NotifyDeps(settings=wechat_settings, wechat=wechat, sms=HttpSender(gateway.url, None), cipher=cipher)
        row = await queue(await citizen(wechat_settings, cipher, phone="13900002346"))
        gateway.fail(times=delivery.MAX_ATTEMPTS + 1)
        for _ in range(delivery.MAX_ATTEMPTS + 1):
            await delivery.deliver(deps)
            fake_clock.advance(hours=2)
    stored = await Notification.get(id=row.id)
    assert stored.status is NotificationStatus.failed and stored.attempts == delivery.MAX_ATTEMPTS
    assert stored.last_error == "SMS_UNAVAILABLE" and stored.channel == "sms"
    assert len(gateway.received) == delivery.MAX_ATTEMPTS and gateway.delivered == []


async def test_answer_lost_after_the_gateway_took_it_is_delivered_once(wechat_settings, wechat, cipher, fake_clock):
    with FakeSmsGateway() as gateway:
        deps = NotifyDeps(settings=wechat_settings, wechat=wechat, sms=HttpSender(gateway.url, None), cipher=cipher)
        row = await queue(await citizen(wechat_settings, cipher, phone="13900002347"))
        assert len(await delivery.claim(batch=10)) == 1
        # The worker posted the text, then died before recording it.
        await HttpSender(gateway.url, None).send(phone="13900002347", text="x", ref=str(row.id))
        fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
        assert (await delivery.deliver(deps)).sent == 1
    assert len(gateway.received) == 2 and len(gateway.delivered) == 1  # the gateway dropped the repeat


# ---------------------------------------------------------------- two workers


@pytest.mark.postgres
async def test_two_delivery_runs_text_each_notification_once(wechat_settings, cipher, fake_wechat):
    who = await citizen(wechat_settings, cipher, phone="13900003456")
    rows = [await queue(who, kind="booking_reminder", subject_type="booking") for _ in range(40)]

    class SlowConsole(ConsoleSender):
        async def send(self, *, phone: str, text: str, ref: str | None = None) -> None:
            await asyncio.sleep(0.005)  # a gateway round trip: the other worker claims meanwhile
            await super().send(phone=phone, text=text, ref=ref)

    sender = SlowConsole()  # one gateway, two workers
    stores = [make_store(wechat_settings) for _ in range(2)]
    clients = [WeChatClient(wechat_settings, s) for s in stores]

    async def worker(client: WeChatClient) -> int:
        total = 0
        while sent := (await delivery.deliver(NotifyDeps(wechat_settings, client, sender, cipher), batch=5)).sent:
            total += sent
        return total

    try:
        counts = await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client, store in zip(clients, stores, strict=True):
            await client.aclose()
            await store.aclose()
    assert sum(counts) == 40 and all(counts), counts  # both worked, neither sent what the other did
    links = sorted(text.rsplit("/", 1)[1] for _, text in sender.outbox)
    assert links == sorted(r.subject_id for r in rows)
    assert await Notification.filter(status=NotificationStatus.sent, channel="sms").count() == 40


# ---------------------------------------------------------------- what each text says


@pytest.mark.parametrize("kind", sorted(SMS_RENDERERS))
def test_every_kind_fits_one_text_and_links_to_the_citizens_own_page(kind):
    long_name = "中华人民共和国食品经营许可证（新办、延续、变更）核发事项"
    payload = {
        **PAYLOAD, **CASE_PAYLOAD, "matter_name": long_name, "hall_name": "张家界市政务服务中心永定区分中心二楼",
        "text": "办件进入特殊环节（现场核查），期间暂停计时：" + "需要核查经营场所的实际情况" * 5,
        "question": "请问需要哪些材料？我的身份证号是 430802199001011234", "answer": "请携带身份证原件。",
        "level_name": "不满意", "reply": "已整改", "days": 90, "limit": 3,
    }  # fmt: skip
    link = sms_link("http://testserver", "case", "ZJJ20260930000001")
    text = SMS_RENDERERS[kind](payload, link)
    assert text.startswith(SIGNATURE) and text.endswith(link)
    assert len(body(text)) <= SMS_LIMIT, (len(body(text)), text)
    assert "430802199001011234" not in text and "身份证原件" not in text and "SIGNED-CASE-CODE" not in text


def test_links_go_to_the_citizens_own_pages():
    assert sms_link("http://gov.example/", "case", "ZJJ1") == "http://gov.example/m/me/cases/ZJJ1"
    assert sms_link("http://gov.example", "booking", "b-1") == "http://gov.example/m/me/bookings/b-1"
    assert sms_link("http://gov.example", "consultation", "q-1") == "http://gov.example/m/me/questions/q-1"
    assert sms_link("http://gov.example", "rating", "r-1") == "http://gov.example/m/me/ratings/r-1"
    assert sms_link("http://gov.example", "other", "x") == "http://gov.example/m/me"
