"""Public catalogue endpoints: sections, matter search, guides and their versions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput, MatterNotFound, VersionNotFound
from app.guide import service as guides
from app.http import JSON_TYPE, cached_response, doc, json_response, parse_query
from app.matters import present, service
from app.matters.schemas import Section

bp = Blueprint("catalogue", url_prefix="/api/v1")
TAG = "catalogue 事项目录"


class MatterQuery(BaseModel):
    """Query parameters of the matter search."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    q: str | None = Field(default=None, max_length=50, description="名称（中文子串）或事项编码")
    section: Section | None = Field(default=None, description="业务板块代码")
    department: str | None = Field(default=None, max_length=32, description="部门代码")
    visits_max: int | None = Field(default=None, ge=0, le=10, description="最多到现场次数")
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


@bp.get("/sections")
@doc(tag=TAG, summary="七个业务板块及其事项数")
async def sections(request: Request) -> HTTPResponse:
    """List the seven one-window sections."""
    return json_response({"items": [present.section(s) for s in await service.list_sections()]})


@bp.get("/halls")
@doc(tag=TAG, summary="政务服务大厅及分厅")
async def halls(request: Request) -> HTTPResponse:
    """List halls with address, phone and hours."""
    return json_response({"items": [present.hall(h) for h in await service.list_halls()]})


@bp.get("/departments")
@doc(tag=TAG, summary="实施部门")
async def departments(request: Request) -> HTTPResponse:
    """List departments."""
    return json_response({"items": [present.department(d) for d in await service.list_departments()]})


@bp.get("/matters")
@doc(tag=TAG, summary="搜索政务服务事项", query=MatterQuery, errors=[InvalidInput])
async def matters(request: Request) -> HTTPResponse:
    """Search matters by Chinese substring or code, filtered by section, department and visits."""
    query = parse_query(request, MatterQuery)
    page = await service.search_matters(
        q=query.q,
        section=query.section.value if query.section else None,
        department=query.department,
        visits_max=query.visits_max,
        page=query.page,
        page_size=query.page_size,
    )
    return json_response(present.page(page))


@bp.get("/matters/<code:str>")
@doc(
    tag=TAG,
    summary="事项当前办事指南（实施清单）",
    description="带 ETag 与 Cache-Control；If-None-Match 命中时返回 304。",
    errors=[MatterNotFound],
)
async def guide(request: Request, code: str) -> HTTPResponse:
    """The current published guide of a matter."""
    guide = await guides.guide(request.app.ctx.guide, code=code)
    return cached_response(
        request, guide.body, guide.etag, content_type=JSON_TYPE, max_age=request.app.ctx.settings.guide_cache_seconds
    )


@bp.get("/matters/<code:str>/versions/<no:int>")
@doc(tag=TAG, summary="事项指南的历史版本", errors=[MatterNotFound, VersionNotFound])
async def version(request: Request, code: str, no: int) -> HTTPResponse:
    """A published or superseded version of a matter's guide (immutable, cached long)."""
    guide = await guides.version(request.app.ctx.guide, code=code, no=no)
    max_age = 86400 if guide.data["version_status"] == "superseded" else request.app.ctx.settings.guide_cache_seconds
    return cached_response(request, guide.body, guide.etag, content_type=JSON_TYPE, max_age=max_age)
