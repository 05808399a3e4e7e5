"""Fixed-window rate limits in the shared store.

Sensitive limits (logins, OTPs) fail closed: when the store is down the action is refused with 503
rather than allowed without a limit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import NoScriptError

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
    counts, _ = await window(store, counted=[(limit, key)])
    return counts[0]


async def peek(store: Store, limit: Limit, key: str) -> tuple[int, int]:
    """Events counted in the current window and seconds left, counting nothing; 503 when the store is down."""
    _, peeks = await window(store, peeked=[(limit, key)])
    return peeks[0]


# `window` in one script: the first ARGV[1] keys are counted (INCR, their window started by the first event,
# EXPIRE NX as in `count`), the others read (GET); each answers its value and its TTL.
_WINDOW_LUA = """
local counted = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
    if i <= counted then
        out[#out + 1] = redis.call('INCR', key)
        redis.call('EXPIRE', key, ARGV[i + 1], 'NX')
    else
        out[#out + 1] = tonumber(redis.call('GET', key)) or 0
    end
    out[#out + 1] = redis.call('TTL', key)
end
return out
"""
_WINDOW_SHA = hashlib.sha1(_WINDOW_LUA.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


async def window(
    store: Store, *, counted: Sequence[tuple[Limit, str]] = (), peeked: Sequence[tuple[Limit, str]] = ()
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """`count` of every (limit, key) in `counted` and `peek` of every one in `peeked`, in one round trip.

    One Lua script: what `count` and `peek` answer one by one, for all of a request's limits at once
    and atomically (a MULTI pipeline of the same commands cost the client three times the CPU to pack
    and parse); 503 when the store is down.
    """
    keys = [f"rl:{limit.name}:{key}" for limit, key in (*counted, *peeked)]
    args = [len(counted), *(limit.seconds for limit, _ in counted)]
    try:
        try:
            replies = await store.evalsha(_WINDOW_SHA, len(keys), *keys, *args)
        except NoScriptError:  # a store restarted or flushed forgets its scripts: send it in full (cached again)
            replies = await store.eval(_WINDOW_LUA, len(keys), *keys, *args)
    except Exception:
        names = ", ".join(limit.name for limit, _ in (*counted, *peeked))
        log.warning("rate limit %s unavailable: refusing (fail closed)", names)
        raise ServiceUnavailable(code="RATE_LIMIT_UNAVAILABLE") from None
    pairs = [(int(replies[i]), max(int(replies[i + 1]), 1)) for i in range(0, len(replies), 2)]
    return pairs[: len(counted)], pairs[len(counted) :]


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
