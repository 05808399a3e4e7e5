"""The shared store: Redis through redis.asyncio, or in-process fakeredis when REDIS_URL is unset."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.settings import Settings

log = logging.getLogger("app.store")

Store = aioredis.Redis

_fake_server = None


def make_store(settings: Settings) -> Store:
    """A client for REDIS_URL with an explicit retry policy, else one in-process fake shared per process."""
    if settings.redis_url:
        # Pooled connections can be stale after a Redis restart: retry with backoff (ARCHITECTURE.md).
        return aioredis.from_url(
            settings.redis_url,
            decode_responses=False,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
    import fakeredis

    global _fake_server
    if _fake_server is None:
        _fake_server = fakeredis.FakeServer()
        log.warning("REDIS_URL is not set: using an in-process store (single process only)")
    return fakeredis.FakeAsyncRedis(server=_fake_server)


def reset_fake_store() -> None:
    """Forget the in-process store (tests)."""
    global _fake_server
    _fake_server = None
