"""Per-worker caches whose namespaces are invalidated on every worker through the shared store.

A write bumps the namespace's generation counter in Redis; each worker compares the generations
it last saw on a short period (the scheduler's `cache-sync` tick) and drops what changed. Polling
a handful of counters is cheaper and more robust than pub/sub (no subscription to lose on a
reconnect), and bounds staleness by the tick period. Entries also expire after `ttl` seconds, which
bounds staleness when an invalidation cannot be delivered (the store was down, or a CLI process
wrote with its own in-process store).

A value read from the database is only cached if no invalidation of its namespace was seen while
it was being read (`epoch()` before the read, `put(..., epoch=...)` after it).

Namespaces with many independent entries (one per citizen) can also be invalidated key by key:
the key is appended to a sorted set scored by a sequence number, and each tick reads only what was
appended since the worker's last look; a worker that fell behind the retained window drops the
whole namespace.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from app.store import Store

log = logging.getLogger("app.cache")

_GEN_PREFIX = "cachegen:"
_KEYS_PREFIX = "cachekeys:"
_SEQ_PREFIX = "cacheseq:"
KEY_WINDOW = 10_000  # key invalidations kept in the store per namespace


class LocalCache:
    """A bounded per-worker cache, one LRU map per namespace."""

    def __init__(self, store: Store, *, max_entries: int = 20_000, ttl: float = 300.0) -> None:
        self._store = store
        self._max = max_entries
        self._limits: dict[str, int] = {}  # namespaces bounded tighter than max_entries (limit())
        self._ttl = ttl
        self._maps: dict[str, OrderedDict[Any, tuple[float, Any]]] = {}
        self._seen: dict[str, bytes | None] = {}
        self._epochs: dict[str, int] = {}
        self._key_seen: dict[str, int] = {}  # per keyed namespace: the last sequence number applied

    def limit(self, namespace: str, max_entries: int) -> None:
        """Bound one namespace below the cache-wide `max_entries` (its least recently used entries go first)."""
        self._limits[namespace] = max(min(max_entries, self._max), 1)
        bucket = self._maps.get(namespace)
        while bucket is not None and len(bucket) > self._limits[namespace]:
            bucket.popitem(last=False)

    def size(self, namespace: str) -> int:
        """How many entries a namespace holds here (expired ones included until they are read or pushed out)."""
        return len(self._maps.get(namespace, ()))

    def epoch(self, namespace: str) -> int:
        """A marker that changes whenever the namespace is dropped here (take it before a read)."""
        self._seen.setdefault(namespace, None)
        return self._epochs.get(namespace, 0)

    def epochs(self, namespaces: tuple[str, ...]) -> tuple[int, ...]:
        """`epoch()` of each namespace, in one call (a derived entry's freshness check on every cached read)."""
        seen = self._seen
        for namespace in namespaces:
            if namespace not in seen:
                seen[namespace] = None
        get = self._epochs.get
        return tuple([get(namespace, 0) for namespace in namespaces])

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
        if len(bucket) > self._limits.get(namespace, self._max):
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
        previous = self._seen.get(namespace)
        try:
            generation = int(await self._store.incr(_GEN_PREFIX + namespace))
        except Exception:  # the store being down must not fail the write that called us
            log.warning("cache invalidation of %s not published: store unavailable", namespace)
            return
        if previous is None or generation != int(previous) + 1:
            # Another worker invalidated too since we last looked: what we cached meanwhile may
            # predate their write, so drop it as well.
            self.clear(namespace)
        self._seen[namespace] = str(generation).encode()

    def track_keys(self, namespace: str) -> None:
        """Follow key-level invalidations of a namespace (call once at start)."""
        self._key_seen.setdefault(namespace, -1)

    def drop_key(self, namespace: str, key: Any) -> None:
        """Drop one key here (reads in flight for the namespace will not be cached)."""
        bucket = self._maps.get(namespace)
        if bucket is not None:
            bucket.pop(key, None)
        self._epochs[namespace] = self._epochs.get(namespace, 0) + 1

    async def invalidate_key(self, namespace: str, key: str) -> None:
        """Drop one key here and on every other worker."""
        self.drop_key(namespace, key)
        try:
            seq = await self._store.incr(_SEQ_PREFIX + namespace)
            async with self._store.pipeline(transaction=False) as pipe:
                pipe.zadd(_KEYS_PREFIX + namespace, {key: seq})
                pipe.zremrangebyrank(_KEYS_PREFIX + namespace, 0, -KEY_WINDOW - 1)
                await pipe.execute()
        except Exception:
            log.warning("key invalidation in %s not published: store unavailable", namespace)

    async def _sync_keys(self) -> None:
        for namespace, last in list(self._key_seen.items()):
            zkey = _KEYS_PREFIX + namespace
            if last < 0:
                # First look: start from the current head, nothing cached yet can be stale.
                head = await self._store.get(_SEQ_PREFIX + namespace)
                self._key_seen[namespace] = int(head or 0)
                continue
            changed = await self._store.zrangebyscore(zkey, f"({last}", "+inf", withscores=True)
            if not changed:
                continue
            oldest = await self._store.zrange(zkey, 0, 0, withscores=True)
            bucket = self._maps.get(namespace, {})
            if oldest and oldest[0][1] > last + 1:
                self.clear(namespace)  # fell behind the retained window: drop everything
            else:
                for member, _ in changed:
                    bucket.pop(member.decode() if isinstance(member, bytes) else member, None)
                self._epochs[namespace] = self._epochs.get(namespace, 0) + 1
            self._key_seen[namespace] = int(max(score for _, score in changed))

    async def sync(self) -> None:
        """Drop namespaces whose generation moved, and keys invalidated elsewhere (run every tick)."""
        if self._key_seen:
            try:
                await self._sync_keys()
            except Exception:
                for namespace in self._key_seen:
                    self.clear(namespace)
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
