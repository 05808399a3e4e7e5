"""What the feedback services need: built once in app.bootstrap, passed as each service's first argument."""

from __future__ import annotations

from dataclasses import dataclass

from app.cache import LocalCache
from app.settings import Settings
from app.store import Store


@dataclass(frozen=True)
class FeedbackDeps:
    """What consultation and rating services need."""

    settings: Settings
    store: Store
    cache: LocalCache
