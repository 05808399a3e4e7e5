"""What identity services receive (`AuthDeps`, built in app/bootstrap.py) and what a sign-in answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.cache import LocalCache
from app.settings import Settings
from app.store import Store
from auth.pii import PiiCipher
from auth.realname import RealNameVerifier
from auth.sms import SmsSender
from auth.tokens import TokenAuthority


@dataclass(frozen=True)
class AuthDeps:
    """What identity services need from the running app."""

    settings: Settings
    store: Store
    cache: LocalCache
    tokens: TokenAuthority
    cipher: PiiCipher
    sms: SmsSender
    verifier: RealNameVerifier
    # app.wechat.client.WeChatClient; typed loosely so identity does not import the WeChat client.
    wechat: Any = None


@dataclass(frozen=True)
class TokenPair:
    """What a successful sign-in answers: an access token, its lifetime and the rotating refresh token."""

    access_token: str
    expires_in: int
    refresh_token: str
    audience: str
    subject: str
