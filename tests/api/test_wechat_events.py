"""What the official account answers, fed events and texts exactly as WeChat posts them to /wechat/callback.

The fake clock stands on 2026-09-30 10:00 (Asia/Shanghai), the day before National Day: a case submitted now
is expected to be accepted by 2026-10-08, the first working day after the holiday.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from app.cases.service import QUERY_ALPHABET
from app.matters import service as catalogue
from app.notify.delivery import _binding
from app.wechat.replies import HELP, NOT_FOUND_CASE, WELCOME
from auth.models import Channel, ChannelBinding
from qr import analytics
from qr import service as qr_service
from qr.models import Code, CodeStatus, InvalidScan, ScanDaily
from tests import factories
from tests.api import case_helpers
from tests.api.wechat_messages import OA_ID, event_xml, open_reply, signed, text_xml

MODES = ["raw", "compatible", "aes"]
MATTER, MATTER_NAME = case_helpers.MATTER, "营业执照设立登记"
SLOT = "main.commercial.20261008.0900"  # 2026-10-08 09:00-09:30 in the main hall
SIGN_IN_PATH = "/api/v1/auth/wechat/authorize?next=/m"

_msg_ids = itertools.count(7_000_000_000_000_000)
_times = itertools.count(1_790_000_000)  # CreateTime of events: distinct, so no two are taken for retries


def msg_id() -> int:
    return next(_msg_ids)


def at() -> int:
    return next(_times)


def openid() -> str:
    return "o" + uuid.uuid4().hex[:27]


@pytest.fixture
def settings(wechat_settings):
    """The app's WeChat API is the local fake: pushes the delivery worker makes never leave the machine."""
    return wechat_settings


@pytest.fixture
async def seeded(client, fake_clock):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=case_helpers.catalogue())
    return client


@pytest.fixture
def calls(client, monkeypatch) -> list[Any]:
    """The messages the app's responder was asked to answer (the real responder still answers)."""
    callback = client.sanic_app.ctx.wechat_callback
    real, seen = callback.respond, []

    async def counting(message):
        seen.append(message)
        return await real(message)

    monkeypatch.setattr(callback, "respond", counting)
    return seen


async def send(client, settings, xml: str, mode: str = "raw") -> dict[str, Any] | None:
    """POST one message as WeChat does; the reply as a dict, or None for `success`."""
    query, body = signed(settings, xml, mode=mode)
    _, r = await client.post("/wechat/callback", params=query, content=body)
    assert r.status_code == 200, r.text
    if r.content == b"success":
        assert r.headers["content-type"].startswith("text/plain")
        return None
    assert r.headers["content-type"].startswith("application/xml")
    reply = open_reply(settings, r.content, query)
    assert reply["FromUserName"] == OA_ID
    return reply


def text_of(reply: dict[str, Any] | None) -> str:
    assert reply is not None and reply["MsgType"] == "text", reply
    return reply["Content"]


def articles(reply: dict[str, Any] | None) -> list[dict[str, Any]]:
    assert reply is not None and reply["MsgType"] == "news", reply
    items = reply["Articles"]["item"]
    items = items if isinstance(items, list) else [items]
    assert int(reply["ArticleCount"]) == len(items)
    return items


async def bind(citizen, oid: str, settings, *, channel: Channel = Channel.official_account, **fields):
    appid = settings.wechat_mp_appid if channel == Channel.official_account else settings.wechat_mini_appid
    return await ChannelBinding.create(citizen=citizen, channel=channel, appid=appid, openid=oid, **fields)


async def subscriber(make_citizen, settings):
    """A citizen bound to the official account: (citizen, headers, openid)."""
    citizen, headers = await make_citizen()
    oid = openid()
    await bind(citizen, oid, settings)
    return citizen, headers, oid


async def wechat_scans(slug: str) -> dict[str, int]:
    return {row.channel.value: row.scans for row in await ScanDaily.filter(slug=slug)}


# ---------------------------------------------------------------- subscribe / unsubscribe


@pytest.mark.parametrize("mode", MODES)
async def test_subscribe_welcomes_an_unbound_subscriber_with_a_sign_in_link(seeded, settings, calls, mode):
    oid = openid()
    reply = await send(seeded, settings, event_xml(oid, "subscribe", at=at()), mode)
    content = text_of(reply)
    assert reply["ToUserName"] == oid
    assert content.startswith(WELCOME)
    assert f"{settings.base_url}{SIGN_IN_PATH}" in content
    assert len(calls) == 1


async def test_subscribe_of_a_bound_citizen_has_no_sign_in_link(seeded, settings, make_citizen):
    _, _, oid = await subscriber(make_citizen, settings)
    content = text_of(await send(seeded, settings, event_xml(oid, "subscribe", at=at())))
    assert content == WELCOME
    assert SIGN_IN_PATH not in content


async def test_subscribe_with_an_empty_event_key_is_a_plain_welcome(seeded, settings):
    oid = openid()
    content = text_of(await send(seeded, settings, event_xml(oid, "subscribe", "", at=at())))
    assert content.startswith(WELCOME) and SIGN_IN_PATH in content


@pytest.mark.parametrize("mode", MODES)
async def test_subscribe_from_a_scene_code_answers_the_matter_guide(seeded, settings, mode):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    oid = openid()
    reply = await send(seeded, settings, event_xml(oid, "subscribe", f"qrscene_{slug}", at=at()), mode)
    [item] = articles(reply)
    assert reply["ToUserName"] == oid
    assert item["Title"] == MATTER_NAME
    assert item["Url"] == f"{settings.base_url}/m/{MATTER}"
    assert "市市场监督管理局" in item["Description"]
    await seeded.sanic_app.ctx.scans.flush()
    assert await wechat_scans(slug) == {"wechat": 1}


async def test_unsubscribe_stops_pushes_and_subscribing_again_restores_them(seeded, settings, make_citizen, fake_clock):
    citizen, _, oid = await subscriber(make_citizen, settings)
    assert (await _binding(citizen.id, settings)).openid == oid

    assert await send(seeded, settings, event_xml(oid, "unsubscribe", at=at())) is None
    row = await ChannelBinding.get(openid=oid)
    assert row.subscribed is False
    assert row.unsubscribed_at == fake_clock.current
    assert await _binding(citizen.id, settings) is None  # the delivery worker has nowhere to push

    text_of(await send(seeded, settings, event_xml(oid, "subscribe", at=at())))
    row = await ChannelBinding.get(openid=oid)
    assert row.subscribed is True and row.unsubscribed_at is None
    found = await _binding(citizen.id, settings)
    assert found is not None and found.channel == Channel.official_account and found.openid == oid


async def test_unsubscribed_citizen_falls_back_to_the_mini_program(seeded, settings, make_citizen):
    citizen, _, oid = await subscriber(make_citizen, settings)
    mini = await bind(citizen, openid(), settings, channel=Channel.miniprogram)
    assert (await _binding(citizen.id, settings)).channel == Channel.official_account

    await send(seeded, settings, event_xml(oid, "unsubscribe", at=at()))
    found = await _binding(citizen.id, settings)
    assert found is not None and found.id == mini.id and found.channel == Channel.miniprogram


async def test_unsubscribe_touches_only_the_sender_of_this_account(seeded, settings, make_citizen):
    citizen, _, oid = await subscriber(make_citizen, settings)
    other, _, other_oid = await subscriber(make_citizen, settings)
    # The same openid string under another app id is another identity.
    foreign = await ChannelBinding.create(
        citizen=citizen, channel=Channel.official_account, appid="wxanotheraccount", openid=other_oid
    )
    await send(seeded, settings, event_xml(other_oid, "unsubscribe", at=at()))
    assert (await ChannelBinding.get(openid=oid, appid=settings.wechat_mp_appid)).subscribed is True
    assert (await ChannelBinding.get(id=foreign.id)).subscribed is True
    assert (await ChannelBinding.get(openid=other_oid, appid=settings.wechat_mp_appid)).subscribed is False
    assert (await _binding(citizen.id, settings)).openid == oid
    assert await _binding(other.id, settings) is None


async def test_scene_subscribe_resubscribes_an_unsubscribed_citizen(seeded, settings, make_citizen):
    citizen, _, oid = await subscriber(make_citizen, settings)
    await send(seeded, settings, event_xml(oid, "unsubscribe", at=at()))
    assert await _binding(citizen.id, settings) is None
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    articles(await send(seeded, settings, event_xml(oid, "subscribe", f"qrscene_{slug}", at=at())))
    row = await ChannelBinding.get(openid=oid)
    assert row.subscribed is True and row.unsubscribed_at is None
    assert (await _binding(citizen.id, settings)).openid == oid


# ---------------------------------------------------------------- SCAN


@pytest.mark.parametrize("mode", MODES)
async def test_scan_answers_the_guide_and_counts_a_wechat_scan(seeded, settings, mode):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    oid = openid()
    reply = await send(seeded, settings, event_xml(oid, "SCAN", slug, at=at()), mode)
    [item] = articles(reply)
    assert reply["ToUserName"] == oid
    assert item["Title"] == MATTER_NAME
    assert item["Url"] == f"{settings.base_url}/m/{MATTER}"

    await seeded.sanic_app.ctx.scans.flush()
    assert await wechat_scans(slug) == {"wechat": 1}
    stats = await analytics.code_stats(slug=slug, date_from=None, date_to=None)
    assert stats.by_channel == {"wechat": 1} and stats.total_scans == 1
    [day] = stats.days
    assert day.day.isoformat() == "2026-09-30" and day.by_channel == {"wechat": 1}


async def test_scans_of_two_people_and_a_second_scan_are_all_counted(seeded, settings):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    first, second = openid(), openid()
    for oid in (first, second, first):
        articles(await send(seeded, settings, event_xml(oid, "SCAN", slug, at=at())))
    await seeded.sanic_app.ctx.scans.flush()
    stats = await analytics.code_stats(slug=slug, date_from=None, date_to=None)
    assert stats.by_channel == {"wechat": 3}
    assert stats.days[0].visitors == 2


async def test_scan_of_a_code_with_another_action_links_that_action(seeded, settings):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    await Code.filter(slug=slug).update(action="book")
    [item] = articles(await send(seeded, settings, event_xml(openid(), "SCAN", slug, at=at())))
    assert item["Url"] == f"{settings.base_url}/m/{MATTER}/book"


@pytest.mark.parametrize("key", ["zzzzzzzz", "../../etc/passwd", "qrscene_", "x" * 200, "<b>&amp;</b>"])
async def test_scan_of_an_unknown_code_explains_instead_of_failing(seeded, settings, key):
    oid = openid()
    content = text_of(await send(seeded, settings, event_xml(oid, "SCAN", key, at=at())))
    assert "该二维码已失效" in content and "发送事项名称" in content
    await seeded.sanic_app.ctx.scans.flush()
    assert await ScanDaily.all().count() == 0
    assert [(r.reason, r.scans) for r in await InvalidScan.all()] == [("code_not_found", 1)]


async def test_scan_of_a_disabled_code_says_it_is_disabled(seeded, settings):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    await Code.filter(slug=slug).update(status=CodeStatus.disabled)
    content = text_of(await send(seeded, settings, event_xml(openid(), "SCAN", slug, at=at())))
    assert "该二维码已停用" in content
    await seeded.sanic_app.ctx.scans.flush()
    assert await ScanDaily.filter(slug=slug).count() == 0


async def test_subscribe_with_an_unknown_scene_still_explains(seeded, settings):
    content = text_of(await send(seeded, settings, event_xml(openid(), "subscribe", "qrscene_zzzzzzzz", at=at())))
    assert "该二维码已失效" in content


# ---------------------------------------------------------------- menu clicks and other events


async def _book(client, headers) -> dict[str, Any]:
    _, r = await client.post(
        "/api/v1/bookings",
        json={"matter_code": MATTER, "slot_id": SLOT},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return r.json


@pytest.mark.parametrize("how", ["click", "text"])
async def test_my_bookings_lists_the_bound_subscribers_bookings(seeded, settings, make_citizen, how):
    _, headers, oid = await subscriber(make_citizen, settings)
    await _book(seeded, headers)
    _, other_headers, _ = await subscriber(make_citizen, settings)
    await _book(seeded, other_headers)  # someone else's booking is not listed
    xml = event_xml(oid, "CLICK", "MY_BOOKINGS", at=at()) if how == "click" else text_xml(oid, "预约", msg_id())
    content = text_of(await send(seeded, settings, xml))
    assert content.startswith("您的预约：")
    lines = [line for line in content.splitlines() if line.startswith("· ")]
    assert lines == [f"· {MATTER_NAME}：10-08 09:00–09:30 张家界市政务服务中心"]


async def test_my_bookings_of_a_bound_subscriber_without_bookings(seeded, settings, make_citizen):
    _, _, oid = await subscriber(make_citizen, settings)
    content = text_of(await send(seeded, settings, event_xml(oid, "CLICK", "MY_BOOKINGS", at=at())))
    assert content.startswith("您当前没有待办理的预约")


@pytest.mark.parametrize("how", ["click", "text"])
async def test_my_cases_lists_the_bound_subscribers_cases(seeded, settings, make_citizen, how):
    _, headers, oid = await subscriber(make_citizen, settings)
    case_no = (await case_helpers.submit(seeded, headers))["case_no"]
    _, other_headers, _ = await subscriber(make_citizen, settings)
    other_no = (await case_helpers.submit(seeded, other_headers))["case_no"]
    xml = event_xml(oid, "CLICK", "MY_CASES", at=at()) if how == "click" else text_xml(oid, "进度", msg_id())
    content = text_of(await send(seeded, settings, xml))
    assert content.startswith("您的办件：")
    assert f"· {case_no} {MATTER_NAME}：已提交，待受理，预计 2026-10-08 前" in content
    assert other_no not in content


async def test_my_cases_of_a_bound_subscriber_without_cases(seeded, settings, make_citizen):
    _, _, oid = await subscriber(make_citizen, settings)
    content = text_of(await send(seeded, settings, event_xml(oid, "CLICK", "MY_CASES", at=at())))
    assert content == "您还没有网上申报的办件。"


@pytest.mark.parametrize(
    ("xml", "what"),
    [
        (lambda oid: event_xml(oid, "CLICK", "MY_BOOKINGS", at=at()), "预约"),
        (lambda oid: event_xml(oid, "CLICK", "MY_CASES", at=at()), "办件"),
        (lambda oid: text_xml(oid, "预约", msg_id()), "预约"),
        (lambda oid: text_xml(oid, "我的预约", msg_id()), "预约"),
        (lambda oid: text_xml(oid, "进度", msg_id()), "办件"),
        (lambda oid: text_xml(oid, "我的办件", msg_id()), "办件"),
    ],
)
async def test_an_unbound_subscriber_is_asked_to_sign_in(seeded, settings, make_citizen, xml, what):
    _, headers = await make_citizen()
    await _book(seeded, headers)  # a citizen with data, but not bound to this openid
    content = text_of(await send(seeded, settings, xml(openid())))
    assert content == f"请先登录后查看您的{what}：{settings.base_url}{SIGN_IN_PATH}"


async def test_an_unsubscribed_but_bound_citizen_still_reads_their_own_data(seeded, settings, make_citizen):
    # Only pushes stop on unsubscribe; a follower again sees their bookings at once.
    _, headers, oid = await subscriber(make_citizen, settings)
    await _book(seeded, headers)
    await ChannelBinding.filter(openid=oid).update(subscribed=False)
    assert MATTER_NAME in text_of(await send(seeded, settings, event_xml(oid, "CLICK", "MY_BOOKINGS", at=at())))


async def test_search_help_click_answers_help(seeded, settings):
    assert text_of(await send(seeded, settings, event_xml(openid(), "CLICK", "SEARCH_HELP", at=at()))) == HELP


@pytest.mark.parametrize(
    "xml",
    [
        lambda oid: event_xml(oid, "VIEW", "http://testserver/m", at=at()),
        lambda oid: event_xml(oid, "CLICK", "NO_SUCH_KEY", at=at()),
        lambda oid: event_xml(oid, "CLICK", at=at()),
        lambda oid: event_xml(oid, "weird_event", "x", at=at()),
        lambda oid: event_xml(oid, "LOCATION", at=at()),
        lambda oid: event_xml(oid, "TEMPLATESENDJOBFINISH", at=at()),
        lambda oid: (
            f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><FromUserName><![CDATA[{oid}]]></FromUserName>"
            f"<CreateTime>{at()}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            "<PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"
            f"<MsgId>{msg_id()}</MsgId></xml>"
        ),
        lambda oid: (
            f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><FromUserName><![CDATA[{oid}]]></FromUserName>"
            f"<CreateTime>{at()}</CreateTime><MsgType><![CDATA[somethingnew]]></MsgType>"
            f"<MsgId>{msg_id()}</MsgId></xml>"
        ),
    ],
    ids=["view", "click-unknown-key", "click-no-key", "weird-event", "location", "template-finished", "image", "new"],
)
@pytest.mark.parametrize("mode", ["raw", "aes"])
async def test_events_with_nothing_to_say_answer_success(seeded, settings, calls, xml, mode):
    assert await send(seeded, settings, xml(openid()), mode) is None
    assert len(calls) == 1  # taken, and answered with nothing


# ---------------------------------------------------------------- text: keywords


async def test_keyword_answers_at_most_three_best_matches(client, settings, fake_clock):
    names = ["营业执照设立登记", "营业执照变更登记", "营业执照注销登记", "营业执照遗失补领", "营业执照备案"]
    entries = [factories.entry(f"4308-XK-SS-{i:03d}", name=name) for i, name in enumerate(names, start=1)]
    await catalogue.import_catalogue(
        client.sanic_app.ctx.catalogue,
        data=factories.catalogue(*entries, factories.entry("4308-XK-SS-100", name="食品经营许可")),
    )
    items = articles(await send(client, settings, text_xml(openid(), "营业执照", msg_id())))
    assert len(items) == 3
    codes = []
    for item in items:
        assert "营业执照" in item["Title"]
        assert item["Url"].startswith(f"{settings.base_url}/m/4308-XK-SS-")
        codes.append(item["Url"].rsplit("/", 1)[1])
    assert len(set(codes)) == 3 and "4308-XK-SS-100" not in codes


@pytest.mark.parametrize("mode", MODES)
async def test_keyword_with_one_match_answers_its_guide(seeded, settings, mode):
    [item] = articles(await send(seeded, settings, text_xml(openid(), "公积金", msg_id()), mode))
    assert item["Title"] == "住房公积金提取"
    assert item["Url"] == f"{settings.base_url}/m/{case_helpers.OTHER_MATTER}"
    assert "住房公积金管理中心" in item["Description"]


async def test_keyword_without_a_match_answers_help(seeded, settings):
    content = text_of(await send(seeded, settings, text_xml(openid(), "火星移民", msg_id())))
    assert content == f"没有找到与“火星移民”相关的事项。\n\n{HELP}"


@pytest.mark.parametrize("content", ["帮助", "help", "你好", "？"])
async def test_greetings_answer_help(seeded, settings, content):
    assert text_of(await send(seeded, settings, text_xml(openid(), content, msg_id()))) == HELP


async def test_keyword_with_like_wildcards_matches_literally(seeded, settings):
    content = text_of(await send(seeded, settings, text_xml(openid(), "%", msg_id())))
    assert content.startswith("没有找到与“%”相关的事项")


# ---------------------------------------------------------------- text: case progress


def _other_code(code: str) -> str:
    """A well-formed query code that is not this one."""
    return next(c * 8 for c in QUERY_ALPHABET if c * 8 != code)


@pytest.mark.parametrize("mode", MODES)
async def test_case_number_and_query_code_answer_status_and_next_date(seeded, settings, make_citizen, mode):
    _, headers = await make_citizen()
    case = await case_helpers.submit(seeded, headers)
    content = text_of(
        await send(seeded, settings, text_xml(openid(), f"{case['case_no']} {case['query_code']}", msg_id()), mode)
    )
    lines = content.splitlines()
    assert lines[0] == f"办件 {case['case_no']}（{MATTER_NAME}）"
    assert lines[1] == "当前状态：已提交，待受理"
    assert lines[2] == "下一步：窗口受理，预计 2026-10-08 前"
    assert lines[3].startswith("最新进展（09-30 10:00）")


async def test_case_query_accepts_lowercase_and_other_separators(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    case = await case_helpers.submit(seeded, headers)
    text = f"查询 {case['case_no'].lower()}，{case['query_code'].lower()}"
    content = text_of(await send(seeded, settings, text_xml(openid(), text, msg_id())))
    assert content.startswith(f"办件 {case['case_no']}（{MATTER_NAME}）")


async def test_case_query_after_acceptance_shows_the_decision_due_date(seeded, settings, make_citizen, make_staff):
    _, headers = await make_citizen()
    _, staff = await make_staff("reviewer", departments=["scjgj"])
    case = await case_helpers.submit(seeded, headers)
    await case_helpers.step(seeded, headers, staff, case["case_no"], "accept")
    due = (await case_helpers.staff_case(seeded, staff, case["case_no"]))["next_step"]["expected_by"]
    assert due
    content = text_of(
        await send(seeded, settings, text_xml(openid(), f"{case['case_no']} {case['query_code']}", msg_id()))
    )
    assert "当前状态：已受理" in content
    assert f"下一步：审批决定，预计 {due} 前" in content


async def test_wrong_query_code_answers_exactly_like_an_unknown_case(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    case = await case_helpers.submit(seeded, headers)
    wrong = _other_code(case["query_code"])
    unknown_no = case["case_no"][:-6] + ("999999" if not case["case_no"].endswith("999999") else "999998")

    wrong_code = text_of(await send(seeded, settings, text_xml(openid(), f"{case['case_no']} {wrong}", msg_id())))
    unknown = text_of(await send(seeded, settings, text_xml(openid(), f"{unknown_no} {wrong}", msg_id())))
    assert wrong_code == unknown == NOT_FOUND_CASE
    assert case["case_no"] not in wrong_code and MATTER_NAME not in wrong_code


@pytest.mark.parametrize("mode", MODES)
async def test_bound_subscriber_asks_with_the_case_number_alone(seeded, settings, make_citizen, mode):
    _, headers, oid = await subscriber(make_citizen, settings)
    case = await case_helpers.submit(seeded, headers)
    content = text_of(await send(seeded, settings, text_xml(oid, case["case_no"], msg_id()), mode))
    assert content.startswith(f"办件 {case['case_no']}（{MATTER_NAME}）\n当前状态：已提交，待受理")
    assert "下一步：窗口受理，预计 2026-10-08 前" in content


async def test_someone_elses_case_number_alone_is_not_found(seeded, settings, make_citizen):
    _, owner_headers, _ = await subscriber(make_citizen, settings)
    case = await case_helpers.submit(seeded, owner_headers)
    _, _, stranger = await subscriber(make_citizen, settings)
    unknown_no = case["case_no"][:-6] + "999999"

    theirs = text_of(await send(seeded, settings, text_xml(stranger, case["case_no"], msg_id())))
    unbound = text_of(await send(seeded, settings, text_xml(openid(), case["case_no"], msg_id())))
    unknown = text_of(await send(seeded, settings, text_xml(stranger, unknown_no, msg_id())))
    assert theirs == unbound == unknown == NOT_FOUND_CASE


async def test_bound_subscriber_with_a_wrong_code_for_their_own_case_is_not_found(seeded, settings, make_citizen):
    # A query code given is checked even when the sender owns the case.
    _, headers, oid = await subscriber(make_citizen, settings)
    case = await case_helpers.submit(seeded, headers)
    wrong = _other_code(case["query_code"])
    assert text_of(await send(seeded, settings, text_xml(oid, f"{case['case_no']} {wrong}", msg_id()))) == (
        NOT_FOUND_CASE
    )


@pytest.mark.parametrize(
    "template",
    ["进度{no} {code}", "办件{no}，查询码{code}", "{no}查询码{code}", "查询办件{no}（查询码：{code}）"],
    ids=["word-before", "comma", "word-between", "parentheses"],
)
async def test_case_number_and_code_written_next_to_chinese_text_are_recognised(
    seeded, settings, make_citizen, template
):
    # People type 编号 and 查询码 straight after Chinese words, without spaces.
    _, headers = await make_citizen()
    case = await case_helpers.submit(seeded, headers)
    text = template.format(no=case["case_no"], code=case["query_code"])
    content = text_of(await send(seeded, settings, text_xml(openid(), text, msg_id())))
    assert content.startswith(f"办件 {case['case_no']}（{MATTER_NAME}）\n当前状态：已提交，待受理"), content
