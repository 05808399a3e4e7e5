"""The official account answers a bundle (一件事) number with the whole: its stage, each department, the date."""

from __future__ import annotations

import pytest

from tests.api import case_helpers as h
from tests.api.test_bundles import ID, apply, ok, world  # noqa: F401  (the fixture)
from tests.api.test_wechat_events import msg_id, openid, send, text_of
from tests.api.wechat_messages import text_xml


@pytest.fixture
def settings(wechat_settings):
    return wechat_settings


async def test_the_official_account_answers_a_bundle_number_with_the_whole(world, wechat_settings):  # noqa: F811
    """A bundle number and its query code sent to the official account: the stage, each department, the date."""
    w = world
    case = await apply(w)
    no, code = case["case_no"], case["query_code"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    await w.later(days=8)
    await ok(await h.act(w.client, w.lead, f"{no}-01", "start_review"))
    await ok(await h.act(w.client, w.lead, f"{no}-01", "approve"))
    await ok(await h.act(w.client, w.fund, f"{no}-02", "request_correction", reason="身份证不清晰", materials=[ID]))
    reply = text_of(await send(w.client, wechat_settings, text_xml(openid(), f"{no} {code}", msg_id())))
    assert reply.startswith(f"办件 {no}（测试开办一件事）"), reply
    assert "正在办理第 2 阶段「后续登记」" in reply
    assert "· 住房公积金单位缴存登记：待补正材料" in reply and "· 发票领用：已受理" in reply
    assert f"{no}-02" in reply and "补正" in reply
    assert "全部办结" in reply
