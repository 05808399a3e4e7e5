"""A new subscriber is bound to the citizen who signed in elsewhere with the same unionid."""

from __future__ import annotations

import uuid

from auth.models import Channel, ChannelBinding, Citizen
from tests.api.wechat_messages import event_xml, open_reply, signed


async def subscribe(client, settings, openid: str) -> str:
    query, body = signed(settings, event_xml(openid, "subscribe"), mode="aes")
    _, r = await client.post("/wechat/callback", params=query, content=body)
    assert r.status_code == 200, r.text
    return open_reply(settings, r.content, query)["Content"]


async def test_subscriber_with_a_known_unionid_is_bound_and_not_asked_to_sign_in(client, settings, fake):
    citizen = await Citizen.create(id=uuid.uuid4(), unionid="o6_union_A")
    fake.users["oSubA"] = {"unionid": "o6_union_A"}
    text = await subscribe(client, settings, "oSubA")
    assert "请先登录" not in text
    binding = await ChannelBinding.get(openid="oSubA")
    assert binding.citizen_id == citizen.id and binding.channel == Channel.official_account
    assert binding.appid == settings.wechat_mp_appid and binding.subscribed
    assert any(r.path == "/cgi-bin/user/info" for r in fake.requests)


async def test_unknown_unionid_or_wechat_down_leaves_a_sign_in_link(client, settings, fake):
    fake.users["oSubB"] = {"unionid": "o6_nobody"}
    assert "请先登录" in await subscribe(client, settings, "oSubB")
    fake.stop()  # WeChat unreachable: the welcome still goes out at once
    assert "请先登录" in await subscribe(client, settings, "oSubC")
    assert not await ChannelBinding.exists(openid__in=["oSubB", "oSubC"])
