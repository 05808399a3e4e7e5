"""What delivering notifications needs: the settings (template ids, app ids), the WeChat client and the SMS sender."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from app.wechat.client import WeChatClient
from auth.pii import PiiCipher
from auth.sms import SmsSender


@dataclass(frozen=True)
class NotifyDeps:
    """The outbox's delivery dependencies, built in app.bootstrap.

    `sms` is the sender sign-in codes go through too, and `cipher` decrypts the phone at send time;
    without them (None) citizens WeChat cannot reach are not texted.
    """

    settings: Settings
    wechat: WeChatClient
    sms: SmsSender | None = None
    cipher: PiiCipher | None = None
