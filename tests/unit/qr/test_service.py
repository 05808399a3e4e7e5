"""qr.service: slugs, default codes (idempotent, single under concurrency, enforced by the database),
issuing and updating codes, the snapshot cache and its invalidation, the rules of resolution."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from tortoise.exceptions import IntegrityError

from app import clock
from app.cache import LocalCache
from app.errors import InvalidInput
from app.matters import service as matters
from app.matters.service import MatterRef
from qr import present, service
from qr.errors import (
    CodeDisabled,
    CodeExhausted,
    CodeExpired,
    CodeNotFound,
    CodeNotYetValid,
    TargetInvalid,
)
from qr.models import Code, CodeAction, CodeStatus
from tests import factories

BASE = "http://testserver"
LICENCE, FOOD, FUND = "4308-XK-SS-001", "4308-XK-SS-002", "4308-GG-ZF-001"
MAIN_PHONE = "0744-8300000"


@pytest.fixture
def deps(codes, services) -> matters.CatalogueDeps:
    """The catalogue's dependencies, wired as a worker's (its writes tell the codes)."""
    return services.catalogue


@pytest.fixture
def codes(services) -> service.CodeDeps:
    """The codes' dependencies, wired as a worker's."""
    return services.codes


@pytest.fixture
async def catalogue(deps) -> None:
    await matters.import_catalogue(deps, data=factories.small_catalogue())


@pytest.fixture
def cache(codes) -> LocalCache:
    """The worker's cache the snapshots live in."""
    return codes.cache


async def default_slug(matter_code: str) -> str:
    return (await Code.get(matter_code=matter_code, is_default=True)).slug


# ---------------------------------------------------------------- slugs


def test_slug_alphabet_is_unambiguous() -> None:
    alphabet = service.SLUG_ALPHABET
    assert len(alphabet) == len(set(alphabet)) == 31
    assert not set(alphabet) & set("01ilo")  # no 0/o, 1/l/i
    assert set(alphabet) <= set("abcdefghijklmnopqrstuvwxyz23456789")
    assert service.SLUG_LENGTH == 8


def test_new_slug_uses_only_the_alphabet_and_is_random() -> None:
    slugs = [service.new_slug() for _ in range(3000)]
    for slug in slugs:
        assert len(slug) == 8
        assert set(slug) <= set(service.SLUG_ALPHABET), slug
        assert service.SLUG_RE.match(slug)
    assert len(set(slugs)) == len(slugs)
    assert set("".join(slugs)) == set(service.SLUG_ALPHABET)  # every letter is drawn


@pytest.mark.parametrize(
    "slug", ["ABCDEFGH", "abcdefg0", "abcdefgl", "abcdefgi", "abcdefgo", "abc", "a" * 17, "abcd efg", "abcd-efg", ""]
)
def test_slug_pattern_rejects_anything_else(slug: str) -> None:
    assert not service.SLUG_RE.match(slug)


def test_target_path_is_always_our_own_route(codes) -> None:
    assert service.target_path(LICENCE, CodeAction.guide) == f"/m/{LICENCE}"
    for action in ("book", "apply", "progress", "consult", "rate"):
        assert service.target_path(LICENCE, CodeAction(action)) == f"/m/{LICENCE}/{action}"


# ---------------------------------------------------------------- default codes


async def test_ensure_default_code_is_idempotent(catalogue):
    await Code.filter(matter_code=LICENCE).delete()
    first = await service.ensure_default_code(LICENCE)
    again = await service.ensure_default_code(LICENCE)
    assert first.id == again.id and first.slug == again.slug
    assert first.is_default and first.status is CodeStatus.active and first.action is CodeAction.guide
    assert await Code.filter(matter_code=LICENCE).count() == 1


async def test_ensure_default_code_keeps_an_existing_default(catalogue):
    slug = await default_slug(FOOD)
    assert (await service.ensure_default_code(FOOD)).slug == slug


async def test_ensure_default_code_is_single_under_concurrent_calls(codes, catalogue):
    await Code.filter(matter_code=FUND).delete()
    codes = await asyncio.gather(*(service.ensure_default_code(FUND) for _ in range(25)))
    assert len({c.id for c in codes}) == 1 and len({c.slug for c in codes}) == 1
    assert await Code.filter(matter_code=FUND).count() == 1
    assert await Code.filter(matter_code=FUND, is_default=True).count() == 1


async def test_concurrent_publishes_leave_one_default_code(deps):
    await matters.import_catalogue(deps, data=factories.catalogue())
    for i in range(5):
        await matters.create_matter(code=f"4308-XK-SS-10{i}", content=factories.guide(name=f"事项{i}"))
    await asyncio.gather(*(matters.publish(deps, code=f"4308-XK-SS-10{i}", no=1) for i in range(5)))
    for i in range(5):
        assert await Code.filter(matter_code=f"4308-XK-SS-10{i}", is_default=True).count() == 1


async def test_the_database_rejects_a_second_default_code(catalogue):
    with pytest.raises(IntegrityError):
        await Code.create(slug=service.new_slug(), matter_code=LICENCE, is_default=True)
    assert await Code.filter(matter_code=LICENCE, is_default=True).count() == 1


async def test_the_database_rejects_promoting_a_second_default(catalogue):
    extra = await Code.create(slug=service.new_slug(), matter_code=LICENCE)
    with pytest.raises(IntegrityError):
        await Code.filter(id=extra.id).update(is_default=True)
    assert await Code.filter(matter_code=LICENCE, is_default=True).count() == 1


async def test_non_default_codes_are_not_limited(catalogue):
    for _ in range(3):
        await Code.create(slug=service.new_slug(), matter_code=LICENCE, is_default=False)
    await Code.create(slug=service.new_slug(), matter_code="4308-XX-XX-999", is_default=True)  # another matter
    assert await Code.filter(matter_code=LICENCE).count() == 4


async def test_slugs_are_unique_in_the_database(catalogue):
    slug = await default_slug(LICENCE)
    with pytest.raises(IntegrityError):
        await Code.create(slug=slug, matter_code=FOOD)


async def test_default_code_links(codes, catalogue):
    slug = await default_slug(FUND)
    assert present.links(await service.default_code_links(codes, matter_code=FUND)) == {
        "slug": slug,
        "url": f"{BASE}/q/{slug}",
        "png": f"{BASE}/q/{slug}.png",
        "svg": f"{BASE}/q/{slug}.svg",
        "poster": f"{BASE}/q/{slug}/poster.svg",
    }
    assert await service.default_code_links(codes, matter_code="4308-XX-XX-999") is None


# ---------------------------------------------------------------- issuing and updating


async def test_issue_code_normalises_the_target_and_records_everything(codes, catalogue):
    now = clock.now().replace(microsecond=0)
    code = present.code(await service.issue_code(
        codes, matter_code=f"  {FOOD.lower()} ", action="apply", label="东门", hall="gongjijin",
        valid_since=now, valid_until=now + dt.timedelta(days=1), max_scans=5, created_by="staff:x",
    ))  # fmt: skip
    assert code["matter_code"] == FOOD and code["action"] == "apply" and code["hall"] == "gongjijin"
    assert code["valid_since"] == clock.iso(now) and code["max_scans"] == 5 and code["limited_scans_used"] == 0
    assert code["created_by"] == "staff:x" and code["is_default"] is False
    row = await Code.get(slug=code["slug"])
    assert row.matter_code == FOOD and row.valid_until == now + dt.timedelta(days=1)


@pytest.mark.parametrize("target", ["4308-XK-SS-999", "//evil.example.com", "https://evil.example.com", "", "  "])
async def test_issue_code_refuses_unknown_targets(codes, catalogue, target):
    with pytest.raises(TargetInvalid) as caught:
        await service.issue_code(codes, matter_code=target)
    assert caught.value.status == 422 and caught.value.code == "TARGET_INVALID"
    assert "matter_code" in caught.value.details["fields"]
    assert await Code.all().count() == 3


async def test_issue_code_refuses_an_unpublished_target(codes, catalogue):
    await matters.create_matter(code="4308-XK-SS-777", content={"name": "草稿"})
    with pytest.raises(TargetInvalid):
        await service.issue_code(codes, matter_code="4308-XK-SS-777")


async def test_issue_code_refuses_an_unknown_hall_and_a_bad_window(codes, catalogue):
    now = clock.now()
    with pytest.raises(InvalidInput) as caught:
        await service.issue_code(codes, matter_code=LICENCE, hall="nowhere")
    assert "hall" in caught.value.details["fields"]
    for until in (now, now - dt.timedelta(seconds=1)):
        with pytest.raises(InvalidInput) as caught:
            await service.issue_code(codes, matter_code=LICENCE, valid_since=now, valid_until=until)
        assert caught.value.status == 422 and "valid_until" in caught.value.details["fields"]
    assert await Code.all().count() == 3


async def test_update_code_window_must_be_ordered(codes, catalogue):
    now = clock.now().replace(microsecond=0)
    slug = (await service.issue_code(codes, matter_code=LICENCE)).slug
    for since, until in ((now, now), (now, now - dt.timedelta(minutes=1))):
        with pytest.raises(InvalidInput) as caught:
            await service.update_code(codes, slug=slug, valid_since=since, valid_until=until)
        assert caught.value.status == 422 and "valid_until" in caught.value.details["fields"]
    # Half of the window given: checked against the stored other half.
    await service.update_code(codes, slug=slug, valid_since=now)
    with pytest.raises(InvalidInput):
        await service.update_code(codes, slug=slug, valid_until=now - dt.timedelta(days=1))
    row = await Code.get(slug=slug)
    assert row.valid_since == now and row.valid_until is None
    # A valid window, then both cleared.
    changed = present.code(await service.update_code(codes, slug=slug, valid_until=now + dt.timedelta(hours=1)))
    assert changed["valid_until"] == clock.iso(now + dt.timedelta(hours=1))
    cleared = present.code(await service.update_code(codes, slug=slug, valid_since=None, valid_until=None))
    assert cleared["valid_since"] is None and cleared["valid_until"] is None


async def test_update_code_fields(codes, catalogue):
    slug = (await service.issue_code(codes, matter_code=LICENCE)).slug
    out = present.code(await service.update_code(
        codes, slug=slug, matter_code=FOOD.lower(), action="consult", status="disabled", label="新位置", max_scans=9,
    ))  # fmt: skip
    assert (out["matter_code"], out["action"], out["status"], out["label"], out["max_scans"]) == (
        FOOD, "consult", "disabled", "新位置", 9,
    )  # fmt: skip
    out = present.code(await service.update_code(codes, slug=slug, status="active", max_scans=None))
    assert out["status"] == "active" and out["max_scans"] is None and out["label"] == "新位置"


@pytest.mark.parametrize("slug", ["zzzzzzzz", "ABCDEFGH", "", "../../etc/passwd", "a" * 10_000])
async def test_update_and_get_of_unknown_codes(codes, catalogue, slug):
    with pytest.raises(CodeNotFound):
        await service.update_code(codes, slug=slug, status="disabled")
    with pytest.raises(CodeNotFound):
        await service.get_code(codes, slug=slug)


@pytest.mark.parametrize("target", ["4308-XK-SS-999", "//evil.example.com", "https://evil.example.com"])
async def test_update_code_refuses_unknown_targets(codes, catalogue, target):
    slug = await default_slug(LICENCE)
    with pytest.raises(TargetInvalid):
        await service.update_code(codes, slug=slug, matter_code=target)
    assert (await Code.get(slug=slug)).matter_code == LICENCE


async def test_retargeting_a_default_code_moves_the_default(codes, catalogue):
    slug = await default_slug(LICENCE)
    food = await default_slug(FOOD)
    out = present.code(await service.update_code(codes, slug=slug, matter_code=FOOD))
    assert out["is_default"] is False and out["matter_code"] == FOOD
    assert await default_slug(FOOD) == food
    fresh = await default_slug(LICENCE)
    assert fresh != slug
    assert await Code.filter(is_default=True).count() == 3
    # Retargeting to the same matter changes nothing about defaults.
    await service.update_code(codes, slug=food, matter_code=FOOD)
    assert await default_slug(FOOD) == food


async def test_list_codes_filters(codes, catalogue):
    await service.issue_code(codes, matter_code=LICENCE)
    assert (present.code_page(await service.list_codes(codes)))["total"] == 4
    by_matter = present.code_page(await service.list_codes(codes, matter_code=f" {LICENCE.lower()} "))
    assert by_matter["total"] == 2 and {c["matter_code"] for c in by_matter["items"]} == {LICENCE}
    by_section = present.code_page(await service.list_codes(codes, section="social_security"))
    assert [c["matter_code"] for c in by_section["items"]] == [FUND]
    page = present.code_page(await service.list_codes(codes, page=2, page_size=3))
    assert page["total"] == 4 and len(page["items"]) == 1


async def test_section_defaults(catalogue):
    rows = await service.section_defaults(section="commercial")
    assert [(m.code, c.slug, h.code if h else None) for c, m, h in rows] == [
        (LICENCE, await default_slug(LICENCE), "main"),
        (FOOD, await default_slug(FOOD), "main"),
    ]
    with pytest.raises(InvalidInput) as caught:
        await service.section_defaults(section="nope")
    assert "section" in caught.value.details["fields"]


async def test_wechat_code_of_an_unknown_kind_never_calls_wechat(codes, catalogue):
    with pytest.raises(CodeNotFound):
        await service.wechat_code_png(codes, matter_code=LICENCE, kind="gif")


# ---------------------------------------------------------------- the snapshot cache


async def test_snapshot_is_cached_until_the_namespace_changes(codes, catalogue, cache):
    slug = await default_slug(LICENCE)
    first = await service.snapshot(codes, slug=slug)
    assert first.status == "active" and first.matter_code == LICENCE and first.hall_phone == MAIN_PHONE
    assert await service.snapshot(codes, slug=slug) is first

    await Code.filter(slug=slug).update(status=CodeStatus.disabled)  # a write that announces nothing
    assert (await service.snapshot(codes, slug=slug)).status == "active"  # still cached

    await cache.invalidate(service.NAMESPACE)
    fresh = await service.snapshot(codes, slug=slug)
    assert fresh.status == "disabled"
    with pytest.raises(CodeDisabled):
        await service.resolve(codes, slug=slug)


async def test_update_code_invalidates_the_snapshot(codes, catalogue, cache):
    slug = (await service.issue_code(codes, matter_code=LICENCE)).slug
    assert (await service.resolve(codes, slug=slug)).matter_code == LICENCE
    await service.update_code(codes, slug=slug, matter_code=FOOD)
    assert (await service.resolve(codes, slug=slug)).matter_code == FOOD
    await service.update_code(codes, slug=slug, status="disabled")
    with pytest.raises(CodeDisabled):
        await service.resolve(codes, slug=slug)


async def test_catalogue_changes_invalidate_the_snapshot(deps, codes, catalogue, cache):
    slug = await default_slug(LICENCE)
    snap = await service.resolve(codes, slug=slug)
    assert snap.summary.version == 1 and snap.retired_from is None
    await matters.save_draft(code=LICENCE, content=factories.guide(name="营业执照设立登记（新版）"))
    await matters.publish(deps, code=LICENCE, no=2)
    snap = await service.resolve(codes, slug=slug)
    assert snap.summary.version == 2 and snap.summary.name == "营业执照设立登记（新版）"
    await matters.retire(deps, code=LICENCE, successor=FOOD)
    snap = await service.resolve(codes, slug=slug)
    assert snap.matter_code == FOOD and snap.printed_matter == LICENCE
    assert snap.retired_from == MatterRef(LICENCE, "营业执照设立登记（新版）")


async def test_a_snapshot_read_across_an_invalidation_is_not_cached(codes, catalogue, cache, monkeypatch):
    slug = await default_slug(LICENCE)
    real = service.build_snapshot

    async def racing(code, *, base_url):
        snap = await real(code, base_url=base_url)
        await cache.invalidate(service.NAMESPACE)  # a write lands while we were reading
        return snap

    monkeypatch.setattr(service, "build_snapshot", racing)
    await service.snapshot(codes, slug=slug)
    assert cache.get(service.NAMESPACE, slug) is None


async def test_unknown_slugs_are_not_found_and_touch_no_database_when_malformed(codes, catalogue, cache, monkeypatch):
    with pytest.raises(CodeNotFound):
        await service.snapshot(codes, slug="zzzzzzzz")

    async def no_db(*args, **kwargs):
        raise AssertionError("a malformed slug must not reach the database")

    monkeypatch.setattr(Code, "get_or_none", no_db)
    for slug in ("ABCDEFGH", "../../etc/passwd", "a" * 10_000, "'; DROP TABLE qr_code; --", "\x00", None):
        with pytest.raises(CodeNotFound):
            await service.snapshot(codes, slug=slug)  # type: ignore[arg-type]


# ---------------------------------------------------------------- resolution rules


async def test_resolve_window_boundaries(codes, catalogue, cache, fake_clock):
    now = clock.now()
    slug = (await service.issue_code(
        codes, matter_code=LICENCE, valid_since=now + dt.timedelta(hours=1), valid_until=now + dt.timedelta(hours=2),
    )).slug  # fmt: skip
    with pytest.raises(CodeNotYetValid) as caught:
        await service.resolve(codes, slug=slug)
    assert caught.value.status == 410 and caught.value.details == {"slug": slug, "phone": MAIN_PHONE}
    fake_clock.advance(hours=1)  # valid_since is inclusive
    await service.resolve(codes, slug=slug)
    fake_clock.advance(minutes=59, seconds=59)
    await service.resolve(codes, slug=slug)
    fake_clock.advance(seconds=1)  # valid_until is exclusive
    with pytest.raises(CodeExpired):
        await service.resolve(codes, slug=slug)


async def test_disabled_is_reported_before_the_window(codes, catalogue, cache, fake_clock):
    now = clock.now()
    slug = (await service.issue_code(codes, matter_code=LICENCE, valid_until=now + dt.timedelta(hours=1))).slug
    await service.update_code(codes, slug=slug, status="disabled")
    fake_clock.advance(hours=2)
    with pytest.raises(CodeDisabled):
        await service.resolve(codes, slug=slug)


async def test_scan_limit_counts_only_counted_scans(codes, catalogue, cache):
    slug = (await service.issue_code(codes, matter_code=LICENCE, max_scans=2)).slug
    for _ in range(3):
        await service.resolve(codes, slug=slug, count=False)
    assert (await Code.get(slug=slug)).scans == 0
    await service.resolve(codes, slug=slug)
    await service.resolve(codes, slug=slug)
    with pytest.raises(CodeExhausted) as caught:
        await service.resolve(codes, slug=slug)
    assert caught.value.status == 410 and caught.value.details == {"slug": slug, "phone": MAIN_PHONE}
    assert (await Code.get(slug=slug)).scans == 2


async def test_unlimited_codes_do_not_write_on_scan(codes, catalogue, cache):
    slug = await default_slug(LICENCE)
    for _ in range(5):
        await service.resolve(codes, slug=slug)
    assert (await Code.get(slug=slug)).scans == 0


async def test_scan_limit_is_exact_under_concurrent_resolves(codes, catalogue, cache):
    slug = (await service.issue_code(codes, matter_code=LICENCE, max_scans=30)).slug

    async def one() -> bool:
        try:
            await service.resolve(codes, slug=slug)
        except CodeExhausted:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert results.count(True) == 30
    assert (await Code.get(slug=slug)).scans == 30


@pytest.mark.parametrize("target", ["//evil.example.com", "https://evil.example.com", "4308-XK-SS-999", ""])
async def test_a_code_whose_target_is_not_a_published_matter_is_not_found(codes, catalogue, cache, target):
    slug = service.new_slug()
    await Code.create(slug=slug, matter_code=target)
    snap = await service.snapshot(codes, slug=slug)
    assert snap.summary is None
    assert b"evil" not in snap.json_body.replace(target.encode(), b"")  # nothing beyond the stored value itself
    with pytest.raises(CodeNotFound):
        await service.resolve(codes, slug=slug)


async def test_snapshot_urls_are_built_from_our_base_url_only(codes, catalogue, cache):
    slug = (await service.issue_code(codes, matter_code=FOOD, action="progress")).slug
    snap = await service.resolve(codes, slug=slug)
    import json

    body = json.loads(snap.json_body)
    urls = [body["target"], body["code"]["url"], body["matter"]["url"], *body["actions"].values()]
    assert all(u.startswith(f"{BASE}/") for u in urls), urls
    assert body["target"] == f"{BASE}/m/{FOOD}/progress"
    assert all(re.fullmatch(rf"{re.escape(BASE)}/(m|q)/[A-Za-z0-9-]+(/[a-z]+)?", u) for u in urls), urls


async def test_retired_matter_snapshots(deps, codes, catalogue, cache):
    licence, fund = await default_slug(LICENCE), await default_slug(FUND)
    await matters.retire(deps, code=LICENCE, successor=FOOD)
    await matters.retire(deps, code=FUND)
    snap = await service.resolve(codes, slug=licence)
    assert snap.matter_code == FOOD and snap.retired_from == MatterRef(LICENCE, "营业执照设立登记")
    snap = await service.resolve(codes, slug=fund)
    assert snap.matter_code == FUND and snap.retired_from == MatterRef(FUND, "住房公积金提取")
    assert snap.summary.status == "retired"


async def test_retired_successor_chain_falls_back_to_the_printed_matter(deps, codes, catalogue, cache):
    slug = await default_slug(LICENCE)
    await matters.retire(deps, code=LICENCE, successor=FOOD)
    await matters.retire(deps, code=FOOD)  # the successor itself is cancelled later
    snap = await service.resolve(codes, slug=slug)
    assert snap.matter_code == LICENCE and snap.summary.status == "retired"
