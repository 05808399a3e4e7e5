"""Console pages of the catalogue (administrators): matters, the draft guide editor, its diff, publish, retire.

The pages call the same service functions as /api/v1/admin/matters (app.matters.views).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.console.kit import page, see_other, staff_page
from app.errors import (
    BundleInvalid,
    GuideInvalid,
    InvalidInput,
    MatterInBundle,
    MatterNotFound,
    MatterRetired,
    VersionNotDraft,
    VersionNotFound,
)
from app.http import doc, parse_query
from app.matters import service
from app.matters.diff import guide_diff
from app.matters.schemas import MATERIAL_FORM_NAMES
from app.web.kit import field_errors, form_data

bp = Blueprint("console_catalogue", url_prefix="")
TAG = "console 工作台"
STATUS_NAMES = {"active": "在办", "retired": "已取消", "unpublished": "未发布"}
# Fields the form edits directly; the rest of the guide is edited as JSON ("advanced").
FORM_FIELDS = ("name", "summary", "conditions", "materials", "fees", "legal_limit_days", "promised_limit_days",
               "visits", "online_apply", "booking", "consult_phone")  # fmt: skip
INTS = ("legal_limit_days", "promised_limit_days", "visits")


class ListQuery(BaseModel):
    """Search of the catalogue."""

    model_config = ConfigDict(extra="ignore")
    q: str | None = Field(default=None, max_length=40)
    status: str | None = Field(default=None, pattern=r"^(active|retired|unpublished)?$")
    page: int = Field(default=1, ge=1, le=1000)


async def _versions(code: str) -> tuple[Any, Any]:
    """(published content, draft content) of a matter, each None when absent."""
    published = draft = None
    for v in await service.list_versions(code=code):
        if v.status == "published" and published is None:
            published = await service.get_draft_content(code=code, no=v.no)
        elif v.status == "draft" and draft is None:
            draft = await service.get_draft_content(code=code, no=v.no)
    return published, draft


@bp.get("/console/matters")
@doc(tag=TAG, summary="事项目录管理：查找事项", query=ListQuery)
@staff_page("admin")
async def matters(request: Request) -> HTTPResponse:
    """Matters by name or code and status."""
    q = parse_query(request, ListQuery)
    result = await service.admin_matters(q=q.q, status=q.status or None, page=q.page)
    return page(request, "matters.html", q=q, result=result, status_names=STATUS_NAMES)


async def _matter_page(request: Request, code: str, *, status: int = 200, errors: dict[str, str] | None = None,
                       notice: str = "") -> HTTPResponse:  # fmt: skip
    summary = await service.matter_summary(code)
    published, draft = await _versions(summary.code)
    choices = [m for m in (await service.search_matters(page_size=1000)).items if m.code != summary.code]
    return page(request, "matter.html", status=status, m=summary, published=published, draft=draft,
                successors=choices, errors=errors or {}, notice=notice, status_names=STATUS_NAMES)  # fmt: skip


@bp.get("/console/matters/<code:str>")
@doc(tag=TAG, summary="事项详情（已发布版本与草稿）", errors=[MatterNotFound])
@staff_page("admin")
async def matter(request: Request, code: str) -> HTTPResponse:
    """A matter's published version and its draft, with publish and retire."""
    done = {"published": "已发布，公众页面已更新。", "retired": "事项已取消。", "saved": "草稿已保存。"}
    return await _matter_page(request, code, notice=done.get(request.args.get("done", ""), ""))


def _editable(content: dict[str, Any]) -> dict[str, Any]:
    """What the editor shows: the form fields and the rest as JSON."""
    rest = {k: v for k, v in content.items() if k not in FORM_FIELDS}
    return {**content, "advanced": json.dumps(rest, ensure_ascii=False, indent=2, sort_keys=True)}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _int_or_raw(value: str) -> Any:
    value = (value or "").strip()
    try:
        return int(value)
    except ValueError:
        return value  # the schema says what is wrong with it, next to the field


def _from_form(data: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Guide content from the posted form (rows keep the attributes the form does not show)."""
    errors: dict[str, str] = {}
    try:
        content = json.loads(str(data.get("advanced") or "{}"))
        if not isinstance(content, dict):
            raise ValueError
    except ValueError:
        content, errors["advanced"] = {}, "高级内容必须是 JSON 对象"
    content = {k: v for k, v in content.items() if k not in FORM_FIELDS}
    content["name"] = str(data.get("name", "")).strip()
    content["summary"] = str(data.get("summary", "")).strip()
    content["conditions"] = [ln.strip() for ln in str(data.get("conditions", "")).splitlines() if ln.strip()]
    for key in INTS:
        content[key] = _int_or_raw(str(data.get(key, "")))
    content["online_apply"] = data.get("online_apply") == "1"
    content["booking"] = data.get("booking") == "1"
    content["consult_phone"] = str(data.get("consult_phone", "")).strip()
    old_materials = {m.get("name"): m for m in base.get("materials", []) if isinstance(m, dict)}
    materials = []
    rows = zip(_as_list(data.get("m_name")), _as_list(data.get("m_form")), _as_list(data.get("m_copies")),
               _as_list(data.get("m_required")), strict=False)  # fmt: skip
    for name, form, copies, required in rows:
        if not name.strip():
            continue  # an empty row adds nothing
        row = dict(old_materials.get(name.strip(), {}))
        row.update(name=name.strip(), form=form, copies=_int_or_raw(copies), required=required == "1")
        materials.append(row)
    content["materials"] = materials
    old_fees = {f.get("name"): f for f in base.get("fees", []) if isinstance(f, dict)}
    fees = []
    for name, amount in zip(_as_list(data.get("f_name")), _as_list(data.get("f_amount")), strict=False):
        if not name.strip():
            continue
        row = dict(old_fees.get(name.strip(), {}))
        row.update(name=name.strip(), amount_fen=_int_or_raw(amount))
        fees.append(row)
    content["fees"] = fees
    return content, errors


def _guide_errors(exc: GuideInvalid) -> dict[str, str]:
    """Per-field messages; rows' errors go to their list (materials.0.name -> materials)."""
    out: dict[str, str] = {}
    for path, message in field_errors(exc).items():
        top = path.split(".")[0]
        key = top if top in FORM_FIELDS else ("__all__" if top in ("__root__", "__all__") else "advanced")
        text = message if key == top or key == "__all__" else f"{path}：{message}"
        out[key] = f"{out[key]}；{text}" if key in out else text
    return out


async def _editor(request: Request, code: str, content: dict[str, Any], *, status: int = 200,
                  errors: dict[str, str] | None = None) -> HTTPResponse:  # fmt: skip
    summary = await service.matter_summary(code)
    return page(request, "draft.html", status=status, m=summary, g=content, errors=errors or {},
                forms=MATERIAL_FORM_NAMES)  # fmt: skip


@bp.get("/console/matters/<code:str>/draft")
@doc(tag=TAG, summary="编辑事项草稿（无草稿时从已发布版本开始）", errors=[MatterNotFound])
@staff_page("admin")
async def draft_page(request: Request, code: str) -> HTTPResponse:
    """The guide editor, filled with the draft (or the published version)."""
    published, draft = await _versions(code)
    source = draft or published
    return await _editor(request, code, _editable(dict(source.content) if source else {}))


@bp.post("/console/matters/<code:str>/draft")
@doc(tag=TAG, summary="保存事项草稿（按办事指南要素校验，错误显示在对应字段旁）",
     errors=[MatterNotFound, MatterRetired, GuideInvalid, InvalidInput])  # fmt: skip
@staff_page("admin")
async def save_draft(request: Request, code: str) -> HTTPResponse:
    """Validate the edited guide with the publishing schema and save it as the draft."""
    data = form_data(request)
    published, draft = await _versions(code)
    source = draft or published
    content, errors = _from_form(data, dict(source.content) if source else {})
    shown = {**content, "advanced": str(data.get("advanced", ""))}
    if errors:
        return await _editor(request, code, shown, status=422, errors=errors)
    try:
        guide = service.validate_guide(content)
        await service.save_draft(code=code, content=guide.model_dump(mode="json"))
    except GuideInvalid as exc:
        return await _editor(request, code, shown, status=exc.status, errors=_guide_errors(exc))
    except (InvalidInput, MatterRetired) as exc:
        return await _editor(request, code, shown, status=exc.status, errors=field_errors(exc))
    return see_other(request, f"/console/matters/{code}/diff")


@bp.get("/console/matters/<code:str>/diff")
@doc(tag=TAG, summary="草稿与已发布版本的差异（逐字段）", errors=[MatterNotFound])
@staff_page("admin")
async def diff(request: Request, code: str) -> HTTPResponse:
    """The draft against the published version, field by field."""
    summary = await service.matter_summary(code)
    published, draft = await _versions(summary.code)
    changes = guide_diff(published.content if published else None, draft.content) if draft else []
    return page(request, "diff.html", m=summary, published=published, draft=draft, changes=changes)


@bp.post("/console/matters/<code:str>/publish")
@doc(tag=TAG, summary="发布草稿（公众办事指南随即更新）",
     errors=[MatterNotFound, VersionNotFound, VersionNotDraft, MatterRetired, GuideInvalid, BundleInvalid])  # fmt: skip
@staff_page("admin")
async def publish(request: Request, code: str) -> HTTPResponse:
    """Publish the draft version named in the form."""
    data = form_data(request)
    no = _int_or_raw(str(data.get("no", "")))
    try:
        if not isinstance(no, int):
            raise VersionNotFound(details={"version": str(no)[:20]})
        await service.publish(request.app.ctx.catalogue, code=code, no=no)
    except (VersionNotFound, VersionNotDraft, MatterRetired, GuideInvalid, BundleInvalid) as exc:
        errors = {"publish": exc.message + "；" + "；".join(f"{k}：{v}" for k, v in field_errors(exc).items()
                                                          if k != "__all__")}  # fmt: skip
        return await _matter_page(request, code, status=exc.status, errors=errors)
    return see_other(request, f"/console/matters/{code}?done=published")


@bp.post("/console/matters/<code:str>/retire")
@doc(tag=TAG, summary="取消事项（可指定继任事项）", errors=[MatterNotFound, InvalidInput, MatterInBundle])
@staff_page("admin")
async def retire(request: Request, code: str) -> HTTPResponse:
    """Retire a matter, pointing citizens to the chosen successor."""
    data = form_data(request)
    successor = str(data.get("successor") or "").strip() or None
    try:
        await service.retire(request.app.ctx.catalogue, code=code, successor=successor)
    except (InvalidInput, MatterInBundle) as exc:
        return await _matter_page(request, code, status=exc.status, errors=field_errors(exc, "successor"))
    return see_other(request, f"/console/matters/{code}?done=retired")
