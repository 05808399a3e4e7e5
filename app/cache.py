"""Per-worker caches whose namespaces are invalidated on every worker through the shared store.

A write bumps the namespace's generation counter in Redis; each worker compares the generations
it last saw on a short period (the scheduler's `cache-sync` tick) and drops what changed. Polling
a handful of counters is cheaper and more robust than pub/sub (no subscription to lose on a
reconnect), and bounds staleness by the tick period.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from app.store import Store

log = logging.getLogger("app.cache")

_GEN_PREFIX = "cachegen:"


class LocalCache:
    """A bounded per-worker cache, one LRU map per namespace."""

    def __init__(self, store: Store, *, max_entries: int = 20_000) -> None:
        self._store = store
        self._max = max_entries
        self._maps: dict[str, OrderedDict[Any, Any]] = {}
        self._seen: dict[str, bytes | None] = {}

    def get(self, namespace: str, key: Any) -> Any | None:
        """The cached value, or None."""
        bucket = self._maps.get(namespace)
        if bucket is None:
            return None
        value = bucket.get(key)
        if value is not None:
            bucket.move_to_end(key)
        return value

    def put(self, namespace: str, key: Any, value: Any) -> None:
        """Cache a value; the oldest entry of the namespace goes when it is full."""
        bucket = self._maps.setdefault(namespace, OrderedDict())
        bucket[key] = value
        bucket.move_to_end(key)
        if len(bucket) > self._max:
            bucket.popitem(last=False)
        self._seen.setdefault(namespace, None)

    def clear(self, namespace: str | None = None) -> None:
        """Drop one namespace locally, or everything."""
        if namespace is None:
            self._maps.clear()
        else:
            self._maps.pop(namespace, None)

    async def invalidate(self, namespace: str) -> None:
        """Drop a namespace here and tell every other worker to drop it too."""
        self.clear(namespace)
        try:
            self._seen[namespace] = str(await self._store.incr(_GEN_PREFIX + namespace)).encode()
        except Exception:  # the store being down must not fail the write that called us
            log.warning("cache invalidation of %s not published: store unavailable", namespace)

    async def sync(self) -> None:
        """Drop namespaces whose generation moved since the last look (run every tick)."""
        names = list(self._seen)
        if not names:
            return
        try:
            gens = await self._store.mget([_GEN_PREFIX + n for n in names])
        except Exception:
            # Without the store we cannot hear of others' writes: serve from the database.
            self.clear()
            return
        for name, gen in zip(names, gens, strict=False):
            gen = None if gen is None else (gen if isinstance(gen, bytes) else str(gen).encode())
            if gen != self._seen.get(name):
                self.clear(name)
                self._seen[name] = gen
