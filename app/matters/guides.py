"""Rendered guides cached per worker: the hot read path touches the database once per change."""

from __future__ import annotations

from typing import Any

from app.cache import LocalCache
from app.jsontext import dumps, etag_for
from app.matters import service

NAMESPACE = service.GUIDE_NAMESPACE


async def guide_document(cache: LocalCache, code: str, *, base_url: str) -> tuple[str, bytes, dict[str, Any]]:
    """(ETag, JSON bytes, guide dict) of a matter's current guide."""
    key = ("json", code.strip().upper())
    hit = cache.get(NAMESPACE, key)
    if hit is not None:
        return hit
    epoch = cache.epoch(NAMESPACE)
    guide = await service.get_guide(code, base_url=base_url)
    body = dumps(guide)
    entry = (etag_for(body), body, guide)
    cache.put(NAMESPACE, key, entry, epoch=epoch)
    return entry


async def invalidate(cache: LocalCache) -> None:
    """Forget every cached guide on every worker (after any catalogue write)."""
    await cache.invalidate(NAMESPACE)
