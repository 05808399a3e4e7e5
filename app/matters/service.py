"""Catalogue business rules: search, guide reads, drafts, publishing, retiring, import and export."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.cache import LocalCache
from app.errors import (
    BundleInvalid,
    GuideInvalid,
    ImportInvalid,
    InvalidInput,
    MatterCodeTaken,
    MatterInBundle,
    MatterNotFound,
    MatterRetired,
    VersionNotDraft,
    VersionNotFound,
    pydantic_details,
)
from app.matters import schemas
from app.matters.models import Department, Hall, Matter, MatterStatus, MatterVersion, VersionStatus
from app.matters.schemas import (
    MATTER_CODE_RE,
    SECTION_NAMES,
    Guide,
    MatterEntry,
    Section,
)
from app.paging import Page

MAX_DRAFT_BYTES = 256 * 1024
MAX_VERSION_NO = 1_000_000
GUIDE_NAMESPACE = "guide"  # the per-worker cache of published guides (app.matters.guides)

PublishHook = Callable[[str], Awaitable[object]]
ChangeHook = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class CatalogueDeps:
    """What the catalogue's writes need: the worker's cache and whom to tell (wired in app.bootstrap)."""

    cache: LocalCache
    # Called with a matter's code inside the publishing transaction (the codes issue its default code).
    on_published: tuple[PublishHook, ...] = ()
    # Called after a write that changes what citizens see (caches derived from the catalogue drop it).
    on_changed: tuple[ChangeHook, ...] = ()


@dataclass(frozen=True)
class SectionCount:
    """A section and how many matters it offers."""

    code: str
    name: str
    matter_count: int


@dataclass(frozen=True)
class MatterSummary:
    """Short description of one matter (search results, codes, links)."""

    code: str
    name: str
    section: str
    section_name: str
    department: str
    department_name: str
    visits: int
    visits_label: str
    online_depth: int
    status: str
    version: int | None
    kind: str = "matter"  # matter | bundle (一件事)


@dataclass(frozen=True)
class HallInfo:
    """A hall (main hall or sub-hall)."""

    code: str
    name: str
    kind: str
    address: str
    phone: str
    hours: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class DepartmentInfo:
    """A department (实施主体)."""

    code: str
    name: str
    phone: str


@dataclass(frozen=True)
class MatterRef:
    """A matter named by code and name (a retired matter's successor)."""

    code: str
    name: str


@dataclass(frozen=True)
class VersionInfo:
    """One version of a matter's guide (administration)."""

    no: int
    status: str
    content_hash: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    published_at: dt.datetime | None
    superseded_at: dt.datetime | None


@dataclass(frozen=True)
class VersionChange:
    """A matter and the version a write created, replaced or published."""

    code: str
    version: VersionInfo


@dataclass(frozen=True)
class VersionContent:
    """A version with its raw content (drafts included)."""

    code: str
    version: VersionInfo
    content: dict[str, Any]


@dataclass(frozen=True)
class Retirement:
    """A retired matter and its successor, if any."""

    code: str
    status: str
    successor: str | None


@dataclass(frozen=True)
class GuideVersion:
    """A published (or superseded) version of a matter's guide with the catalogue facts around it."""

    code: str
    no: int
    version_status: str
    published_at: dt.datetime | None
    status: str
    successor: MatterRef | None
    guide: Guide
    department: DepartmentInfo | None  # None when the guide names a department the catalogue lacks
    hall: HallInfo | None


@dataclass
class ImportReport:
    """What an import did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)


async def _catalogue_changed(deps: CatalogueDeps) -> None:
    """Cached guides are stale now; so is whatever others derived from the catalogue (their hooks)."""
    await deps.cache.invalidate(GUIDE_NAMESPACE)
    for hook in deps.on_changed:
        await hook()


async def _version_or_none(matter: Matter, no: int, **filters: Any) -> MatterVersion | None:
    """One version of a matter; numbers outside the valid range never reach the database."""
    if not 1 <= no <= MAX_VERSION_NO:
        return None
    return await MatterVersion.get_or_none(matter_id=matter.id, no=no, **filters)


def content_hash(content: dict[str, Any]) -> str:
    """Stable hash of guide content: same content, same hash, whatever the key order."""
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def visits_label(visits: int) -> str:
    """The badge text for the number of on-site trips."""
    if visits == 0:
        return "零跑路"
    if visits == 1:
        return "最多跑一次"
    return f"跑 {visits} 次"


def _normalise_code(code: str) -> str:
    code = (code or "").strip().upper()
    if not MATTER_CODE_RE.match(code):
        raise MatterNotFound(details={"matter_code": code[:64]})
    return code


# ---------------------------------------------------------------- reads


async def list_sections() -> list[SectionCount]:
    """The seven sections with the number of offered matters in each."""
    counts: dict[str, int] = {}
    rows = await Matter.filter(status=MatterStatus.active, published_no__not_isnull=True).values_list(
        "section", flat=True
    )
    for section in rows:
        counts[section] = counts.get(section, 0) + 1
    return [SectionCount(s.value, SECTION_NAMES[s], counts.get(s.value, 0)) for s in Section]


async def search_matters(
    *,
    q: str | None = None,
    section: str | None = None,
    department: str | None = None,
    visits_max: int | None = None,
    include_retired: bool = False,
    page: int = 1,
    page_size: int = 20,
) -> Page[MatterSummary]:
    """Published matters matching a Chinese substring or code, filtered, one page."""
    query = Matter.filter(published_no__not_isnull=True)
    if not include_retired:
        query = query.filter(status=MatterStatus.active)
    if q:
        query = query.filter(Q(name__icontains=q) | Q(code__icontains=q.upper()))
    if section:
        query = query.filter(section=section)
    if department:
        query = query.filter(department_code=department)
    if visits_max is not None:
        query = query.filter(visits__lte=visits_max)
    total = await query.count()
    rows = await query.order_by("section", "code").offset((page - 1) * page_size).limit(page_size)
    departments = await _department_names({m.department_code for m in rows})
    return Page([_summary(m, departments) for m in rows], total, page, page_size)


def _summary(matter: Matter, departments: dict[str, str]) -> MatterSummary:
    # A never-published draft may name a section that does not exist yet (its guide is not validated).
    section = Section(matter.section) if matter.section in Section.__members__ else Section.general
    return MatterSummary(
        code=matter.code,
        name=matter.name,
        section=section.value,
        section_name=SECTION_NAMES[section],
        department=matter.department_code,
        department_name=departments.get(matter.department_code, ""),
        visits=matter.visits,
        visits_label=visits_label(matter.visits),
        online_depth=matter.online_depth,
        status=matter.status.value,
        version=matter.published_no,
        kind=matter.kind,
    )


async def _department_names(codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    return dict(await Department.filter(code__in=codes).values_list("code", "name"))


async def matter_summary(code: str) -> MatterSummary:
    """Short description of one matter (for codes and links)."""
    matter = await _get_matter(code)
    return _summary(matter, await _department_names({matter.department_code}))


async def _get_matter(code: str) -> Matter:
    matter = await Matter.get_or_none(code=_normalise_code(code))
    if matter is None:
        raise MatterNotFound(details={"matter_code": code[:64]})
    return matter


async def get_guide(code: str) -> GuideVersion:
    """The current published guide of a matter."""
    matter = await _get_matter(code)
    if matter.published_no is None:
        raise MatterNotFound(details={"matter_code": matter.code})
    version = await MatterVersion.get(matter_id=matter.id, no=matter.published_no)
    return await _guide_version(matter, version)


async def get_version(code: str, no: int) -> GuideVersion:
    """A published or superseded version of a matter's guide (drafts are not public)."""
    matter = await _get_matter(code)
    version = await _version_or_none(matter, no, status__in=[VersionStatus.published, VersionStatus.superseded])
    if version is None:
        raise VersionNotFound(details={"matter_code": matter.code, "version": no})
    return await _guide_version(matter, version)


async def _guide_version(matter: Matter, version: MatterVersion) -> GuideVersion:
    guide = Guide.model_validate(version.content)
    department = await Department.get_or_none(code=guide.department)
    hall = await Hall.get_or_none(code=guide.hall)
    successor = None
    if matter.status is MatterStatus.retired and matter.successor_code:
        succ = await Matter.get_or_none(code=matter.successor_code)
        if succ is not None:
            successor = MatterRef(succ.code, succ.name)
    return GuideVersion(
        code=matter.code,
        no=version.no,
        version_status=version.status.value,
        published_at=version.published_at,
        status=matter.status.value,
        successor=successor,
        guide=guide,
        department=DepartmentInfo(department.code, department.name, department.phone) if department else None,
        hall=_hall_info(hall) if hall else None,
    )


def _hall_info(hall: Hall) -> HallInfo:
    return HallInfo(
        code=hall.code,
        name=hall.name,
        kind=hall.kind,
        address=hall.address,
        phone=hall.phone,
        hours=hall.hours,
        latitude=hall.latitude,
        longitude=hall.longitude,
    )


async def list_halls() -> list[HallInfo]:
    """All halls."""
    return [_hall_info(h) for h in await Hall.all().order_by("id")]


async def list_departments() -> list[DepartmentInfo]:
    """All departments."""
    return [DepartmentInfo(d.code, d.name, d.phone) for d in await Department.all().order_by("code")]


# ---------------------------------------------------------------- administration


def validate_guide(content: Any) -> Guide:
    """Validate full guide content; raises GuideInvalid with per-field reasons."""
    if not isinstance(content, dict):
        raise GuideInvalid(details={"fields": {"__root__": ["指南内容必须是 JSON 对象"]}})
    try:
        return Guide.model_validate(content)
    except ValidationError as exc:
        raise GuideInvalid(details=pydantic_details(exc)) from None


async def _check_references(guide: Guide) -> None:
    problems: dict[str, list[str]] = {}
    if not await Department.exists(code=guide.department):
        problems["department"] = [f"部门 {guide.department} 不存在"]
    if not await Hall.exists(code=guide.hall):
        problems["hall"] = [f"大厅 {guide.hall} 不存在"]
    if problems:
        raise GuideInvalid(details={"fields": problems})


async def bundle_problems(guide: Guide, *, in_file: dict[str, Guide] | None = None) -> list[str]:
    """Why a bundle cannot be published against its members (none for a plain matter).

    A member is an offered (active, published) matter that is not itself a bundle, taken from the
    import file when it is there. A stage runs its members in parallel, so its promise may not exceed
    the legal limit of any of them, and the bundle's total may not exceed the sum of their legal limits.
    """
    if guide.bundle is None:
        return []
    in_file = in_file or {}
    members: dict[str, Guide] = {}
    reasons: list[str] = []
    for code in guide.bundle.members():
        member = in_file.get(code)
        if member is None:
            matter = await Matter.get_or_none(code=code, status=MatterStatus.active, published_no__not_isnull=True)
            if matter is not None:
                version = await MatterVersion.get(matter_id=matter.id, no=matter.published_no)
                member = Guide.model_validate(version.content)
        if member is None:
            reasons.append(f"成员事项 {code} 不存在或未在办理")
        elif member.bundle is not None:
            reasons.append(f"成员事项 {code} 本身是「一件事」，不能嵌套")
        else:
            members[code] = member
    if reasons:
        return reasons
    for no, stage in enumerate(guide.bundle.stages, start=1):
        tightest = min(stage.matters, key=lambda c: members[c].legal_limit_days)
        limit = members[tightest].legal_limit_days
        if stage.promised_days > limit:
            reasons.append(
                f"第 {no} 阶段「{stage.name}」承诺 {stage.promised_days} 个工作日，超过成员事项"
                f"「{members[tightest].name}」的法定时限 {limit} 个工作日"
            )
    legal = sum(m.legal_limit_days for m in members.values())
    if guide.promised_limit_days > legal:
        reasons.append(f"承诺时限 {guide.promised_limit_days} 个工作日超过各成员事项法定时限之和 {legal} 个工作日")
    if guide.legal_limit_days > legal:
        reasons.append(f"法定时限 {guide.legal_limit_days} 个工作日超过各成员事项法定时限之和 {legal} 个工作日")
    return reasons


async def bundles_holding(code: str) -> list[str]:
    """The offered bundles that list a matter among their members."""
    rows = await MatterVersion.filter(
        status=VersionStatus.published, matter__status=MatterStatus.active, matter__kind="bundle"
    ).values("matter__code", "content")
    return sorted(
        r["matter__code"]
        for r in rows
        if (r["content"] or {}).get("bundle")
        and code in {c for s in r["content"]["bundle"]["stages"] for c in s["matters"]}
    )


async def _check_bundle(guide: Guide) -> None:
    reasons = await bundle_problems(guide)
    if reasons:
        raise BundleInvalid("；".join(reasons), details={"reasons": reasons})


def _check_draft(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise InvalidInput("草稿内容必须是 JSON 对象", details={"fields": {"content": ["必须是对象"]}})
    if len(json.dumps(content, ensure_ascii=False).encode()) > MAX_DRAFT_BYTES:
        raise InvalidInput("草稿内容过大", details={"max_bytes": MAX_DRAFT_BYTES})
    return content


def _version_info(version: MatterVersion) -> VersionInfo:
    return VersionInfo(
        no=version.no,
        status=version.status.value,
        content_hash=version.content_hash,
        created_at=version.created_at,
        updated_at=version.updated_at,
        published_at=version.published_at,
        superseded_at=version.superseded_at,
    )


async def create_matter(*, code: str, content: dict[str, Any]) -> VersionChange:
    """Create a matter with a first draft version (content may still be incomplete)."""
    code = (code or "").strip().upper()
    if not MATTER_CODE_RE.match(code):
        raise InvalidInput("事项编码格式不正确", details={"fields": {"code": ["应为 6-40 位大写字母、数字或连字符"]}})
    content = _check_draft(content)
    async with in_transaction():
        if await Matter.exists(code=code):
            raise MatterCodeTaken(details={"matter_code": code})
        matter = await Matter.create(
            code=code,
            name=str(content.get("name") or code)[:200],
            section=str(content.get("section") or Section.general.value)[:20],
            department_code=str(content.get("department") or "")[:32],
            hall_code=str(content.get("hall") or "")[:32],
        )
        version = await MatterVersion.create(matter=matter, no=1, content=content, content_hash=content_hash(content))
        await audit.record(
            action="catalogue.create",
            object_type="matter",
            object_id=code,
            summary=f"新建事项 {code}（草稿 v1）",
            changes={"version": 1, "content_hash": version.content_hash},
        )
    return VersionChange(matter.code, _version_info(version))


async def save_draft(*, code: str, content: dict[str, Any]) -> VersionChange:
    """Create or replace the matter's open draft (one draft at a time)."""
    content = _check_draft(content)
    async with in_transaction():
        matter = await _locked_matter(code)
        if matter.status is MatterStatus.retired:
            raise MatterRetired(details={"matter_code": matter.code})
        draft = await MatterVersion.filter(matter_id=matter.id, status=VersionStatus.draft).first()
        if draft is None:
            last = await MatterVersion.filter(matter_id=matter.id).order_by("-no").first()
            draft = await MatterVersion.create(
                matter=matter,
                no=(last.no + 1) if last else 1,
                content=content,
                content_hash=content_hash(content),
            )
        else:
            draft.content = content
            draft.content_hash = content_hash(content)
            await draft.save(update_fields=["content", "content_hash", "updated_at"])
        await audit.record(
            action="catalogue.draft",
            object_type="matter",
            object_id=matter.code,
            summary=f"保存事项 {matter.code} 草稿 v{draft.no}",
            changes={"version": draft.no, "content_hash": draft.content_hash},
        )
    return VersionChange(matter.code, _version_info(draft))


async def _locked_matter(code: str) -> Matter:
    # FOR UPDATE on PostgreSQL serialises publishers of one matter; SQLite's writer lock does the same.
    matter = await Matter.filter(code=_normalise_code(code)).select_for_update().first()
    if matter is None:
        raise MatterNotFound(details={"matter_code": code[:64]})
    return matter


async def publish(deps: CatalogueDeps, *, code: str, no: int) -> VersionChange:
    """Publish a draft: validate it fully, supersede the current version, in one transaction."""
    async with in_transaction():
        matter = await _locked_matter(code)
        if matter.status is MatterStatus.retired:
            raise MatterRetired(details={"matter_code": matter.code})
        version = await _version_or_none(matter, no)
        if version is None:
            raise VersionNotFound(details={"matter_code": matter.code, "version": no})
        if version.status is not VersionStatus.draft:
            raise VersionNotDraft(details={"version": no, "status": version.status.value})
        guide = validate_guide(version.content)
        await _check_references(guide)
        await _check_bundle(guide)
        # Store the normalised guide, so an export re-imported later is recognised as unchanged.
        version.content = guide.model_dump(mode="json")
        version.content_hash = content_hash(version.content)
        await version.save(update_fields=["content", "content_hash", "updated_at"])
        await _publish_version(deps, matter, version, guide)
        await audit.record(
            action="catalogue.publish",
            object_type="matter",
            object_id=matter.code,
            summary=f"发布事项 {matter.code} v{version.no}",
            changes={"version": version.no, "content_hash": version.content_hash},
        )
    await _catalogue_changed(deps)
    return VersionChange(matter.code, _version_info(version))


async def _publish_version(deps: CatalogueDeps, matter: Matter, version: MatterVersion, guide: Guide) -> None:
    now = clock.now()
    # Supersede first: the partial unique index allows one published version per matter.
    await MatterVersion.filter(matter_id=matter.id, status=VersionStatus.published).update(
        status=VersionStatus.superseded, superseded_at=now
    )
    version.status = VersionStatus.published
    version.published_at = now
    await version.save(update_fields=["status", "published_at", "updated_at"])
    matter.published_no = version.no
    matter.name = guide.name
    matter.section = guide.section.value
    matter.department_code = guide.department
    matter.hall_code = guide.hall
    matter.visits = guide.visits
    matter.online_depth = guide.online_depth
    matter.kind = "bundle" if guide.bundle is not None else "matter"
    await matter.save()
    # Every published matter has its printed code from the first publish on (the codes' hook).
    for hook in deps.on_published:
        await hook(matter.code)


async def retire(deps: CatalogueDeps, *, code: str, successor: str | None = None) -> Retirement:
    """Stop offering a matter, optionally pointing citizens to its successor."""
    async with in_transaction():
        matter = await _locked_matter(code)
        holders = await bundles_holding(matter.code)
        if holders:
            # A published bundle would open a part for a matter no longer offered.
            raise MatterInBundle(details={"matter_code": matter.code, "bundles": holders})
        successor_code = None
        if successor:
            successor_code = successor.strip().upper()
            succ = await Matter.get_or_none(code=successor_code)
            if succ is None or succ.status is MatterStatus.retired or succ.published_no is None or succ.id == matter.id:
                raise InvalidInput(
                    "继任事项不存在、已取消或与本事项相同",
                    details={"fields": {"successor": [f"无效的继任事项 {successor_code}"]}},
                )
        matter.status = MatterStatus.retired
        matter.successor_code = successor_code
        await matter.save(update_fields=["status", "successor_code", "updated_at"])
        await audit.record(
            action="catalogue.retire",
            object_type="matter",
            object_id=matter.code,
            summary=f"取消事项 {matter.code}" + (f"，继任 {successor_code}" if successor_code else ""),
            changes={"successor": successor_code},
        )
    await _catalogue_changed(deps)
    return Retirement(matter.code, matter.status.value, successor_code)


async def admin_matters(
    *, q: str | None = None, status: str | None = None, page: int = 1, page_size: int = 50
) -> Page[MatterSummary]:
    """Every matter for administration (drafts never published included): by name or code, by status."""
    query = Matter.all()
    if q:
        query = query.filter(Q(name__icontains=q) | Q(code__icontains=q.upper()))
    if status == "unpublished":
        query = query.filter(published_no__isnull=True)
    elif status in (MatterStatus.active.value, MatterStatus.retired.value):
        query = query.filter(status=MatterStatus(status), published_no__not_isnull=True)
    total = await query.count()
    rows = await query.order_by("code").offset((page - 1) * page_size).limit(page_size)
    departments = await _department_names({m.department_code for m in rows})
    return Page([_summary(m, departments) for m in rows], total, page, page_size)


async def list_versions(*, code: str) -> list[VersionInfo]:
    """Every version of a matter, newest first (administration)."""
    matter = await _get_matter(code)
    versions = await MatterVersion.filter(matter_id=matter.id).order_by("-no")
    return [_version_info(v) for v in versions]


async def get_draft_content(*, code: str, no: int) -> VersionContent:
    """Any version's raw content (administration, including drafts)."""
    matter = await _get_matter(code)
    version = await _version_or_none(matter, no)
    if version is None:
        raise VersionNotFound(details={"matter_code": matter.code, "version": no})
    return VersionContent(matter.code, _version_info(version), version.content)


# ---------------------------------------------------------------- import / export


def _validate_entries(data: Any) -> tuple[list, list, list, list[dict[str, Any]]]:
    """Validate every entry of an import file; collect all problems, not just the first."""
    errors: list[dict[str, Any]] = []
    if not isinstance(data, dict):
        raise ImportInvalid(details={"errors": [{"index": None, "reasons": ["文件必须是 JSON 对象"]}]})
    try:
        schemas.CatalogueFile.model_validate(data)
    except ValidationError as exc:
        raise ImportInvalid(details={"errors": [{"index": None, **pydantic_details(exc)}]}) from None

    def each(kind: str, model: type, items: list[Any]) -> list:
        good = []
        for index, item in enumerate(items):
            try:
                good.append((index, model.model_validate(item)))
            except ValidationError as exc:
                key = item.get("code") if isinstance(item, dict) else None
                errors.append({"kind": kind, "index": index, "code": key, **pydantic_details(exc)})
        return good

    departments = each("department", schemas.Department, data.get("departments", []))
    halls = each("hall", schemas.Hall, data.get("halls", []))
    matters = each("matter", MatterEntry, data.get("matters", []))
    return departments, halls, matters, errors


async def import_catalogue(
    deps: CatalogueDeps,
    *,
    data: Any,
    partial: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Idempotent upsert of a catalogue file; all-or-nothing unless `partial`."""
    departments, halls, matters, errors = _validate_entries(data)
    known_departments = {d.code for _, d in departments} | set(await Department.all().values_list("code", flat=True))
    known_halls = {h.code for _, h in halls} | set(await Hall.all().values_list("code", flat=True))
    seen: dict[str, int] = {}
    checked: list[tuple[int, MatterEntry, list[str]]] = []
    for index, entry in matters:
        reasons = []
        if entry.department not in known_departments:
            reasons.append(f"部门 {entry.department} 不存在")
        if entry.hall not in known_halls:
            reasons.append(f"大厅 {entry.hall} 不存在")
        if entry.code in seen:
            reasons.append(f"事项编码与第 {seen[entry.code]} 条重复")
        if entry.successor and not entry.retired:
            reasons.append("只有已取消的事项可以指定继任事项")
        seen.setdefault(entry.code, index)
        checked.append((index, entry, reasons))
    # A successor must end up offered: a good, not retired entry of this file, or (when the file
    # does not mention it) an active published matter already in the catalogue.
    in_file = {entry.code: (entry, reasons) for _, entry, reasons in checked}
    offered = set(
        await Matter.filter(status=MatterStatus.active, published_no__not_isnull=True).values_list("code", flat=True)
    )
    members_in_file = {
        entry.code: entry for _, entry, reasons in checked if not reasons and not entry.retired and entry.bundle is None
    }
    good_matters = []
    for index, entry, reasons in checked:
        if entry.bundle is not None and not reasons:
            reasons.extend(await bundle_problems(entry, in_file=dict(members_in_file)))
        if entry.successor:
            target = in_file.get(entry.successor)
            if entry.successor == entry.code:
                reasons.append("继任事项不能是本事项")
            elif target is not None and (target[1] or target[0].retired):
                reasons.append(f"继任事项 {entry.successor} 有错误或已取消")
            elif target is None and entry.successor not in offered:
                reasons.append(f"继任事项 {entry.successor} 不存在或未在办理")
        if reasons:
            errors.append({"kind": "matter", "index": index, "code": entry.code, "fields": {"__root__": reasons}})
        else:
            good_matters.append((index, entry))
    if errors and not partial:
        raise ImportInvalid(details={"errors": errors, "error_count": len(errors)})

    report = ImportReport(skipped=errors)
    total = len(good_matters)
    async with in_transaction():
        for _, dep in departments:
            await Department.update_or_create(code=dep.code, defaults={"name": dep.name, "phone": dep.phone})
        for _, hall in halls:
            await Hall.update_or_create(code=hall.code, defaults=hall.model_dump(exclude={"code"}))
        for done, (_, entry) in enumerate(good_matters, start=1):
            outcome = await _upsert_matter(deps, entry)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if progress:
                progress(done, total)
        for _, entry in good_matters:
            await _apply_retirement(entry)
        await audit.record(
            action="catalogue.import",
            object_type="catalogue",
            object_id="catalogue",
            summary=f"导入目录：{len(good_matters)} 项，跳过 {len(errors)} 项",
            changes={"matters": len(good_matters), "skipped": len(errors)},
        )
    await _catalogue_changed(deps)
    return report


async def _upsert_matter(deps: CatalogueDeps, entry: MatterEntry) -> str:
    guide = Guide.model_validate(entry.model_dump(exclude={"code", "retired", "successor"}))
    content = guide.model_dump(mode="json")
    digest = content_hash(content)
    matter = await Matter.filter(code=entry.code).select_for_update().first()
    if matter is None:
        matter = await Matter.create(
            code=entry.code,
            name=guide.name,
            section=guide.section.value,
            department_code=guide.department,
            hall_code=guide.hall,
        )
        version = await MatterVersion.create(matter=matter, no=1, content=content, content_hash=digest)
        await _publish_version(deps, matter, version, guide)
        return "created"
    if matter.published_no is not None:
        current = await MatterVersion.get(matter_id=matter.id, no=matter.published_no)
        if current.content_hash == digest:
            return "unchanged"
    last = await MatterVersion.filter(matter_id=matter.id).order_by("-no").first()
    # An open draft is left alone as a draft; the imported content becomes the next version.
    version = await MatterVersion.create(
        matter=matter, no=(last.no + 1) if last else 1, content=content, content_hash=digest
    )
    await _publish_version(deps, matter, version, guide)
    return "updated"


async def _apply_retirement(entry: MatterEntry) -> None:
    matter = await Matter.get(code=entry.code)
    status = MatterStatus.retired if entry.retired else MatterStatus.active
    successor = entry.successor if entry.retired else None
    if matter.status is not status or matter.successor_code != successor:
        matter.status = status
        matter.successor_code = successor
        await matter.save(update_fields=["status", "successor_code", "updated_at"])


async def export_catalogue() -> dict[str, Any]:
    """The whole catalogue as an import file (published content of every matter)."""
    departments = [{"code": d.code, "name": d.name, "phone": d.phone} for d in await Department.all().order_by("code")]
    halls = []
    for hall in await Hall.all().order_by("id"):
        item = asdict(_hall_info(hall))
        halls.append({k: v for k, v in item.items() if v is not None})
    matters = []
    for matter in await Matter.filter(published_no__not_isnull=True).order_by("code"):
        version = await MatterVersion.get(matter_id=matter.id, no=matter.published_no)
        entry = {"code": matter.code, **version.content}
        if matter.status is MatterStatus.retired:
            entry["retired"] = True
            if matter.successor_code:
                entry["successor"] = matter.successor_code
        matters.append(entry)
    return {"version": 1, "departments": departments, "halls": halls, "matters": matters}


async def catalogue_is_empty() -> bool:
    """True when no matter exists yet (the run command then loads the demo catalogue)."""
    return not await Matter.exists()
