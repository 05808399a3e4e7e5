"""What delivering notifications needs: the settings (template ids, app ids) and the WeChat client."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from app.wechat.client import WeChatClient


@dataclass(frozen=True)
class NotifyDeps:
    """The outbox's delivery dependencies, built in app.bootstrap."""

    settings: Settings
    wechat: WeChatClient
