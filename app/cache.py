"""Per-worker caches whose namespaces are invalidated on every worker through the shared store.

A write bumps the namespace's generation counter in Redis; each worker compares the generations
it last saw on a short period (the scheduler's `cache-sync` tick) and drops what changed. Polling
a handful of counters is cheaper and more robust than pub/sub (no subscription to lose on a
reconnect), and bounds staleness by the tick period. Entries also expire after `ttl` seconds, which
bounds staleness when an invalidation cannot be delivered (the store was down, or a CLI process
wrote with its own in-process store).

A value read from the database is only cached if no invalidation of its namespace was seen while
it was being read (`epoch()` before the read, `put(..., epoch=...)` after it).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from app.store import Store

log = logging.getLogger("app.cache")

_GEN_PREFIX = "cachegen:"


class LocalCache:
    """A bounded per-worker cache, one LRU map per namespace."""

    def __init__(self, store: Store, *, max_entries: int = 20_000, ttl: float = 300.0) -> None:
        self._store = store
        self._max = max_entries
        self._ttl = ttl
        self._maps: dict[str, OrderedDict[Any, tuple[float, Any]]] = {}
        self._seen: dict[str, bytes | None] = {}
        self._epochs: dict[str, int] = {}

    def epoch(self, namespace: str) -> int:
        """A marker that changes whenever the namespace is dropped here (take it before a read)."""
        self._seen.setdefault(namespace, None)
        return self._epochs.get(namespace, 0)

    def get(self, namespace: str, key: Any) -> Any | None:
        """The cached value, or None when absent or older than the TTL."""
        bucket = self._maps.get(namespace)
        if bucket is None:
            return None
        entry = bucket.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del bucket[key]
            return None
        bucket.move_to_end(key)
        return entry[1]

    def put(self, namespace: str, key: Any, value: Any, *, epoch: int | None = None) -> None:
        """Cache a value, unless the namespace was dropped since `epoch` (then the value may be stale)."""
        if epoch is not None and epoch != self._epochs.get(namespace, 0):
            return
        bucket = self._maps.setdefault(namespace, OrderedDict())
        bucket[key] = (time.monotonic() + self._ttl, value)
        bucket.move_to_end(key)
        if len(bucket) > self._max:
            bucket.popitem(last=False)
        self._seen.setdefault(namespace, None)

    def clear(self, namespace: str | None = None) -> None:
        """Drop one namespace locally, or everything."""
        names = list(self._maps) if namespace is None else [namespace]
        for name in names:
            self._maps.pop(name, None)
            self._epochs[name] = self._epochs.get(name, 0) + 1
        if namespace is None:
            for name in self._seen:
                self._epochs[name] = self._epochs.get(name, 0) + 1

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
        for name, gen in zip(names, gens, strict=True):
            gen = None if gen is None else (gen if isinstance(gen, bytes) else str(gen).encode())
            if gen != self._seen.get(name):
                self.clear(name)
                self._seen[name] = gen


_bus: LocalCache | None = None


def bind(cache: LocalCache) -> None:
    """Make this cache the process's invalidation bus (worker start, CLI start)."""
    global _bus
    _bus = cache


async def changed(namespace: str) -> None:
    """Services call this after a write that makes cached reads of a namespace stale."""
    if _bus is not None:
        await _bus.invalidate(namespace)
