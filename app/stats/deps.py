"""What the indicator services need: built once in app.bootstrap, passed as each service's first argument."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from app.store import Store


@dataclass(frozen=True)
class StatsDeps:
    """What the reform indicators need (the store caches the public dashboard's report)."""

    settings: Settings
    store: Store
