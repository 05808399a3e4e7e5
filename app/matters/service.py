"""Catalogue business rules: search, guide reads, drafts, publishing, retiring, import and export."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import cache as cache_bus
from app import clock
from app.errors import (
    GuideInvalid,
    ImportInvalid,
    InvalidInput,
    MatterCodeTaken,
    MatterNotFound,
    MatterRetired,
    VersionNotDraft,
    VersionNotFound,
    pydantic_details,
)
from app.matters import schemas
from app.matters.models import Department, Hall, Matter, MatterStatus, MatterVersion, VersionStatus
from app.matters.schemas import (
    MATERIAL_FORM_NAMES,
    MATTER_CODE_RE,
    MATTER_TYPE_NAMES,
    SECTION_NAMES,
    Guide,
    MatterEntry,
    Section,
)

MAX_DRAFT_BYTES = 256 * 1024
MAX_VERSION_NO = 1_000_000
GUIDE_NAMESPACE = "guide"  # the per-worker cache of rendered guides (app.matters.guides)


@dataclass(frozen=True)
class Page:
    """One page of a list."""

    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    def as_dict(self) -> dict[str, Any]:
        """The API list envelope."""
        return {"items": self.items, "total": self.total, "page": self.page, "page_size": self.page_size}


@dataclass
class ImportReport:
    """What an import did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the report."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


async def _catalogue_changed() -> None:
    """Cached guides and code snapshots (matter names, retirements, successors) are stale now."""
    from qr.service import NAMESPACE as CODES_NAMESPACE

    await cache_bus.changed(GUIDE_NAMESPACE)
    await cache_bus.changed(CODES_NAMESPACE)


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


async def list_sections() -> list[dict[str, Any]]:
    """The seven sections with the number of offered matters in each."""
    counts: dict[str, int] = {}
    rows = await Matter.filter(status=MatterStatus.active, published_no__not_isnull=True).values_list(
        "section", flat=True
    )
    for section in rows:
        counts[section] = counts.get(section, 0) + 1
    return [{"code": s.value, "name": SECTION_NAMES[s], "matter_count": counts.get(s.value, 0)} for s in Section]


async def search_matters(
    *,
    q: str | None = None,
    section: str | None = None,
    department: str | None = None,
    visits_max: int | None = None,
    include_retired: bool = False,
    page: int = 1,
    page_size: int = 20,
) -> Page:
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


def _summary(matter: Matter, departments: dict[str, str]) -> dict[str, Any]:
    section = Section(matter.section)
    return {
        "code": matter.code,
        "name": matter.name,
        "section": section.value,
        "section_name": SECTION_NAMES[section],
        "department": matter.department_code,
        "department_name": departments.get(matter.department_code, ""),
        "visits": matter.visits,
        "visits_label": visits_label(matter.visits),
        "online_depth": matter.online_depth,
        "status": matter.status.value,
        "version": matter.published_no,
    }


async def _department_names(codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    return dict(await Department.filter(code__in=codes).values_list("code", "name"))


async def matter_summary(code: str) -> dict[str, Any]:
    """Short description of one matter (for codes and links)."""
    matter = await _get_matter(code)
    return _summary(matter, await _department_names({matter.department_code}))


async def _get_matter(code: str) -> Matter:
    matter = await Matter.get_or_none(code=_normalise_code(code))
    if matter is None:
        raise MatterNotFound(details={"matter_code": code[:64]})
    return matter


async def get_guide(code: str, *, base_url: str) -> dict[str, Any]:
    """The current published guide of a matter, ready for JSON or the H5 page."""
    matter = await _get_matter(code)
    if matter.published_no is None:
        raise MatterNotFound(details={"matter_code": matter.code})
    version = await MatterVersion.get(matter_id=matter.id, no=matter.published_no)
    return await _guide_view(matter, version, base_url=base_url)


async def get_version(code: str, no: int, *, base_url: str) -> dict[str, Any]:
    """A published or superseded version of a matter's guide (drafts are not public)."""
    matter = await _get_matter(code)
    version = await _version_or_none(matter, no, status__in=[VersionStatus.published, VersionStatus.superseded])
    if version is None:
        raise VersionNotFound(details={"matter_code": matter.code, "version": no})
    return await _guide_view(matter, version, base_url=base_url)


async def _guide_view(matter: Matter, version: MatterVersion, *, base_url: str) -> dict[str, Any]:
    guide = Guide.model_validate(version.content)
    department = await Department.get_or_none(code=guide.department)
    hall = await Hall.get_or_none(code=guide.hall)
    successor = None
    if matter.status is MatterStatus.retired and matter.successor_code:
        succ = await Matter.get_or_none(code=matter.successor_code)
        if succ is not None:
            successor = {"code": succ.code, "name": succ.name, "url": f"{base_url}/m/{succ.code}"}
    body = guide.model_dump(mode="json")
    body.update(
        code=matter.code,
        version=version.no,
        version_status=version.status.value,
        published_at=clock.iso(version.published_at),
        status=matter.status.value,
        successor=successor,
        type_name=MATTER_TYPE_NAMES[guide.type],
        section_name=SECTION_NAMES[guide.section],
        visits_label=visits_label(guide.visits),
        department={
            "code": guide.department,
            "name": department.name if department else guide.department,
            "phone": department.phone if department else "",
        },
        hall=_hall_dict(hall) if hall else {"code": guide.hall, "name": guide.hall},
        fee_total_fen=sum(f.amount_fen for f in guide.fees),
        links={
            "h5": f"{base_url}/m/{matter.code}",
            "api": f"{base_url}/api/v1/matters/{matter.code}",
            "book": f"{base_url}/m/{matter.code}/book",
            "apply": f"{base_url}/m/{matter.code}/apply",
            "progress": f"{base_url}/m/{matter.code}/progress",
            "consult": f"{base_url}/m/{matter.code}/consult",
            "rate": f"{base_url}/m/{matter.code}/rate",
        },
    )
    from app.feedback.consult import published_faq
    from app.feedback.ratings import matter_satisfaction
    from qr.service import default_code_links

    body["links"]["qr"] = await default_code_links(matter.code, base_url=base_url)
    # Both change without a catalogue write: the cached guide shows them within GUIDE_CACHE_SECONDS.
    body["satisfaction"] = await matter_satisfaction(matter.code)
    body["consult_faq"] = await published_faq(matter.code)
    for material in body["materials"]:
        material["form_name"] = MATERIAL_FORM_NAMES[schemas.MaterialForm(material["form"])]
    return body


def _hall_dict(hall: Hall) -> dict[str, Any]:
    return {
        "code": hall.code,
        "name": hall.name,
        "kind": hall.kind,
        "address": hall.address,
        "phone": hall.phone,
        "hours": hall.hours,
        "latitude": hall.latitude,
        "longitude": hall.longitude,
    }


async def list_halls() -> list[dict[str, Any]]:
    """All halls."""
    return [_hall_dict(h) for h in await Hall.all().order_by("id")]


async def list_departments() -> list[dict[str, Any]]:
    """All departments."""
    return [{"code": d.code, "name": d.name, "phone": d.phone} for d in await Department.all().order_by("code")]


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


def _check_draft(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise InvalidInput("草稿内容必须是 JSON 对象", details={"fields": {"content": ["必须是对象"]}})
    if len(json.dumps(content, ensure_ascii=False).encode()) > MAX_DRAFT_BYTES:
        raise InvalidInput("草稿内容过大", details={"max_bytes": MAX_DRAFT_BYTES})
    return content


def _version_dict(version: MatterVersion) -> dict[str, Any]:
    return {
        "no": version.no,
        "status": version.status.value,
        "content_hash": version.content_hash,
        "created_at": clock.iso(version.created_at),
        "updated_at": clock.iso(version.updated_at),
        "published_at": clock.iso(version.published_at),
        "superseded_at": clock.iso(version.superseded_at),
    }


async def create_matter(*, code: str, content: dict[str, Any]) -> dict[str, Any]:
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
    return {"code": matter.code, "version": _version_dict(version)}


async def save_draft(*, code: str, content: dict[str, Any]) -> dict[str, Any]:
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
    return {"code": matter.code, "version": _version_dict(draft)}


async def _locked_matter(code: str) -> Matter:
    # FOR UPDATE on PostgreSQL serialises publishers of one matter; SQLite's writer lock does the same.
    matter = await Matter.filter(code=_normalise_code(code)).select_for_update().first()
    if matter is None:
        raise MatterNotFound(details={"matter_code": code[:64]})
    return matter


async def publish(*, code: str, no: int) -> dict[str, Any]:
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
        # Store the normalised guide, so an export re-imported later is recognised as unchanged.
        version.content = guide.model_dump(mode="json")
        version.content_hash = content_hash(version.content)
        await version.save(update_fields=["content", "content_hash", "updated_at"])
        await _publish_version(matter, version, guide)
    await _catalogue_changed()
    return {"code": matter.code, "version": _version_dict(version)}


async def _publish_version(matter: Matter, version: MatterVersion, guide: Guide) -> None:
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
    await matter.save()
    from qr.service import ensure_default_code

    # Every published matter has its printed code from the first publish on.
    await ensure_default_code(matter.code)


async def retire(*, code: str, successor: str | None = None) -> dict[str, Any]:
    """Stop offering a matter, optionally pointing citizens to its successor."""
    async with in_transaction():
        matter = await _locked_matter(code)
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
    await _catalogue_changed()
    return {"code": matter.code, "status": matter.status.value, "successor": successor_code}


async def list_versions(*, code: str) -> list[dict[str, Any]]:
    """Every version of a matter, newest first (administration)."""
    matter = await _get_matter(code)
    versions = await MatterVersion.filter(matter_id=matter.id).order_by("-no")
    return [_version_dict(v) for v in versions]


async def get_draft_content(*, code: str, no: int) -> dict[str, Any]:
    """Any version's raw content (administration, including drafts)."""
    matter = await _get_matter(code)
    version = await _version_or_none(matter, no)
    if version is None:
        raise VersionNotFound(details={"matter_code": matter.code, "version": no})
    return {"code": matter.code, "version": _version_dict(version), "content": version.content}


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
    data: Any,
    *,
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
    good_matters = []
    for index, entry, reasons in checked:
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
            outcome = await _upsert_matter(entry)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if progress:
                progress(done, total)
        for _, entry in good_matters:
            await _apply_retirement(entry)
    await _catalogue_changed()
    return report


async def _upsert_matter(entry: MatterEntry) -> str:
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
        await _publish_version(matter, version, guide)
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
    await _publish_version(matter, version, guide)
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
        item = _hall_dict(hall)
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
