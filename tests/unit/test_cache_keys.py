"""Key-level invalidation of per-worker caches through the shared store."""

from __future__ import annotations

import pytest

from app.cache import KEY_WINDOW, LocalCache
from app.store import make_store

NS = "profiles"


@pytest.fixture
async def workers(settings):
    store = make_store(settings)
    a, b = LocalCache(store), LocalCache(store)
    for cache in (a, b):
        cache.track_keys(NS)
        await cache.sync()  # first look: start from the current head
    yield a, b
    await store.aclose()


async def test_a_key_invalidated_on_one_worker_is_dropped_on_the_other_after_a_tick(workers):
    a, b = workers
    for cache in (a, b):
        cache.put(NS, "c1", b"old-1")
        cache.put(NS, "c2", b"old-2")
    await a.invalidate_key(NS, "c1")
    assert a.get(NS, "c1") is None
    assert b.get(NS, "c1") == b"old-1"  # until b's tick
    await b.sync()
    assert b.get(NS, "c1") is None
    assert b.get(NS, "c2") == b"old-2"  # other keys stay cached


async def test_a_read_overlapping_a_key_invalidation_is_not_cached(workers):
    a, b = workers
    epoch = b.epoch(NS)  # b starts reading c1 from the database ...
    await a.invalidate_key(NS, "c1")  # ... a writes c1 ...
    await b.sync()  # ... b's tick runs before its read finishes
    b.put(NS, "c1", b"maybe-stale", epoch=epoch)
    assert b.get(NS, "c1") is None


async def test_a_worker_that_fell_behind_the_window_drops_the_namespace(workers, monkeypatch):
    import app.cache

    a, b = workers
    b.put(NS, "keep?", b"x")
    monkeypatch.setattr(app.cache, "KEY_WINDOW", 3)
    for n in range(10):
        await a.invalidate_key(NS, f"k{n}")
    await b.sync()
    assert b.get(NS, "keep?") is None
    assert KEY_WINDOW > 3


async def test_store_down_drops_keyed_namespaces(settings):

    from app.settings import Settings

    if not settings.redis_url:
        pytest.skip("the in-process store cannot go down")
    down = make_store(settings.replace(redis_url="redis://127.0.0.1:1/0"))
    cache = LocalCache(down)
    cache.track_keys(NS)
    cache.put(NS, "c1", b"x")
    await cache.sync()
    assert cache.get(NS, "c1") is None
    await cache.invalidate_key(NS, "c1")  # does not raise
    assert isinstance(settings, Settings)
