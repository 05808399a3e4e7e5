"""Fixed-window rate limits in the shared store.

Sensitive limits (logins, OTPs) fail closed: when the store is down the action is refused with 503
rather than allowed without a limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import DomainError, ServiceUnavailable
from app.store import Store

log = logging.getLogger("app.ratelimit")


class TooManyRequests(DomainError):
    code, message, status = "TOO_MANY_REQUESTS", "操作过于频繁，请稍后再试", 429


@dataclass(frozen=True)
class Limit:
    """At most `count` events per `seconds` for one key."""

    name: str
    count: int
    seconds: int


async def count(store: Store, limit: Limit, key: str) -> tuple[int, int]:
    """Count one event without refusing it: (events in the window so far, seconds left); 503 when the store is down."""
    redis_key = f"rl:{limit.name}:{key}"
    try:
        async with store.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, limit.seconds, nx=True)
            pipe.ttl(redis_key)
            value, _, ttl = await pipe.execute()
    except Exception:
        log.warning("rate limit %s unavailable: refusing (fail closed)", limit.name)
        raise ServiceUnavailable(code="RATE_LIMIT_UNAVAILABLE") from None
    return int(value), max(int(ttl), 1)


async def peek(store: Store, limit: Limit, key: str) -> tuple[int, int]:
    """Events counted in the current window and seconds left, counting nothing; 503 when the store is down."""
    redis_key = f"rl:{limit.name}:{key}"
    try:
        async with store.pipeline(transaction=False) as pipe:
            pipe.get(redis_key)
            pipe.ttl(redis_key)
            value, ttl = await pipe.execute()
    except Exception:
        log.warning("rate limit %s unavailable: refusing (fail closed)", limit.name)
        raise ServiceUnavailable(code="RATE_LIMIT_UNAVAILABLE") from None
    return int(value or 0), max(int(ttl), 1)


async def window(
    store: Store, *, counted: Sequence[tuple[Limit, str]] = (), peeked: Sequence[tuple[Limit, str]] = ()
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """`count` of every (limit, key) in `counted` and `peek` of every one in `peeked`, in one round trip.

    One MULTI/EXEC: what `count` and `peek` answer one by one, for all of a request's limits at once
    (a request's limits cost one round trip, not one each); 503 when the store is down.
    """
    try:
        async with store.pipeline(transaction=True) as pipe:
            for limit, key in counted:
                redis_key = f"rl:{limit.name}:{key}"
                pipe.incr(redis_key)
                pipe.expire(redis_key, limit.seconds, nx=True)
                pipe.ttl(redis_key)
            for limit, key in peeked:
                redis_key = f"rl:{limit.name}:{key}"
                pipe.get(redis_key)
                pipe.ttl(redis_key)
            replies = await pipe.execute()
    except Exception:
        names = ", ".join(limit.name for limit, _ in (*counted, *peeked))
        log.warning("rate limits %s unavailable: refusing (fail closed)", names)
        raise ServiceUnavailable(code="RATE_LIMIT_UNAVAILABLE") from None
    n = 3 * len(counted)
    counts = [(int(replies[i]), max(int(replies[i + 2]), 1)) for i in range(0, n, 3)]
    peeks = [(int(replies[i] or 0), max(int(replies[i + 1]), 1)) for i in range(n, len(replies), 2)]
    return counts, peeks


def refuse(limit: Limit, retry: int, *, code: str | None = None, message: str | None = None) -> TooManyRequests:
    """The 429 a limit answers, with Retry-After."""
    return TooManyRequests(
        message,
        code=code,
        details={"limit": limit.name, "retry_after": retry},
        headers={"Retry-After": str(retry)},
    )


async def check(store: Store, limit: Limit, key: str, *, code: str | None = None, message: str | None = None) -> None:
    """Raise 429 when the key already used its `count` events (counting nothing): for limits on failures only."""
    value, ttl = await peek(store, limit, key)
    if value >= limit.count:
        raise refuse(limit, ttl, code=code, message=message)


async def hit(store: Store, limit: Limit, key: str, *, code: str | None = None, message: str | None = None) -> int:
    """Count one event; raise 429 with Retry-After past the limit, 503 when the store is down."""
    value, ttl = await count(store, limit, key)
    if value > limit.count:
        raise refuse(limit, ttl, code=code, message=message)
    return value


async def reset(store: Store, limit: Limit, key: str) -> None:
    """Forget a key's count (e.g. after a successful login)."""
    try:
        await store.delete(f"rl:{limit.name}:{key}")
    except Exception:
        log.warning("rate limit %s reset failed", limit.name)
