"""What the booking services need from the running app (built in app/bootstrap.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.cache import LocalCache
from app.settings import Settings
from auth.pii import PiiCipher
from auth.tokens import TokenAuthority


@dataclass(frozen=True)
class BookingDeps:
    """The booking domain's infrastructure: settings, the worker's cache, the signing keys, the PII cipher."""

    settings: Settings
    cache: LocalCache
    tokens: TokenAuthority
    cipher: PiiCipher
