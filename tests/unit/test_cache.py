"""LocalCache: per-worker LRU maps invalidated across workers through the shared store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from app.cache import LocalCache
from app.matters import guides, service
from app.settings import Settings
from app.store import make_store
from tests import factories

NS = "guide"
DOWN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[tuple[LocalCache, LocalCache]]:
    """Two workers' caches sharing one store (fakeredis in-process, or TEST_REDIS_URL)."""
    a, b = make_store(settings), make_store(settings)
    yield LocalCache(a), LocalCache(b)
    await a.aclose()
    await b.aclose()


@pytest.fixture
async def down_cache(settings: Settings) -> AsyncIterator[LocalCache]:
    """A cache whose store cannot be reached."""
    store = make_store(settings.replace(redis_url=DOWN_REDIS))
    yield LocalCache(store)
    await store.aclose()


def test_get_and_put():
    cache = LocalCache(store=None)  # type: ignore[arg-type]  # no store needed for local use
    assert cache.get(NS, "a") is None
    cache.put(NS, "a", 1)
    cache.put("other", "a", 2)
    assert cache.get(NS, "a") == 1
    assert cache.get("other", "a") == 2
    assert cache.get(NS, "b") is None
    cache.put(NS, "a", 3)
    assert cache.get(NS, "a") == 3
    cache.clear(NS)
    assert cache.get(NS, "a") is None
    assert cache.get("other", "a") == 2
    cache.clear()
    assert cache.get("other", "a") is None


async def test_invalidate_on_one_worker_reaches_the_other_after_sync(workers):
    a, b = workers
    a.put(NS, "k", "old-a")
    b.put(NS, "k", "old-b")
    b.put("other", "k", "kept")
    await a.sync()
    await b.sync()
    assert b.get(NS, "k") == "old-b"  # nothing changed yet: syncing keeps entries

    await a.invalidate(NS)
    assert a.get(NS, "k") is None  # the writer drops at once
    assert b.get(NS, "k") == "old-b"  # the other worker hears of it on its next tick
    await b.sync()
    assert b.get(NS, "k") is None
    assert b.get("other", "k") == "kept"  # other namespaces are untouched


async def test_the_writer_does_not_drop_its_fresh_entries_on_its_own_sync(workers):
    a, _ = workers
    a.put(NS, "k", "old")
    await a.invalidate(NS)
    a.put(NS, "k", "new")
    await a.sync()
    assert a.get(NS, "k") == "new"


async def test_every_invalidation_is_heard(workers):
    a, b = workers
    b.put(NS, "k", 1)
    for round_ in range(3):
        await a.invalidate(NS)
        await b.sync()
        assert b.get(NS, "k") is None, round_
        b.put(NS, "k", round_)
        await b.sync()  # no new invalidation: the entry stays
        assert b.get(NS, "k") == round_


async def test_invalidations_from_both_sides(workers):
    a, b = workers
    a.put(NS, "k", "a")
    b.put(NS, "k", "b")
    await b.invalidate(NS)
    await a.sync()
    assert a.get(NS, "k") is None
    a.put(NS, "k", "a2")
    b.put(NS, "k", "b2")
    await a.invalidate(NS)
    await b.sync()
    assert b.get(NS, "k") is None


async def test_store_down_sync_clears_everything(down_cache):
    down_cache.put(NS, "k", 1)
    down_cache.put("other", "k", 2)
    await down_cache.sync()
    assert down_cache.get(NS, "k") is None
    assert down_cache.get("other", "k") is None


async def test_store_down_invalidate_does_not_raise_and_drops_locally(down_cache):
    down_cache.put(NS, "k", 1)
    down_cache.put("other", "k", 2)
    await down_cache.invalidate(NS)
    assert down_cache.get(NS, "k") is None
    assert down_cache.get("other", "k") == 2


async def test_sync_without_cached_namespaces_does_not_need_the_store(down_cache):
    await down_cache.sync()  # nothing cached yet: nothing to ask the store
    down_cache.put(NS, "k", 1)
    assert down_cache.get(NS, "k") == 1


def test_lru_bound():
    cache = LocalCache(store=None, max_entries=3)  # type: ignore[arg-type]
    for key in "abc":
        cache.put(NS, key, key.upper())
    assert cache.get(NS, "a") == "A"  # a is now the most recently used
    cache.put(NS, "d", "D")
    assert cache.get(NS, "b") is None  # the least recently used went
    assert [cache.get(NS, k) for k in "acd"] == ["A", "C", "D"]
    cache.put(NS, "e", "E")
    assert cache.get(NS, "a") is None  # order after the reads above: a, c, d -> a is oldest
    assert [cache.get(NS, k) for k in "cde"] == ["C", "D", "E"]


def test_lru_bound_is_per_namespace_and_overwrites_do_not_grow():
    cache = LocalCache(store=None, max_entries=2)  # type: ignore[arg-type]
    cache.put(NS, "a", 1)
    cache.put(NS, "b", 2)
    for n in range(5):
        cache.put(NS, "b", n)
    assert cache.get(NS, "a") == 1
    cache.put("other", "x", 1)
    cache.put("other", "y", 2)
    cache.put("other", "z", 3)
    assert cache.get("other", "x") is None
    assert cache.get(NS, "a") == 1
    assert cache.get(NS, "b") == 4


def test_limit_bounds_one_namespace_below_the_cache_wide_bound():
    cache = LocalCache(store=None, max_entries=5)  # type: ignore[arg-type]
    for n in range(4):
        cache.put(NS, n, n)
    cache.limit(NS, 2)  # an existing namespace is cut down at once, oldest first
    assert cache.size(NS) == 2 and cache.get(NS, 0) is None and cache.get(NS, 3) == 3
    for n in range(10, 15):
        cache.put(NS, n, n)
        cache.put("other", n, n)
    assert cache.size(NS) == 2 and [cache.get(NS, k) for k in (13, 14)] == [13, 14]
    assert cache.size("other") == 5  # the others keep the cache-wide bound
    cache.limit("other", 50)  # never above the cache-wide bound
    for n in range(20, 30):
        cache.put("other", n, n)
    assert cache.size("other") == 5


# ---------------------------------------------------------------- epochs: no stale value cached by a racing read


def test_put_with_the_current_epoch_caches():
    cache = LocalCache(store=None)  # type: ignore[arg-type]
    epoch = cache.epoch(NS)
    cache.put(NS, "k", 1, epoch=epoch)
    assert cache.get(NS, "k") == 1
    assert cache.epoch(NS) == epoch  # a put does not move the epoch


def test_put_after_a_clear_of_its_namespace_is_dropped():
    cache = LocalCache(store=None)  # type: ignore[arg-type]
    epoch = cache.epoch(NS)
    other = cache.epoch("other")
    cache.clear(NS)  # an invalidation arrives while the value is being read
    assert cache.epoch(NS) != epoch
    cache.put(NS, "k", "stale", epoch=epoch)
    assert cache.get(NS, "k") is None
    cache.put("other", "k", "fine", epoch=other)  # other namespaces are not affected
    assert cache.get("other", "k") == "fine"
    cache.put(NS, "k", "fresh", epoch=cache.epoch(NS))
    assert cache.get(NS, "k") == "fresh"


def test_clear_all_moves_every_epoch_even_of_empty_namespaces():
    cache = LocalCache(store=None)  # type: ignore[arg-type]
    epochs = {name: cache.epoch(name) for name in (NS, "other")}  # nothing cached yet
    cache.clear()
    for name, epoch in epochs.items():
        cache.put(name, "k", "stale", epoch=epoch)
        assert cache.get(name, "k") is None, name


async def test_put_after_another_workers_invalidation_was_synced_is_dropped(workers):
    reader, writer = workers
    epoch = reader.epoch(NS)  # before the read
    await writer.invalidate(NS)
    await reader.sync()  # the tick runs while the read is in flight
    reader.put(NS, "k", "stale", epoch=epoch)
    assert reader.get(NS, "k") is None


async def test_put_is_dropped_when_the_store_went_down_during_the_read(down_cache):
    epoch = down_cache.epoch(NS)
    await down_cache.sync()  # cannot hear of others' writes: drops everything
    down_cache.put(NS, "k", "maybe-stale", epoch=epoch)
    assert down_cache.get(NS, "k") is None


def on_cache(services, cache: LocalCache) -> service.CatalogueDeps:
    """The catalogue's dependencies of a worker whose cache is this one."""
    return dataclasses.replace(services.catalogue, cache=cache)


async def test_a_guide_read_overlapping_a_publish_is_not_cached_stale(workers, monkeypatch, services):
    reader, writer = workers
    deps = on_cache(services, writer)  # the publishing worker announces through its own cache
    base = "http://testserver"
    await service.import_catalogue(deps, data=factories.small_catalogue())
    await guides.guide_document(reader, "4308-XK-SS-002", base_url=base)  # the reader caches guides already
    await reader.sync()
    real_get_guide = service.get_guide

    async def read_during_a_publish(code: str) -> service.GuideVersion:
        guide = await real_get_guide(code)  # the read sees version 1 ...
        # ... and before it is cached, another worker publishes version 2 and this worker's tick runs
        await service.save_draft(code="4308-XK-SS-001", content=factories.guide(name="第二版"))
        await service.publish(deps, code="4308-XK-SS-001", no=2)  # the service announces the change itself
        await reader.sync()
        return guide

    monkeypatch.setattr(service, "get_guide", read_during_a_publish)
    _, _, first = await guides.guide_document(reader, "4308-XK-SS-001", base_url=base)
    assert first["version"] == 1  # served while the publish was in flight: fine
    monkeypatch.setattr(service, "get_guide", real_get_guide)
    assert reader.get(guides.NAMESPACE, ("json", "4308-XK-SS-001")) is None  # ... but not cached

    await reader.sync()  # one more tick
    _, _, later = await guides.guide_document(reader, "4308-XK-SS-001", base_url=base)
    assert later["version"] == 2


async def test_an_invalidation_from_another_worker_during_our_own_is_not_swallowed(workers):
    a, b = workers
    a.put(NS, "k", "v0")
    await a.sync()
    await b.sync()
    real_incr = a._store.incr

    async def incr_while_others_work(name):
        epoch = a.epoch(NS)  # a request of worker a starts reading, after a's clear ...
        old = "read before b's write"
        await b.invalidate(NS)  # ... worker b commits a write and announces it ...
        a.put(NS, "k", old, epoch=epoch)  # ... a's request caches what it read
        return await real_incr(name)

    a._store.incr = incr_while_others_work
    await a.invalidate(NS)
    a._store.incr = real_incr
    await a.sync()  # a's next tick must notice b's invalidation
    assert a.get(NS, "k") is None


# ---------------------------------------------------------------- TTL


def test_entries_expire_after_the_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("app.cache.time.monotonic", lambda: now[0])
    cache = LocalCache(store=None, ttl=30)  # type: ignore[arg-type]
    cache.put(NS, "k", 1)
    now[0] += 29.9
    assert cache.get(NS, "k") == 1
    now[0] += 0.2
    assert cache.get(NS, "k") is None
    cache.put(NS, "k", 2)  # a new put starts a new lifetime
    now[0] += 29
    assert cache.get(NS, "k") == 2


def test_an_overwrite_renews_the_ttl(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("app.cache.time.monotonic", lambda: now[0])
    cache = LocalCache(store=None, ttl=10)  # type: ignore[arg-type]
    cache.put(NS, "k", 1)
    now[0] = 8
    cache.put(NS, "k", 2)
    now[0] = 15
    assert cache.get(NS, "k") == 2


async def test_the_app_cache_ttl_follows_the_guide_cache_setting(client, app, settings):
    assert app.ctx.cache._ttl == settings.guide_cache_seconds


@pytest.mark.parametrize("write", ["publish", "retire", "import"])
async def test_catalogue_writes_announce_the_change(workers, services, write):
    a, b = workers
    deps = on_cache(services, a)
    await service.import_catalogue(deps, data=factories.small_catalogue())
    b.epoch(guides.NAMESPACE)
    await b.sync()  # b has heard of the import
    await guides.guide_document(b, "4308-XK-SS-001", base_url="http://testserver")
    await b.sync()
    assert b.get(guides.NAMESPACE, ("json", "4308-XK-SS-001")) is not None
    if write == "publish":
        await service.save_draft(code="4308-XK-SS-001", content=factories.guide(name="第二版"))
        await service.publish(deps, code="4308-XK-SS-001", no=2)
    elif write == "retire":
        await service.retire(deps, code="4308-XK-SS-001")
    else:
        data = factories.small_catalogue()
        data["matters"][0]["name"] = "第二版"
        await service.import_catalogue(deps, data=data)
    await b.sync()
    assert b.get(guides.NAMESPACE, ("json", "4308-XK-SS-001")) is None


async def test_drafts_do_not_announce_a_change(workers, services):
    a, _ = workers
    await service.import_catalogue(on_cache(services, a), data=factories.small_catalogue())
    a.put(guides.NAMESPACE, "k", 1)
    await service.save_draft(code="4308-XK-SS-001", content=factories.guide(name="草稿"))
    await service.create_matter(code="4308-XK-SS-099", content={"name": "新草稿"})
    assert a.get(guides.NAMESPACE, "k") == 1
