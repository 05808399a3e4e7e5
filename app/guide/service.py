"""The guide a citizen sees, assembled once per change: the catalogue's guide version, its printed code,
its satisfaction, its published FAQ and its hall's opening hours, cached per worker.

The catalogue knows nothing of codes or feedback; this read model, above all three, puts them together.
A cached guide is derived from the catalogue's, the codes' and the hall schedules' namespaces: it is served
only while none was invalidated on this worker since it was built (their writes need not know it exists).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.booking import calendars
from app.booking.deps import BookingDeps
from app.cache import LocalCache
from app.errors import MatterNotFound
from app.feedback import present as feedback_present
from app.feedback.consult import published_faq
from app.feedback.ratings import matter_satisfaction
from app.jsontext import dumps, etag_for
from app.matters import guides as catalogue_guides
from app.matters import present as catalogue_present
from app.matters import service as catalogue
from qr import present as codes_present
from qr import service as codes
from qr.service import CodeDeps

NAMESPACE = "guide_view"
# What an assembled guide is derived from: the catalogue's guides (FAQ publications drop them too), the codes,
# and the halls' booking schedules (the opening hours it states).
SOURCES = (catalogue_guides.NAMESPACE, codes.NAMESPACE, calendars.SCHEDULES)
_STAMPED = (NAMESPACE, *SOURCES)


@dataclass(frozen=True)
class GuideDeps:
    """What the read model needs: the worker's cache, the public base URL, the codes and the hall calendars."""

    cache: LocalCache
    base_url: str
    codes: CodeDeps
    booking: BookingDeps


@dataclass(frozen=True)
class GuideDocument:
    """A guide as citizens get it: its JSON document, encoded once, and that encoding's ETag."""

    etag: str
    body: bytes
    data: dict[str, Any]  # the JSON document (the H5 templates read it as `g`)


def _stamp(cache: LocalCache) -> tuple[int, ...]:
    """Marks that change whenever this namespace or one it is derived from is dropped on this worker."""
    return cache.epochs(_STAMPED)


def _get(cache: LocalCache, key: tuple[str, str]) -> Any | None:
    hit = cache.get(NAMESPACE, key)
    if hit is None or hit[0] != _stamp(cache):
        return None
    return hit[1]


def _put(cache: LocalCache, key: tuple[str, str], value: Any, stamp: tuple[int, ...]) -> None:
    if stamp == _stamp(cache):  # nothing it was built from changed while it was built
        cache.put(NAMESPACE, key, (stamp, value), epoch=stamp[0])


async def _assemble(deps: GuideDeps, data: dict[str, Any], matter_code: str) -> GuideDocument:
    links = await codes.default_code_links(deps.codes, matter_code=matter_code)
    data = {**data, "links": {**data["links"], "qr": codes_present.links(links)}}
    # One source for the hours: the guide states the schedule the hall's slots are cut from, never a second text.
    hours = await calendars.hours_text(deps.booking, data["hall"]["code"])
    if hours is not None:
        data["hall"] = {**data["hall"], "hours": hours}
    # Both change without a catalogue write: the cached guide shows them within GUIDE_CACHE_SECONDS.
    data["satisfaction"] = feedback_present.matter_satisfaction_json(await matter_satisfaction(matter_code))
    data["consult_faq"] = feedback_present.faq_json(await published_faq(matter_code))
    if data.get("bundle"):
        data["bundle"] = {**data["bundle"], "member_names": await _member_names(data["bundle"])}
    body = dumps(data)
    return GuideDocument(etag_for(body), body, data)


async def _member_names(bundle: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A bundle's member matters by code: name and department name (for the guide's stages and materials)."""
    names: dict[str, dict[str, str]] = {}
    for stage in bundle["stages"]:
        for code in stage["matters"]:
            try:
                member = await catalogue.matter_summary(code)
            except MatterNotFound:  # published against the catalogue, retired since: the code still says what it was
                names[code] = {"name": code, "department": ""}
                continue
            names[code] = {"name": member.name, "department": member.department_name}
    return names


async def guide(deps: GuideDeps, *, code: str) -> GuideDocument:
    """A matter's current guide as citizens see it (MatterNotFound when it has none published)."""
    key = ("json", code.strip().upper())
    hit = _get(deps.cache, key)
    if hit is not None:
        return hit
    stamp = _stamp(deps.cache)
    _, _, data = await catalogue_guides.guide_document(deps.cache, code, base_url=deps.base_url)
    document = await _assemble(deps, data, data["code"])
    _put(deps.cache, key, document, stamp)
    return document


async def version(deps: GuideDeps, *, code: str, no: int) -> GuideDocument:
    """A published or superseded version of a matter's guide, assembled the same way (not cached here)."""
    view = await catalogue.get_version(code, no)
    return await _assemble(deps, catalogue_present.guide(view, base_url=deps.base_url), view.code)


async def rendition(
    deps: GuideDeps, *, code: str, kind: str, render: Callable[[GuideDocument], bytes]
) -> tuple[str, bytes]:
    """(ETag, bytes) of a channel's rendering of the current guide (e.g. the H5 page), cached like the guide."""
    key = (kind, code.strip().upper())
    hit = _get(deps.cache, key)
    if hit is not None:
        return hit
    stamp = _stamp(deps.cache)
    body = render(await guide(deps, code=code))
    entry = (etag_for(body), body)
    _put(deps.cache, key, entry, stamp)
    return entry


def cached(deps: GuideDeps, *, code: str, kind: str = "json") -> Any | None:
    """What this worker serves from its cache for a matter's guide (None when it would be rebuilt)."""
    return _get(deps.cache, (kind, code.strip().upper()))
