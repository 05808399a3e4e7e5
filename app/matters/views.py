"""Administration of the catalogue: drafts, publishing, retiring, import and export."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

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
)
from app.http import doc, json_response, parse_body, parse_query
from app.matters import present, service
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required

bp = Blueprint("catalogue_admin", url_prefix="/api/v1/admin")
TAG = "admin 事项目录管理"
AUTH = STAFF_AUTH_ERRORS


class NewMatter(BaseModel):
    """A new matter: its code and a first draft of its guide."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=40)
    content: dict[str, Any]


class DraftBody(BaseModel):
    """Draft content (may be incomplete until published)."""

    model_config = ConfigDict(extra="forbid")
    content: dict[str, Any]


class RetireBody(BaseModel):
    """Retire a matter, optionally naming its successor."""

    model_config = ConfigDict(extra="forbid")
    successor: str | None = Field(default=None, max_length=40)


class ImportQuery(BaseModel):
    """Import options."""

    model_config = ConfigDict(extra="ignore")
    partial: bool = Field(default=False, description="跳过不合法的条目，导入其余条目")


@bp.post("/matters")
@doc(
    tag=TAG,
    summary="新建事项（草稿 v1）",
    body=NewMatter,
    status=201,
    errors=[*AUTH, InvalidInput, MatterCodeTaken],
    secured="bearer",
)
@admin_required
async def create(request: Request) -> HTTPResponse:
    """Create a matter with its first draft."""
    body = parse_body(request, NewMatter)
    result = await service.create_matter(code=body.code, content=body.content)
    return json_response(present.version_change(result), status=201)


@bp.put("/matters/<code:str>/draft")
@doc(
    tag=TAG,
    summary="保存事项草稿",
    body=DraftBody,
    errors=[*AUTH, InvalidInput, MatterNotFound, MatterRetired],
    secured="bearer",
)
@admin_required
async def draft(request: Request, code: str) -> HTTPResponse:
    """Create or replace the open draft of a matter."""
    body = parse_body(request, DraftBody)
    return json_response(present.version_change(await service.save_draft(code=code, content=body.content)))


@bp.get("/matters/<code:str>/versions")
@doc(tag=TAG, summary="事项全部版本", errors=[*AUTH, MatterNotFound], secured="bearer")
@admin_required
async def versions(request: Request, code: str) -> HTTPResponse:
    """Every version of a matter, newest first."""
    return json_response({"items": [present.version(v) for v in await service.list_versions(code=code)]})


@bp.get("/matters/<code:str>/versions/<no:int>")
@doc(tag=TAG, summary="查看任一版本内容（含草稿）", errors=[*AUTH, MatterNotFound, VersionNotFound], secured="bearer")
@admin_required
async def version(request: Request, code: str, no: int) -> HTTPResponse:
    """Raw content of any version, drafts included."""
    return json_response(present.version_content(await service.get_draft_content(code=code, no=no)))


@bp.post("/matters/<code:str>/versions/<no:int>/publish")
@doc(
    tag=TAG,
    summary="发布草稿版本（校验全部实施清单要素）",
    errors=[*AUTH, MatterNotFound, VersionNotFound, VersionNotDraft, MatterRetired, GuideInvalid, BundleInvalid],
    secured="bearer",
)
@admin_required
async def publish(request: Request, code: str, no: int) -> HTTPResponse:
    """Publish a draft; the previous published version is superseded."""
    result = await service.publish(request.app.ctx.catalogue, code=code, no=no)
    return json_response(present.version_change(result))


@bp.post("/matters/<code:str>/retire")
@doc(
    tag=TAG,
    summary="取消事项（可指定继任事项）",
    body=RetireBody,
    errors=[*AUTH, MatterNotFound, InvalidInput, MatterInBundle],
    secured="bearer",
)
@admin_required
async def retire(request: Request, code: str) -> HTTPResponse:
    """Retire a matter."""
    body = parse_body(request, RetireBody) if request.body else RetireBody()
    result = await service.retire(request.app.ctx.catalogue, code=code, successor=body.successor)
    return json_response(present.retirement(result))


@bp.post("/catalogue/import")
@doc(
    tag=TAG,
    summary="导入事项目录（幂等）",
    query=ImportQuery,
    description="内容未变的事项不产生新版本。有不合法条目时列出全部（序号与原因）且不导入任何内容，除非 partial=true。",
    errors=[*AUTH, ImportInvalid, InvalidInput],
    secured="bearer",
)
@admin_required
async def import_(request: Request) -> HTTPResponse:
    """Import a catalogue file."""
    options = parse_query(request, ImportQuery)
    data = parse_body(request)
    report = await service.import_catalogue(request.app.ctx.catalogue, data=data, partial=options.partial)
    return json_response(present.import_report(report))


@bp.get("/catalogue/export")
@doc(tag=TAG, summary="导出事项目录", errors=AUTH, secured="bearer")
@admin_required
async def export(request: Request) -> HTTPResponse:
    """The whole catalogue in the import format."""
    data = await service.export_catalogue()
    return json_response(data, headers={"Content-Disposition": 'attachment; filename="catalogue.json"'})
