"""What the case services need: built once in app.bootstrap, passed as each service's first argument."""

from __future__ import annotations

from dataclasses import dataclass

from app.cache import LocalCache
from app.settings import Settings
from app.storage import MaterialStore
from app.store import Store
from auth.pii import PiiCipher
from auth.tokens import TokenAuthority


@dataclass(frozen=True)
class CaseDeps:
    """What the case services need."""

    settings: Settings
    cache: LocalCache
    tokens: TokenAuthority
    cipher: PiiCipher
    store: Store
    materials: MaterialStore  # where material files live (local directory or object store)
