"""The official account's custom menu: checked against WeChat's limits, then published through our client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wechat.client import WeChatClient

DEFAULT_MENU = Path(__file__).with_name("menu.json")
_TYPES = {"click": "key", "view": "url", "miniprogram": "appid"}


class MenuInvalid(ValueError):
    """The menu file breaks one of WeChat's rules (the message says which)."""


def load(path: Path | None, settings: Settings) -> dict[str, Any]:
    """Read a menu file (`{base_url}` in it becomes the service's base URL) and check it."""
    try:
        menu = json.loads((path or DEFAULT_MENU).read_text("utf-8"))
    except ValueError as exc:
        raise MenuInvalid(f"not JSON: {exc}") from None
    menu = _fill(menu, settings.base_url)  # in the parsed values: a base URL cannot break the JSON
    check(menu)
    return menu


def _fill(node: Any, base_url: str) -> Any:
    if isinstance(node, str):
        return node.replace("{base_url}", base_url)
    if isinstance(node, list):
        return [_fill(v, base_url) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, base_url) for k, v in node.items()}
    return node


def _button(b: Any, where: str, *, top: bool) -> None:
    if not isinstance(b, dict) or not isinstance(b.get("name"), str) or not b["name"]:
        raise MenuInvalid(f"{where}: every button needs a name")
    limit = 16 if top else 60
    if len(b["name"].encode()) > limit:
        raise MenuInvalid(f"{where}: name {b['name']!r} is longer than {limit} bytes")
    if top and "sub_button" in b:
        subs = b["sub_button"]
        if not isinstance(subs, list) or not 1 <= len(subs) <= 5:
            raise MenuInvalid(f"{where}: 1 to 5 sub-buttons")
        for i, sub in enumerate(subs):
            _button(sub, f"{where}.sub_button[{i}]", top=False)
        return
    field = _TYPES.get(b.get("type"))
    if field is None:
        raise MenuInvalid(f"{where}: type must be one of {', '.join(_TYPES)}")
    if not isinstance(b.get(field), str) or not b[field]:
        raise MenuInvalid(f"{where}: a {b['type']} button needs {field}")
    if b["type"] == "miniprogram" and not all(isinstance(b.get(f), str) and b[f] for f in ("url", "pagepath")):
        raise MenuInvalid(f"{where}: a miniprogram button needs appid, pagepath and a fallback url")
    if field == "key" and len(b["key"].encode()) > 128:
        raise MenuInvalid(f"{where}: key is longer than 128 bytes")
    if field == "url" and (len(b["url"].encode()) > 1024 or not b["url"].startswith(("http://", "https://"))):
        raise MenuInvalid(f"{where}: url must be an absolute http(s) URL of at most 1024 bytes")


def check(menu: Any) -> None:
    """WeChat's menu rules: 1–3 top buttons, 1–5 under each, names and keys within their byte limits."""
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise MenuInvalid("button: 1 to 3 top-level buttons")
    for i, b in enumerate(buttons):
        _button(b, f"button[{i}]", top=True)


async def publish(client: WeChatClient, menu: dict[str, Any]) -> None:
    """Replace the official account's menu."""
    await client.create_menu(menu=menu)
