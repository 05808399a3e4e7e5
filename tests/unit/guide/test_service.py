"""The guide read model: what it assembles, and that it follows the catalogue's and the codes' writes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app.guide import service as guide
from app.matters import service as catalogue
from qr import service as codes
from qr.models import Code
from tests import factories

BASE = "http://testserver"
LICENCE, FOOD = "4308-XK-SS-001", "4308-XK-SS-002"


@pytest.fixture
async def loaded(services) -> None:
    await catalogue.import_catalogue(services.catalogue, data=factories.small_catalogue())


async def test_the_guide_carries_its_code_satisfaction_and_faq(services, loaded):
    doc = await guide.guide(services.guide, code=LICENCE.lower())
    slug = (await Code.get(matter_code=LICENCE, is_default=True)).slug
    assert doc.data["code"] == LICENCE
    assert doc.data["links"]["qr"] == {
        "slug": slug,
        "url": f"{BASE}/q/{slug}",
        "png": f"{BASE}/q/{slug}.png",
        "svg": f"{BASE}/q/{slug}.svg",
        "poster": f"{BASE}/q/{slug}/poster.svg",
    }
    assert (doc.data["satisfaction"], doc.data["consult_faq"]) == (None, [])
    assert json.loads(doc.body) == doc.data
    assert await guide.guide(services.guide, code=LICENCE) is doc  # cached


async def test_a_catalogue_write_drops_the_cached_guide(services, loaded):
    before = await guide.guide(services.guide, code=LICENCE)
    await catalogue.save_draft(code=LICENCE, content=factories.guide(name="第二版"))
    assert guide.cached(services.guide, code=LICENCE) is before  # a draft is not public
    await catalogue.publish(services.catalogue, code=LICENCE, no=2)
    assert guide.cached(services.guide, code=LICENCE) is None
    after = await guide.guide(services.guide, code=LICENCE)
    assert (after.data["version"], after.data["name"]) == (2, "第二版") and after.etag != before.etag


async def test_a_code_write_drops_the_cached_guide(services, loaded):
    await guide.guide(services.guide, code=LICENCE)
    slug = (await Code.get(matter_code=LICENCE, is_default=True)).slug
    await codes.update_code(services.codes, slug=slug, matter_code=FOOD)  # LICENCE gets a fresh default code
    assert guide.cached(services.guide, code=LICENCE) is None
    fresh = (await Code.get(matter_code=LICENCE, is_default=True)).slug
    assert (await guide.guide(services.guide, code=LICENCE)).data["links"]["qr"]["slug"] == fresh != slug


async def test_renditions_are_cached_like_the_guide(services, loaded):
    renders = []

    def render(doc: guide.GuideDocument) -> bytes:
        renders.append(doc.data["version"])
        return f"<h1>{doc.data['name']}</h1>".encode()

    etag, body = await guide.rendition(services.guide, code=LICENCE, kind="html", render=render)
    assert (await guide.rendition(services.guide, code=LICENCE, kind="html", render=render)) == (etag, body)
    assert renders == [1]
    await catalogue.retire(services.catalogue, code=LICENCE)
    await guide.rendition(services.guide, code=LICENCE, kind="html", render=render)
    assert renders == [1, 1]


async def test_the_catalogue_only_tells_its_hooks(services):
    published: list[str] = []
    changes: list[str] = []

    async def on_published(code: str) -> None:
        published.append(code)

    async def on_changed() -> None:
        changes.append("changed")

    deps = dataclasses.replace(services.catalogue, on_published=(on_published,), on_changed=(on_changed,))
    await catalogue.import_catalogue(deps, data=factories.small_catalogue())
    assert sorted(published) == sorted(m["code"] for m in factories.small_catalogue()["matters"])
    assert changes == ["changed"]
    assert not await Code.exists()  # the catalogue issues no code itself: the codes' hook does
    await catalogue.save_draft(code=LICENCE, content=factories.guide(name="第二版"))
    assert changes == ["changed"]  # drafts are not public
    await catalogue.publish(deps, code=LICENCE, no=2)
    assert (published[-1], changes) == (LICENCE, ["changed", "changed"])
