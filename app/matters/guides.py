"""Published guides cached per worker, as the catalogue describes them: what other domains check a matter against.

The guide a citizen sees (with its codes, satisfaction and FAQ) is the read model in app.guide.
"""

from __future__ import annotations

from typing import Any

from app.cache import LocalCache
from app.jsontext import dumps, etag_for
from app.matters import present, service

NAMESPACE = service.GUIDE_NAMESPACE


async def guide_document(cache: LocalCache, code: str, *, base_url: str) -> tuple[str, bytes, dict[str, Any]]:
    """(ETag, JSON bytes, guide dict) of a matter's current guide version (catalogue facts only)."""
    key = ("json", code.strip().upper())
    hit = cache.get(NAMESPACE, key)
    if hit is not None:
        return hit
    epoch = cache.epoch(NAMESPACE)
    guide = present.guide(await service.get_guide(code), base_url=base_url)
    body = dumps(guide)
    entry = (etag_for(body), body, guide)
    cache.put(NAMESPACE, key, entry, epoch=epoch)
    return entry


async def invalidate(cache: LocalCache) -> None:
    """Forget every cached guide on every worker (and what the guide read model built from them)."""
    await cache.invalidate(NAMESPACE)
