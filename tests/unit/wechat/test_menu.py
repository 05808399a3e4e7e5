"""The custom menu: WeChat's rules checked before sending, published through the fake WeChat API."""

from __future__ import annotations

import copy
import json

import pytest

from app import cli
from app.wechat import menu


def test_default_menu_passes_and_names_our_pages(settings):
    data = menu.load(None, settings)
    assert data["button"][0]["url"] == f"{settings.base_url}/m"
    keys = [b.get("key") for top in data["button"] for b in top.get("sub_button", [top])]
    assert {"MY_BOOKINGS", "MY_CASES", "SEARCH_HELP"} <= set(keys)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["button"].extend([m["button"][0]] * 3), "1 to 3 top-level"),
        (lambda m: m["button"][0].update(name="办事指南办事指南办事指南"), "longer than 16 bytes"),
        (lambda m: m["button"][0].pop("url"), "needs url"),
        (lambda m: m["button"][0].update(url="javascript:alert(1)"), "absolute http"),
        (lambda m: m["button"][2].update(type="scancode"), "type must be"),
        (lambda m: m["button"][1]["sub_button"].extend([{"type": "click", "name": "x", "key": "k"}] * 3), "1 to 5"),
        (lambda m: m["button"][2].update(key="k" * 129), "longer than 128 bytes"),
    ],
)
def test_menus_breaking_wechat_rules_are_refused(settings, change, message):
    data = copy.deepcopy(menu.load(None, settings))
    change(data)
    with pytest.raises(menu.MenuInvalid, match=message):
        menu.check(data)


async def test_publish_reaches_wechat(settings, fake, wechat):
    data = menu.load(None, settings)
    await menu.publish(wechat, data)
    assert fake.menus[settings.wechat_mp_appid] == data


def test_cli_publishes_a_file_and_refuses_a_bad_one(settings, fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.Settings, "from_env", classmethod(lambda cls: settings))
    good = tmp_path / "menu.json"
    good.write_text(json.dumps({"button": [{"type": "view", "name": "首页", "url": "{base_url}/m"}]}), "utf-8")
    assert cli.main(["wechat", "menu", "publish", str(good)]) == 0
    assert fake.menus[settings.wechat_mp_appid]["button"][0]["url"] == f"{settings.base_url}/m"
    bad = tmp_path / "bad.json"
    bad.write_text('{"button": []}', "utf-8")
    assert cli.main(["wechat", "menu", "publish", str(bad)]) == 1
    assert "1 to 3 top-level" in capsys.readouterr().err
