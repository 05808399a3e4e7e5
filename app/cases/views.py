"""Staff case API (/api/v1/staff/cases: scoped to the reviewer's departments or the clerk's hall) and the
provincial feed (/api/v1/admin/cases/feed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.cases import errors as ce
from app.cases import lifecycle, present, service, uploads
from app.cases.types import CaseStatus
from app.errors import InvalidInput
from app.http import doc, json_response, parse_body, parse_query
from app.storage.views import stream
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required, staff_required

bp = Blueprint("cases_staff", url_prefix="/api/v1")
TAG = "staff 办件审批"
ADMIN_TAG = "admin 办件上报"
PRIVATE = {"Cache-Control": "private, no-store"}
staff = staff_required("clerk", "reviewer", "admin")
Action = Literal[lifecycle.STAFF_ACTIONS]  # type: ignore[valid-type]


class StaffListQuery(BaseModel):
    """Which cases: all in scope, mine (I acted on), due soon (yellow) or overdue (red)."""

    model_config = ConfigDict(extra="ignore")
    view: Literal["all", "mine", "due_soon", "overdue"] = "all"
    status: CaseStatus | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class ActionIn(BaseModel):
    """A step taken on a case."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    action: Action = Field(description="accept / reject / require_correction / start_review / suspend / resume / "
                           "approve / deny / deliver / complete")  # fmt: skip
    reason: str | None = Field(default=None, max_length=500, description="不予受理、补正、暂停、不予许可时必填")
    materials: list[str] | None = Field(default=None, max_length=50, description="需补正的材料名称")
    procedure: str | None = Field(default=None, max_length=100, description="特殊环节名称（暂停计时）")
    tracking_no: str | None = Field(
        default=None, max_length=40, pattern=r"^[A-Za-z0-9]{6,40}$", description="EMS 运单号（邮寄送达时必填）"
    )
    public_text: str | None = Field(default=None, max_length=500, description="告知申请人的文字（默认按操作生成）")
    note: str | None = Field(default=None, max_length=1000, description="内部备注（申请人不可见）")


class FeedQuery(BaseModel):
    """Where to continue the feed."""

    model_config = ConfigDict(extra="ignore")
    cursor: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=500)


def _deps(request: Request) -> service.CaseDeps:
    return request.app.ctx.cases


@bp.get("/staff/cases")
@doc(tag=TAG, summary="办件列表（本人范围；mine / due_soon / overdue）", query=StaffListQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput])  # fmt: skip
@staff
async def staff_cases(request: Request) -> HTTPResponse:
    """Cases in the caller's departments or hall."""
    q = parse_query(request, StaffListQuery)
    page = await service.staff_cases(
        _deps(request),
        principal=request.ctx.principal,
        view=None if q.view == "all" else q.view,
        status=q.status.value if q.status else None,
        page=q.page,
        page_size=q.page_size,
    )
    return json_response(present.staff_page_json(page), headers=PRIVATE)


@bp.get("/staff/cases/<case_no:str>")
@doc(tag=TAG, summary="办件详情（含内部备注、可执行操作和推送状态）", secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, ce.CaseNotFound, ce.CaseOutOfScope])  # fmt: skip
@staff
async def staff_case(request: Request, case_no: str) -> HTTPResponse:
    """One case with everything staff need."""
    view = await service.staff_detail(_deps(request), principal=request.ctx.principal, case_no=case_no)
    return json_response(present.staff_case_json(view), headers=PRIVATE)


@bp.post("/staff/cases/<case_no:str>/actions")
@doc(
    tag=TAG,
    summary="办件操作（受理、不予受理、补正、审查、暂停/恢复、审批、送达、办结）",
    body=ActionIn,
    secured="bearer",
    errors=[
        *STAFF_AUTH_ERRORS,
        InvalidInput,
        ce.CaseNotFound,
        ce.CaseOutOfScope,
        ce.IllegalTransition,
        ce.ActionInvalid,
        ce.CaseChanged,
    ],
)
@staff
async def act(request: Request, case_no: str) -> HTTPResponse:
    """Take one step; the applicant is notified through the outbox in the same transaction."""
    body = parse_body(request, ActionIn)
    args = body.model_dump(exclude={"action"})
    result = await service.act(
        _deps(request), principal=request.ctx.principal, case_no=case_no, action=body.action, args=args
    )
    return json_response(present.staff_case_json(result))


@bp.get("/staff/cases/<case_no:str>/materials/<upload_id:str>")
@doc(tag=TAG, summary="下载办件材料", secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, ce.CaseNotFound, ce.CaseOutOfScope, ce.UploadNotFound,
             ce.StorageUnavailable])  # fmt: skip
@staff
async def material_file(request: Request, case_no: str, upload_id: str) -> None:
    """A material's file, streamed from the material store through this authorised route."""
    deps = _deps(request)
    found = await service.staff_material(deps, principal=request.ctx.principal, case_no=case_no, upload_id=upload_id)
    opened = await uploads.open_material(deps, found.key, found.upload_id)
    media = {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}.get(found.file_type)
    name = f"{found.case_no}-{found.upload_id}.{found.file_type}"
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"}
    await stream(request, opened, content_type=media or "application/octet-stream", headers=headers)


@bp.get("/admin/cases/feed")
@doc(tag=ADMIN_TAG, summary="办件上报数据流（游标分页，按事件顺序）", query=FeedQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, ce.CursorInvalid])  # fmt: skip
@admin_required
async def feed(request: Request) -> HTTPResponse:
    """Case events after the cursor; follow `next_cursor` (it stays put when nothing new has come)."""
    q = parse_query(request, FeedQuery)
    feed_page = await service.feed(_deps(request), cursor=q.cursor, limit=q.limit)
    return json_response(present.feed_json(feed_page), headers=PRIVATE)
