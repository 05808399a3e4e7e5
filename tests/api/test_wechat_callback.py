"""The official account's callback, fed messages built as WeChat builds them."""

from __future__ import annotations

import pytest

from app.matters import service as catalogue
from tests import factories
from tests.api.wechat_messages import event_xml, open_reply, signed, text_xml


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


async def post(client, query, body):
    _, r = await client.post("/wechat/callback", params=query, content=body)
    return r


@pytest.mark.parametrize("mode", ["raw", "compatible", "aes"])
async def test_keyword_answers_matching_guides_in_every_mode(seeded, settings, mode):
    query, body = signed(settings, text_xml("oUser1", "营业执照", 1001), mode=mode)
    r = await post(seeded, query, body)
    assert r.status_code == 200, r.text
    reply = open_reply(settings, r.content, query)
    assert reply["MsgType"] == "news" and reply["ToUserName"] == "oUser1"
    item = reply["Articles"]["item"]
    item = item[0] if isinstance(item, list) else item
    assert item["Title"] == "营业执照设立登记" and item["Url"].endswith("/m/4308-XK-SS-001")


async def test_same_msgid_three_times_is_processed_once(seeded, settings):
    answers = []
    for _ in range(3):
        query, body = signed(settings, text_xml("oUser2", "公积金", 2002))
        answers.append((await post(seeded, query, body)).content)
    assert answers[0] == answers[1] == answers[2] and b"news" in answers[0]


async def test_forged_and_replayed_requests_are_refused(seeded, settings):
    query, body = signed(settings, text_xml("oUser3", "你好", 3003))
    assert (await post(seeded, {**query, "signature": "0" * 40}, body)).status_code == 403
    first = await post(seeded, query, body)
    assert first.status_code == 200
    retry = await post(seeded, query, body)  # byte for byte again: WeChat's retry gets the first answer
    assert retry.status_code == 200 and retry.content == first.content
    other_query, other_body = signed(settings, text_xml("oUser3", "营业执照", 3006), nonce=query["nonce"])
    again = await post(seeded, other_query, other_body)  # the nonce with another message: a replay
    assert again.status_code == 403 and again.json["error"]["code"] == "WECHAT_NONCE_REUSED"
    old_query, old_body = signed(settings, text_xml("oUser3", "你好", 3004), timestamp="1700000000")
    assert (await post(seeded, old_query, old_body)).json["error"]["code"] == "WECHAT_TIMESTAMP_INVALID"
    q, b = signed(settings, text_xml("oUser3", "你好", 3005), mode="aes", appid="wxsomeoneelse")
    assert (await post(seeded, q, b)).json["error"]["code"] == "WECHAT_APPID_MISMATCH"


async def test_handshake(client, settings):
    query, _ = signed(settings, event_xml("o", "VIEW"))
    _, r = await client.get("/wechat/callback", params={**query, "echostr": "hello123"})
    assert r.status_code == 200 and r.text == "hello123"
    _, r = await client.get("/wechat/callback", params={**query, "signature": "x", "echostr": "hello123"})
    assert r.status_code == 403


@pytest.mark.parametrize("mode", ["raw", "aes"])
async def test_text_that_mentions_a_doctype_is_answered_not_refused(seeded, settings, mode):
    query, body = signed(settings, text_xml("oUser4", "<!DOCTYPE html> 是什么", 4004), mode=mode)
    r = await post(seeded, query, body)
    assert r.status_code == 200, r.text
    assert open_reply(settings, r.content, query)["MsgType"] == "text"


async def test_a_sender_other_than_the_query_names_is_refused(seeded, settings):
    query, body = signed(settings, text_xml("oRealSender", "营业执照", 5005))
    r = await post(seeded, {**query, "openid": "oSomeoneElse"}, body)
    assert r.status_code == 403 and r.json["error"]["code"] == "WECHAT_SIGNATURE_INVALID"


async def test_a_handshake_spends_its_nonce(client, settings):
    query, _ = signed(settings, event_xml("o", "VIEW"))
    _, r = await client.get("/wechat/callback", params={**query, "echostr": "e1"})
    assert r.status_code == 200
    _, again = await client.get("/wechat/callback", params={**query, "echostr": "e1"})
    assert again.status_code == 403 and again.json["error"]["code"] == "WECHAT_NONCE_REUSED"


@pytest.fixture
def encrypted_only(settings):

    return settings.replace(wechat_mp_encrypted_only=True)


async def test_safe_mode_refuses_plaintext(client, encrypted_only):
    from app.server import create_app
    from tests.conftest import AppClient

    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    strict = AppClient(create_app(encrypted_only))
    await strict.start()
    try:
        query, body = signed(encrypted_only, text_xml("oUser6", "营业执照", 6006))
        _, r = await strict.post("/wechat/callback", params=query, content=body)
        assert r.status_code == 403 and r.json["error"]["code"] == "WECHAT_PLAINTEXT_REFUSED"
        query, body = signed(encrypted_only, text_xml("oUser6", "营业执照", 6007), mode="aes")
        _, r = await strict.post("/wechat/callback", params=query, content=body)
        assert r.status_code == 200 and open_reply(encrypted_only, r.content, query)["MsgType"] == "news"
    finally:
        await strict.stop()


async def test_an_oversized_body_is_refused_before_it_is_read(seeded, settings):
    query, _ = signed(settings, text_xml("oUser7", "x", 7007))
    _, r = await seeded.post("/wechat/callback", params=query, content=b"<xml>" + b"x" * (1 << 20) + b"</xml>")
    assert r.status_code == 413 and r.json["error"]["code"] == "WECHAT_MESSAGE_TOO_LARGE"
