"""Rate limits: `window` answers what `count` and `peek` answer, for several limits in one round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.errors import ServiceUnavailable
from app.ratelimit import Limit, count, peek, window
from app.settings import Settings
from app.store import Store, make_store

MINUTE = Limit("t-minute", 5, 60)
HOUR = Limit("t-hour", 3, 3600)
DOWN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """The test's store (fakeredis in-process, or TEST_REDIS_URL)."""
    s = make_store(settings)
    yield s
    await s.aclose()


async def test_window_counts_and_peeks_like_count_and_peek(store: Store):
    assert await window(store, counted=[(MINUTE, "a")], peeked=[(HOUR, "a"), (HOUR, "b")]) == (
        [(1, 60)],
        [(0, 1), (0, 1)],
    )
    await count(store, HOUR, "a")
    counts, peeks = await window(store, counted=[(MINUTE, "a"), (HOUR, "b")], peeked=[(HOUR, "a"), (MINUTE, "a")])
    assert counts == [(2, 60), (1, 3600)]
    assert peeks == [(1, 3600), (2, 60)]
    assert await peek(store, MINUTE, "a") == (2, 60)
    assert await peek(store, HOUR, "b") == (1, 3600)


async def test_window_keeps_the_window_started_by_the_first_event(store: Store):
    await store.set("rl:t-hour:k", 2, ex=100)
    counts, _ = await window(store, counted=[(HOUR, "k")])
    assert counts[0][0] == 3 and counts[0][1] <= 100  # EXPIRE NX: the running window is not extended


async def test_window_survives_a_store_that_forgot_its_scripts(store: Store):
    await window(store, counted=[(MINUTE, "s")])
    await store.script_flush()
    assert await window(store, counted=[(MINUTE, "s")]) == ([(2, 60)], [])


async def test_window_fails_closed_when_the_store_is_down(settings: Settings):
    down = make_store(settings.replace(redis_url=DOWN_REDIS))
    try:
        with pytest.raises(ServiceUnavailable):
            await window(down, counted=[(MINUTE, "x")], peeked=[(HOUR, "x")])
    finally:
        await down.aclose()
