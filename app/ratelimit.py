"""Fixed-window rate limits in the shared store.

Sensitive limits (logins, OTPs) fail closed: when the store is down the action is refused with 503
rather than allowed without a limit.
"""

from __future__ import annotations

import logging
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


async def hit(store: Store, limit: Limit, key: str, *, code: str | None = None, message: str | None = None) -> int:
    """Count one event; raise 429 with Retry-After past the limit, 503 when the store is down."""
    redis_key = f"rl:{limit.name}:{key}"
    try:
        async with store.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, limit.seconds, nx=True)
            pipe.ttl(redis_key)
            count, _, ttl = await pipe.execute()
    except Exception:
        log.warning("rate limit %s unavailable: refusing (fail closed)", limit.name)
        raise ServiceUnavailable(code="RATE_LIMIT_UNAVAILABLE") from None
    if count > limit.count:
        retry = max(int(ttl), 1)
        raise TooManyRequests(
            message,
            code=code,
            details={"limit": limit.name, "retry_after": retry},
            headers={"Retry-After": str(retry)},
        )
    return int(count)


async def reset(store: Store, limit: Limit, key: str) -> None:
    """Forget a key's count (e.g. after a successful login)."""
    try:
        await store.delete(f"rl:{limit.name}:{key}")
    except Exception:
        log.warning("rate limit %s reset failed", limit.name)
