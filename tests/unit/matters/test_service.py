"""Catalogue service functions against the real ORM (SQLite or PostgreSQL)."""

from __future__ import annotations

import copy

import pytest
from tortoise.exceptions import IntegrityError

from app.errors import (
    GuideInvalid,
    ImportInvalid,
    InvalidInput,
    MatterCodeTaken,
    MatterNotFound,
    MatterRetired,
    VersionNotDraft,
    VersionNotFound,
)
from app.matters import present, service
from app.matters.models import Department, Hall, Matter, MatterStatus, MatterVersion, VersionStatus
from tests import factories

BASE = "http://testserver"
LICENCE = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
FUND = "4308-GG-ZF-001"


async def counts() -> dict[str, int]:
    return {
        "department": await Department.all().count(),
        "hall": await Hall.all().count(),
        "matter": await Matter.all().count(),
        "version": await MatterVersion.all().count(),
    }


@pytest.fixture
def deps(services) -> service.CatalogueDeps:
    """The catalogue's dependencies, wired as a worker's."""
    return services.catalogue


async def load_small(deps: service.CatalogueDeps) -> service.ImportReport:
    return await service.import_catalogue(deps, data=factories.small_catalogue())


async def guide_of(code: str) -> dict:
    """The current guide version as the catalogue presents it."""
    return present.guide(await service.get_guide(code), base_url=BASE)


async def version_of(code: str, no: int) -> dict:
    return present.guide(await service.get_version(code, no), base_url=BASE)


async def versions_of(code: str) -> list[MatterVersion]:
    return await MatterVersion.filter(matter__code=code).order_by("no")


# ---------------------------------------------------------------- import: create / update / unchanged


async def test_import_creates_published_matters(deps):
    report = await load_small(deps)
    assert present.import_report(report) == {"created": 3, "updated": 0, "unchanged": 0, "skipped": []}
    assert await counts() == {"department": 2, "hall": 2, "matter": 3, "version": 3}
    for matter in await Matter.all():
        assert matter.published_no == 1
        assert matter.status is MatterStatus.active
        [version] = await versions_of(matter.code)
        assert version.status is VersionStatus.published
        assert version.published_at is not None
    fund = await Matter.get(code=FUND)
    assert (fund.name, fund.section, fund.department_code, fund.hall_code) == (
        "住房公积金提取",
        "social_security",
        "gjjzx",
        "gongjijin",
    )
    assert (fund.visits, fund.online_depth) == (0, 4)


async def test_reimport_of_the_same_file_creates_no_version(deps):
    await load_small(deps)
    before = await counts()
    report = await load_small(deps)
    assert present.import_report(report) == {"created": 0, "updated": 0, "unchanged": 3, "skipped": []}
    assert await counts() == before
    assert {m.published_no for m in await Matter.all()} == {1}


async def test_changed_content_creates_version_2_and_supersedes_1(deps):
    await load_small(deps)
    data = factories.small_catalogue()
    data["matters"][0]["name"] = "企业设立登记"
    data["matters"][0]["promised_limit_days"] = 1
    report = await service.import_catalogue(deps, data=data)
    assert present.import_report(report) == {"created": 0, "updated": 1, "unchanged": 2, "skipped": []}

    v1, v2 = await versions_of(LICENCE)
    assert (v1.no, v1.status, v2.no, v2.status) == (1, VersionStatus.superseded, 2, VersionStatus.published)
    assert v1.superseded_at is not None
    matter = await Matter.get(code=LICENCE)
    assert (matter.published_no, matter.name) == (2, "企业设立登记")

    current = await guide_of(LICENCE)
    assert (current["version"], current["version_status"], current["name"]) == (2, "published", "企业设立登记")
    assert current["promised_limit_days"] == 1

    old = await version_of(LICENCE, 1)
    assert (old["version"], old["version_status"], old["name"]) == (1, "superseded", "营业执照设立登记")
    assert old["promised_limit_days"] == 3
    # importing v2 again is a no-op
    again = await service.import_catalogue(deps, data=data)
    assert again.unchanged == 3
    assert len(await versions_of(LICENCE)) == 2


async def test_key_order_does_not_count_as_a_change(deps):
    await load_small(deps)
    data = factories.small_catalogue()
    data["matters"] = [dict(reversed(list(m.items()))) for m in data["matters"]]
    report = await service.import_catalogue(deps, data=data)
    assert report.unchanged == 3


async def test_import_reports_progress(deps):
    calls = []
    await service.import_catalogue(
        deps, data=factories.small_catalogue(), progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


# ---------------------------------------------------------------- import: bad entries


def bad_file() -> dict:
    return factories.catalogue(
        factories.entry(LICENCE),  # 0: good
        factories.entry(FOOD, legal_limit_days=2, promised_limit_days=5),  # 1: promised > legal
        factories.entry("4308-XK-SS-003", department="nope"),  # 2: unknown department
        factories.entry("bad code"),  # 3: bad code
        factories.entry("4308-XK-SS-004", hall="nowhere"),  # 4: unknown hall
        factories.entry(LICENCE, name="重复"),  # 5: duplicate of 0
        factories.entry("4308-XK-SS-006", visits=-1, online_depth=0, online_apply=False),  # 6: two field errors
    )


async def test_import_lists_every_bad_entry_and_imports_nothing(deps):
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=bad_file())
    details = exc.value.details
    errors = {e["index"]: e for e in details["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6]
    assert details["error_count"] == 6
    assert all(e["kind"] == "matter" for e in errors.values())
    assert errors[1]["code"] == FOOD
    assert errors[1]["fields"] == {"__root__": ["承诺时限不得超过法定时限"]}
    assert errors[2]["fields"] == {"__root__": ["部门 nope 不存在"]}
    assert errors[3]["code"] == "bad code"
    assert list(errors[3]["fields"]) == ["code"]
    assert errors[4]["fields"] == {"__root__": ["大厅 nowhere 不存在"]}
    assert errors[5]["code"] == LICENCE
    assert "重复" in errors[5]["fields"]["__root__"][0]
    assert set(errors[6]["fields"]) == {"visits", "online_depth"}
    # nothing at all was written, not even the departments and halls of the file
    assert await counts() == {"department": 0, "hall": 0, "matter": 0, "version": 0}


async def test_bad_departments_and_halls_are_listed_too(deps):
    data = factories.catalogue(factories.entry(LICENCE))
    data["departments"].append({"code": "Bad Code", "name": "坏部门"})
    data["halls"].append(
        {"code": "sub2", "name": "分厅", "kind": "tiny", "address": "某路", "phone": "123", "hours": "x"}
    )
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=data)
    errors = exc.value.details["errors"]
    assert [(e["kind"], e["index"]) for e in errors] == [("department", 2), ("hall", 2)]
    assert "code" in errors[0]["fields"]
    assert "kind" in errors[1]["fields"]
    assert await counts() == {"department": 0, "hall": 0, "matter": 0, "version": 0}


@pytest.mark.parametrize("data", [None, [], "catalogue", {"matters": [], "colour": "red"}, {"matters": "x"}])
async def test_import_rejects_a_file_that_is_not_a_catalogue(deps, data):
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=data)
    [error] = exc.value.details["errors"]
    assert error["index"] is None
    assert await counts() == {"department": 0, "hall": 0, "matter": 0, "version": 0}


async def test_partial_import_imports_the_good_entries_and_reports_the_skipped(deps):
    report = await service.import_catalogue(deps, data=bad_file(), partial=True)
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    assert sorted(e["index"] for e in report.skipped) == [1, 2, 3, 4, 5, 6]
    assert await Matter.all().values_list("code", flat=True) == [LICENCE]
    guide = await guide_of(LICENCE)
    assert guide["name"] == "营业执照设立登记"  # the first entry, not the skipped duplicate
    assert await counts() == {"department": 2, "hall": 2, "matter": 1, "version": 1}


async def test_references_to_departments_and_halls_already_in_the_database(deps):
    await load_small(deps)
    data = {"matters": [factories.entry("4308-XK-SS-009", department="gjjzx", hall="gongjijin")]}
    report = await service.import_catalogue(deps, data=data)
    assert report.created == 1
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(
            deps, data={"matters": [factories.entry("4308-XK-SS-010", department="x", hall="y")]}
        )
    [error] = exc.value.details["errors"]
    assert error["fields"]["__root__"] == ["部门 x 不存在", "大厅 y 不存在"]


# ---------------------------------------------------------------- import: successors


async def test_import_retired_matter_with_successor_in_the_same_file(deps):
    data = factories.catalogue(
        factories.entry(LICENCE, retired=True, successor=FOOD),
        factories.entry(FOOD, name="食品经营许可"),
    )
    report = await service.import_catalogue(deps, data=data)
    assert report.created == 2
    old = await Matter.get(code=LICENCE)
    assert (old.status, old.successor_code) == (MatterStatus.retired, FOOD)
    guide = await guide_of(LICENCE)
    assert guide["status"] == "retired"
    assert guide["successor"] == {"code": FOOD, "name": "食品经营许可", "url": f"{BASE}/m/{FOOD}"}


async def test_import_successor_already_in_the_database(deps):
    await load_small(deps)
    report = await service.import_catalogue(
        deps, data={"matters": [factories.entry(LICENCE, retired=True, successor=FUND)]}
    )
    assert present.import_report(report)["unchanged"] == 1  # same content, only retired
    assert (await Matter.get(code=LICENCE)).successor_code == FUND


@pytest.mark.parametrize(
    ("entry", "reasons"),
    [
        (
            factories.entry(LICENCE, retired=True, successor="4308-XX-XX-999"),
            ["继任事项 4308-XX-XX-999 不存在或未在办理"],
        ),
        (factories.entry(LICENCE, retired=True, successor=LICENCE), ["继任事项不能是本事项"]),
        (factories.entry(LICENCE, successor=FOOD), ["只有已取消的事项可以指定继任事项"]),
    ],
    ids=["unknown", "self", "not-retired"],
)
async def test_import_successor_rules(deps, entry, reasons):
    data = factories.catalogue(entry, factories.entry(FOOD))
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=data)
    [error] = exc.value.details["errors"]
    assert (error["index"], error["code"]) == (0, LICENCE)
    assert error["fields"] == {"__root__": reasons}
    assert await Matter.all().count() == 0


async def test_import_successor_must_be_offered_when_the_file_does_not_mention_it(deps):
    await load_small(deps)
    await service.retire(deps, code=FUND)
    await service.create_matter(code="4308-XK-SS-099", content={"name": "草稿事项"})
    for successor in (FUND, "4308-XK-SS-099"):  # retired; never published
        with pytest.raises(ImportInvalid) as exc:
            await service.import_catalogue(
                deps, data={"matters": [factories.entry(LICENCE, retired=True, successor=successor)]}
            )
        [error] = exc.value.details["errors"]
        assert error["fields"] == {"__root__": [f"继任事项 {successor} 不存在或未在办理"]}
    assert (await Matter.get(code=LICENCE)).status is MatterStatus.active


async def test_import_successor_retired_by_the_same_file_is_refused(deps):
    await load_small(deps)
    data = {"matters": [factories.entry(LICENCE, retired=True, successor=FOOD), factories.entry(FOOD, retired=True)]}
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=data)
    [error] = exc.value.details["errors"]
    assert (error["index"], error["fields"]) == (0, {"__root__": [f"继任事项 {FOOD} 有错误或已取消"]})
    assert await Matter.filter(status=MatterStatus.retired).count() == 0


async def test_import_successor_reactivated_by_the_same_file_is_accepted(deps):
    await load_small(deps)
    await service.retire(deps, code=FUND)
    fund = factories.small_catalogue()["matters"][2]  # active again in this file
    data = {"matters": [factories.entry(LICENCE, retired=True, successor=FUND), fund]}
    report = await service.import_catalogue(deps, data=data)
    assert report.skipped == []
    assert (await Matter.get(code=FUND)).status is MatterStatus.active
    assert (await Matter.get(code=LICENCE)).successor_code == FUND


async def test_reimport_without_retired_flag_reactivates(deps):
    data = factories.catalogue(factories.entry(LICENCE, retired=True), factories.entry(FOOD))
    await service.import_catalogue(deps, data=data)
    assert (await Matter.get(code=LICENCE)).status is MatterStatus.retired
    await service.import_catalogue(deps, data=factories.catalogue(factories.entry(LICENCE), factories.entry(FOOD)))
    matter = await Matter.get(code=LICENCE)
    assert (matter.status, matter.successor_code) == (MatterStatus.active, None)


async def test_partial_import_does_not_keep_a_successor_it_skipped(deps):
    data = factories.catalogue(
        factories.entry(LICENCE, retired=True, successor=FOOD),
        factories.entry(FOOD, department="nope"),  # skipped
    )
    report = await service.import_catalogue(deps, data=data, partial=True)
    skipped = {e["index"]: e for e in report.skipped}
    assert sorted(skipped) == [0, 1]
    assert skipped[0]["fields"] == {"__root__": [f"继任事项 {FOOD} 有错误或已取消"]}
    assert skipped[1]["fields"] == {"__root__": ["部门 nope 不存在"]}
    assert report.created == 0
    for matter in await Matter.filter(successor_code__not_isnull=True):
        assert await Matter.exists(code=matter.successor_code), f"{matter.code} -> {matter.successor_code}"


async def test_import_refuses_a_retired_successor(deps):
    data = factories.catalogue(
        factories.entry(LICENCE, retired=True, successor=FOOD),
        factories.entry(FOOD, retired=True),
    )
    with pytest.raises(ImportInvalid) as exc:
        await service.import_catalogue(deps, data=data)
    [error] = exc.value.details["errors"]
    assert (error["index"], error["code"]) == (0, LICENCE)
    assert error["fields"] == {"__root__": [f"继任事项 {FOOD} 有错误或已取消"]}
    assert await counts() == {"department": 0, "hall": 0, "matter": 0, "version": 0}


async def test_partial_import_skips_a_retired_successor_and_keeps_the_rest(deps):
    data = factories.catalogue(
        factories.entry(LICENCE, retired=True, successor=FOOD),
        factories.entry(FOOD, retired=True),
        factories.entry(FUND, name="住房公积金提取", department="gjjzx", hall="gongjijin"),
    )
    report = await service.import_catalogue(deps, data=data, partial=True)
    assert [e["index"] for e in report.skipped] == [0]
    assert report.created == 2
    assert (await Matter.get(code=FOOD)).status is MatterStatus.retired
    assert not await Matter.exists(code=LICENCE)


# ---------------------------------------------------------------- export


async def test_export_then_import_is_unchanged_for_all(deps):
    data = factories.small_catalogue()
    data["matters"].append(factories.entry("4308-XK-SS-009", retired=True, successor=FOOD))
    await service.import_catalogue(deps, data=data)
    exported = await service.export_catalogue()
    assert [m["code"] for m in exported["matters"]] == sorted([LICENCE, FOOD, FUND, "4308-XK-SS-009"])
    assert [d["code"] for d in exported["departments"]] == ["gjjzx", "scjgj"]
    assert [h["code"] for h in exported["halls"]] == ["main", "gongjijin"]
    retired = next(m for m in exported["matters"] if m["code"] == "4308-XK-SS-009")
    assert (retired["retired"], retired["successor"]) == (True, FOOD)
    before = await counts()

    report = await service.import_catalogue(deps, data=copy.deepcopy(exported))
    assert present.import_report(report) == {"created": 0, "updated": 0, "unchanged": 4, "skipped": []}
    assert await counts() == before
    assert await service.export_catalogue() == exported


async def test_export_into_an_empty_database_recreates_the_catalogue(deps):
    await load_small(deps)
    exported = await service.export_catalogue()
    guide_before = await guide_of(FUND)
    for model in (MatterVersion, Matter, Hall, Department):
        await model.all().delete()
    report = await service.import_catalogue(deps, data=exported)
    assert report.created == 3
    guide_after = await guide_of(FUND)
    for key in ("published_at",):
        guide_before.pop(key)
        guide_after.pop(key)
    assert guide_after == guide_before


async def test_export_leaves_out_never_published_matters(deps):
    await load_small(deps)
    await service.create_matter(code="4308-XK-SS-099", content={"name": "草稿事项"})
    exported = await service.export_catalogue()
    assert "4308-XK-SS-099" not in {m["code"] for m in exported["matters"]}


async def test_export_then_import_is_unchanged_for_matters_published_from_drafts(deps):
    await service.import_catalogue(deps, data=factories.catalogue())  # departments and halls
    await service.create_matter(code=LICENCE, content=factories.guide())
    await service.publish(deps, code=LICENCE, no=1)
    report = await service.import_catalogue(deps, data=await service.export_catalogue())
    assert present.import_report(report) == {"created": 0, "updated": 0, "unchanged": 1, "skipped": []}
    assert len(await versions_of(LICENCE)) == 1


async def test_publish_stores_the_normalised_guide(deps):
    await reference_data(deps)
    draft = factories.guide(materials=[{"name": "申请书"}])  # defaults left out, as an editor may
    await service.create_matter(code=LICENCE, content=draft)
    published = await service.publish(deps, code=LICENCE, no=1)
    [version] = await versions_of(LICENCE)
    assert version.content["materials"][0]["form"] == "original"  # the defaults are filled in
    assert version.content == service.validate_guide(draft).model_dump(mode="json")
    assert version.content_hash == service.content_hash(version.content) == published.version.content_hash
    exported = await service.export_catalogue()
    report = await service.import_catalogue(deps, data=exported)
    assert report.unchanged == 1


# ---------------------------------------------------------------- create -> draft -> publish


async def reference_data(deps) -> None:
    await service.import_catalogue(deps, data=factories.catalogue())


async def test_create_draft_publish_flow(deps):
    await reference_data(deps)
    created = await service.create_matter(code=" 4308-xk-ss-001 ", content={"name": "营业执照"})
    assert created.code == LICENCE
    assert (created.version.no, created.version.status) == (1, "draft")
    assert created.version.published_at is None
    # a draft is not public
    with pytest.raises(MatterNotFound):
        await guide_of(LICENCE)
    with pytest.raises(VersionNotFound):
        await version_of(LICENCE, 1)
    assert (await service.search_matters(q="营业执照")).total == 0

    saved = await service.save_draft(code=LICENCE, content=factories.guide())
    assert saved.version.no == 1  # the open draft is replaced, not a new version
    assert saved.version.content_hash == service.content_hash(factories.guide())
    assert await MatterVersion.all().count() == 1

    published = await service.publish(deps, code=LICENCE, no=1)
    assert published.version.status == "published"
    assert present.version_change(published)["version"]["published_at"].endswith("+08:00")
    guide = await guide_of(LICENCE)
    assert (guide["version"], guide["version_status"], guide["name"]) == (1, "published", "营业执照设立登记")
    assert (await service.search_matters(q="营业执照")).total == 1

    # the next draft is version 2; the published one stays public until v2 is published
    draft2 = await service.save_draft(code=LICENCE, content=factories.guide(name="营业执照变更登记"))
    assert (draft2.version.no, draft2.version.status) == (2, "draft")
    assert (await guide_of(LICENCE))["version"] == 1
    await service.publish(deps, code=LICENCE, no=2)
    guide = await guide_of(LICENCE)
    assert (guide["version"], guide["name"]) == (2, "营业执照变更登记")
    assert (await version_of(LICENCE, 1))["version_status"] == "superseded"
    assert [v.status for v in await service.list_versions(code=LICENCE)] == ["published", "superseded"]


async def test_create_matter_rules():
    await service.create_matter(code=LICENCE, content={})
    with pytest.raises(MatterCodeTaken):
        await service.create_matter(code=LICENCE.lower(), content={})
    with pytest.raises(InvalidInput) as exc:
        await service.create_matter(code="坏编码", content={})
    assert "code" in exc.value.details["fields"]
    with pytest.raises(InvalidInput):
        await service.create_matter(code=FOOD, content=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as exc:
        await service.create_matter(code=FOOD, content={"summary": "长" * (service.MAX_DRAFT_BYTES // 3 + 1)})
    assert exc.value.details == {"max_bytes": service.MAX_DRAFT_BYTES}
    assert await Matter.all().values_list("code", flat=True) == [LICENCE]


async def test_save_draft_of_unknown_matter():
    with pytest.raises(MatterNotFound):
        await service.save_draft(code="4308-XX-XX-999", content={})


async def test_publishing_an_invalid_draft_raises_guide_invalid_with_field_reasons(deps):
    await reference_data(deps)
    content = factories.guide(visits=-1, legal_basis="")
    del content["steps"]
    await service.create_matter(code=LICENCE, content=content)
    with pytest.raises(GuideInvalid) as exc:
        await service.publish(deps, code=LICENCE, no=1)
    fields = exc.value.details["fields"]
    assert set(fields) == {"visits", "legal_basis", "steps"}
    assert all(isinstance(r, list) and r for r in fields.values())
    version = await MatterVersion.get(matter__code=LICENCE, no=1)
    assert version.status is VersionStatus.draft
    assert (await Matter.get(code=LICENCE)).published_no is None


async def test_publishing_a_draft_with_a_model_rule_broken(deps):
    await reference_data(deps)
    await service.create_matter(code=LICENCE, content=factories.guide(legal_limit_days=1, promised_limit_days=2))
    with pytest.raises(GuideInvalid) as exc:
        await service.publish(deps, code=LICENCE, no=1)
    assert exc.value.details["fields"] == {"__root__": ["承诺时限不得超过法定时限"]}


async def test_publishing_a_draft_with_unknown_department_and_hall(deps):
    await reference_data(deps)
    await service.create_matter(code=LICENCE, content=factories.guide(department="nope", hall="nowhere"))
    with pytest.raises(GuideInvalid) as exc:
        await service.publish(deps, code=LICENCE, no=1)
    assert exc.value.details["fields"] == {"department": ["部门 nope 不存在"], "hall": ["大厅 nowhere 不存在"]}


async def test_publishing_a_non_draft_raises_version_not_draft(deps):
    await load_small(deps)
    with pytest.raises(VersionNotDraft) as exc:
        await service.publish(deps, code=LICENCE, no=1)
    assert exc.value.details == {"version": 1, "status": "published"}
    await service.save_draft(code=LICENCE, content=factories.guide(name="新名称"))
    await service.publish(deps, code=LICENCE, no=2)
    with pytest.raises(VersionNotDraft) as exc:
        await service.publish(deps, code=LICENCE, no=1)
    assert exc.value.details["status"] == "superseded"


async def test_publishing_a_missing_version_or_matter(deps):
    await load_small(deps)
    with pytest.raises(VersionNotFound):
        await service.publish(deps, code=LICENCE, no=7)
    with pytest.raises(MatterNotFound):
        await service.publish(deps, code="4308-XX-XX-999", no=1)


OUT_OF_RANGE = [0, -1, service.MAX_VERSION_NO + 1, 2**31, 2**63, 10**20]


@pytest.mark.parametrize("no", OUT_OF_RANGE)
async def test_out_of_range_version_numbers_are_version_not_found(deps, no):
    await load_small(deps)
    await service.save_draft(code=LICENCE, content=factories.guide(name="草稿"))
    with pytest.raises(VersionNotFound) as exc:
        await version_of(LICENCE, no)
    assert exc.value.details == {"matter_code": LICENCE, "version": no}
    with pytest.raises(VersionNotFound):
        await service.get_draft_content(code=LICENCE, no=no)
    with pytest.raises(VersionNotFound):
        await service.publish(deps, code=LICENCE, no=no)
    assert [v.status for v in await versions_of(LICENCE)] == [VersionStatus.published, VersionStatus.draft]


async def test_version_numbers_at_the_edges_of_the_range_are_looked_up(deps):
    await load_small(deps)
    assert (await version_of(LICENCE, 1))["version"] == 1
    assert (await service.get_draft_content(code=LICENCE, no=1)).version.no == 1
    with pytest.raises(VersionNotFound):
        await version_of(LICENCE, service.MAX_VERSION_NO)


async def test_exactly_one_published_version_per_matter(deps):
    await load_small(deps)
    for n in range(2, 6):
        await service.save_draft(code=LICENCE, content=factories.guide(name=f"第{n}版"))
        await service.publish(deps, code=LICENCE, no=n)
    statuses = [v.status for v in await versions_of(LICENCE)]
    assert statuses == [VersionStatus.superseded] * 4 + [VersionStatus.published]
    assert (await Matter.get(code=LICENCE)).published_no == 5
    assert await MatterVersion.filter(status=VersionStatus.published).count() == 3  # one per matter


async def test_database_rejects_a_second_published_version(deps):
    await load_small(deps)
    matter = await Matter.get(code=LICENCE)
    content = factories.guide()
    with pytest.raises(IntegrityError):
        await MatterVersion.create(
            matter=matter, no=2, status=VersionStatus.published, content=content, content_hash="x" * 64
        )
    draft = await MatterVersion.create(matter=matter, no=3, content=content, content_hash="y" * 64)
    draft.status = VersionStatus.published
    with pytest.raises(IntegrityError):
        await draft.save()
    assert await MatterVersion.filter(matter_id=matter.id, status=VersionStatus.published).count() == 1
    # other matters and other statuses are not constrained
    await MatterVersion.create(matter=matter, no=4, status=VersionStatus.superseded, content=content, content_hash="z")


# ---------------------------------------------------------------- retire


async def test_retire_without_successor(deps):
    await load_small(deps)
    result = await service.retire(deps, code=LICENCE)
    assert present.retirement(result) == {"code": LICENCE, "status": "retired", "successor": None}
    guide = await guide_of(LICENCE)
    assert (guide["status"], guide["successor"]) == ("retired", None)
    assert LICENCE not in {m.code for m in (await service.search_matters()).items}
    sections = {s.code: s.matter_count for s in await service.list_sections()}
    assert sections["commercial"] == 1
    with pytest.raises(MatterRetired):
        await service.save_draft(code=LICENCE, content=factories.guide())


async def test_retire_with_successor(deps):
    await load_small(deps)
    await service.save_draft(code=LICENCE, content=factories.guide(name="新名"))
    result = await service.retire(deps, code=LICENCE, successor=FOOD.lower())
    assert present.retirement(result) == {"code": LICENCE, "status": "retired", "successor": FOOD}
    guide = await guide_of(LICENCE)
    assert guide["successor"] == {"code": FOOD, "name": "食品经营许可", "url": f"{BASE}/m/{FOOD}"}
    with pytest.raises(MatterRetired):
        await service.publish(deps, code=LICENCE, no=2)


@pytest.mark.parametrize("successor", ["4308-XX-XX-999", LICENCE, "retired"])
async def test_retire_refuses_a_bad_successor(deps, successor):
    await load_small(deps)
    if successor == "retired":
        await service.retire(deps, code=FUND)
        successor = FUND
    with pytest.raises(InvalidInput) as exc:
        await service.retire(deps, code=LICENCE, successor=successor)
    assert list(exc.value.details["fields"]) == ["successor"]
    assert (await Matter.get(code=LICENCE)).status is MatterStatus.active


async def test_retire_refuses_a_never_published_successor(deps):
    await load_small(deps)
    await service.create_matter(code="4308-XK-SS-099", content={"name": "草稿事项"})
    with pytest.raises(InvalidInput) as exc:
        await service.retire(deps, code=LICENCE, successor="4308-XK-SS-099")
    assert exc.value.details == {"fields": {"successor": ["无效的继任事项 4308-XK-SS-099"]}}
    assert (await Matter.get(code=LICENCE)).status is MatterStatus.active


async def test_retire_unknown_matter(deps):
    with pytest.raises(MatterNotFound):
        await service.retire(deps, code="4308-XX-XX-999")


# ---------------------------------------------------------------- search and sections


async def codes(**kwargs) -> list[str]:
    return [m.code for m in (await service.search_matters(**kwargs)).items]


async def test_search_by_chinese_substring(deps):
    await load_small(deps)
    assert await codes(q="执照") == [LICENCE]
    assert await codes(q="经营") == [FOOD]
    assert await codes(q="公积金提") == [FUND]
    assert await codes(q="不存在的事项") == []


async def test_search_by_code_is_case_insensitive(deps):
    await load_small(deps)
    assert await codes(q="4308-xk-ss-002") == [FOOD]
    assert await codes(q="xk-ss") == [LICENCE, FOOD]
    assert await codes(q="GG-ZF") == [FUND]


async def test_search_treats_like_wildcards_literally(deps):
    await load_small(deps)
    assert await codes(q="%") == []
    assert await codes(q="_") == []


async def test_search_filters(deps):
    await load_small(deps)
    assert await codes(section="commercial") == [LICENCE, FOOD]
    assert await codes(section="social_security") == [FUND]
    assert await codes(section="tax") == []
    assert await codes(department="gjjzx") == [FUND]
    assert await codes(visits_max=0) == [FOOD, FUND]
    assert await codes(visits_max=1) == [LICENCE, FOOD, FUND]
    assert await codes(q="许可", section="commercial", visits_max=0) == [FOOD]


async def test_search_result_shape(deps):
    await load_small(deps)
    page = await service.search_matters(q="公积金")
    assert present.page(page) == {
        "items": [
            {
                "code": FUND,
                "name": "住房公积金提取",
                "section": "social_security",
                "section_name": "社会保障",
                "department": "gjjzx",
                "department_name": "张家界市住房公积金管理中心",
                "visits": 0,
                "visits_label": "零跑路",
                "online_depth": 4,
                "status": "active",
                "version": 1,
                "kind": "matter",
            }
        ],
        "total": 1,
        "page": 1,
        "page_size": 20,
    }


async def test_search_pagination(deps):
    entries = [factories.entry(f"4308-XK-PG-{n:03d}", name=f"测试事项{n}") for n in range(7)]
    await service.import_catalogue(deps, data=factories.catalogue(*entries))
    pages = [await service.search_matters(q="测试事项", page=p, page_size=3) for p in (1, 2, 3, 4)]
    assert [p.total for p in pages] == [7, 7, 7, 7]
    assert [len(p.items) for p in pages] == [3, 3, 1, 0]
    seen = [m.code for p in pages for m in p.items]
    assert seen == [f"4308-XK-PG-{n:03d}" for n in range(7)]


async def test_search_excludes_retired_unless_asked(deps):
    await load_small(deps)
    await service.retire(deps, code=FOOD)
    assert await codes() == [LICENCE, FUND]
    assert (await service.search_matters()).total == 2
    assert await codes(include_retired=True) == [LICENCE, FOOD, FUND]


async def test_list_sections_counts_offered_matters(deps):
    await load_small(deps)
    await service.create_matter(code="4308-QT-XX-001", content={"name": "草稿", "section": "general"})
    sections = await service.list_sections()
    assert [s.code for s in sections] == [
        "investment",
        "commercial",
        "real_estate",
        "social_security",
        "tax",
        "public_security",
        "general",
    ]
    assert [s.name for s in sections] == [
        "投资项目审批",
        "商事登记",
        "不动产登记",
        "社会保障",
        "税费缴纳",
        "公安服务",
        "其他综合服务",
    ]
    assert {s.code: s.matter_count for s in sections} == {
        "investment": 0,
        "commercial": 2,
        "real_estate": 0,
        "social_security": 1,
        "tax": 0,
        "public_security": 0,
        "general": 0,  # a draft is not offered
    }
    await service.retire(deps, code=FUND)
    counts_after = {s.code: s.matter_count for s in await service.list_sections()}
    assert counts_after["social_security"] == 0


# ---------------------------------------------------------------- reads


async def test_guide_view_has_every_element(deps):
    await load_small(deps)
    guide = await guide_of(FUND.lower())
    assert guide["code"] == FUND
    assert guide["type_name"] == "公共服务"
    assert guide["section_name"] == "社会保障"
    assert guide["visits_label"] == "零跑路"
    assert guide["department"] == {"code": "gjjzx", "name": "张家界市住房公积金管理中心", "phone": "0744-8200002"}
    assert guide["hall"]["address"] == "永定区大庸路 2 号"
    assert guide["fee_total_fen"] == 0
    assert guide["links"]["book"] == f"{BASE}/m/{FUND}/book"
    assert [m["form_name"] for m in guide["materials"]] == ["原件", "复印件"]


@pytest.mark.parametrize(("visits", "label"), [(0, "零跑路"), (1, "最多跑一次"), (2, "跑 2 次")])
def test_visits_label(visits, label):
    assert service.visits_label(visits) == label


@pytest.mark.parametrize("code", ["", "x" * 10_000, "营业执照", "' OR 1=1 --", "../etc/passwd"])
async def test_garbage_codes_are_not_found(deps, code):
    await load_small(deps)
    with pytest.raises(MatterNotFound):
        await guide_of(code)
