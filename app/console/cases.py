"""The reviewer's workbench for cases: the queue (mine, due soon, overdue, by department), a case page with
its materials previewed, its timeline and notifications, and the actions its state machine allows now.

Every read and write goes through app.cases.service with the signed-in staff member's principal, as the
staff API does, so the scope (department or hall) is the API's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.cases import errors as ce
from app.cases import lifecycle, present, service, uploads
from app.cases.types import StaffCaseView
from app.console.kit import PRIVATE, page, see_other, staff_page
from app.errors import InvalidInput
from app.http import doc, parse_query
from app.storage.views import stream
from app.web.kit import read_form

bp = Blueprint("console_cases", url_prefix="")
TAG = "console 工作台"
MEDIA = {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}
VIEW_NAMES = {"all": "全部", "mine": "我处理过的", "due_soon": "即将到期", "overdue": "已超期"}
SLA_NAMES = {"green": "正常", "yellow": "即将到期", "red": "已超期", "paused": "暂停计时", "stopped": "已停止计时",
             "not_started": "未开始计时"}  # fmt: skip
PUSH_STATUS = {"pending": "待发送", "sent": "已发送", "failed": "发送失败", "cancelled": "已取消"}
CHANNELS = {"official_account": "公众号", "miniprogram": "小程序", "sms": "短信"}
ACTION_NAMES = {a: m.label for a, m in lifecycle.MOVES.items()}
# What each action's form asks for beyond the citizen-facing text and the internal note.
ACTION_FIELDS = {
    "reject": ("reason",),
    "require_correction": ("reason", "materials"),
    "request_correction": ("reason", "materials"),
    "suspend": ("reason", "procedure"),
    "deny": ("reason",),
    "deliver": ("tracking_no",),
}
# A bundle's stage as the lead department's page names it.
STAGE_STATES = {"waiting": "未开始", "running": "办理中", "done": "已完成", "stopped": "已终止"}
KIND_NAMES = {"bundle": "一件事", "part": "一件事·分件"}
staff = staff_page("clerk", "reviewer", "admin")


class QueueQuery(BaseModel):
    """Which cases of the queue."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    view: Literal["all", "mine", "due_soon", "overdue"] = "mine"
    department: str | None = Field(default=None, max_length=32)
    page: int = Field(default=1, ge=1, le=10_000)


class CaseQuery(BaseModel):
    """Whether to show the applicant unmasked."""

    model_config = ConfigDict(extra="ignore")
    show: Literal["", "applicant"] = ""
    done: str = Field(default="", max_length=32)


class FileQuery(BaseModel):
    """Preview (inline) or download (attachment)."""

    model_config = ConfigDict(extra="ignore")
    download: bool = False


class ActionForm(BaseModel):
    """A step taken on a case from its page (the staff API's ActionIn, as a form posts it)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    action: Literal[lifecycle.STAFF_ACTIONS]  # type: ignore[valid-type]
    reason: str | None = Field(default=None, max_length=500)
    materials: list[str] | None = Field(default=None, max_length=50)
    procedure: str | None = Field(default=None, max_length=100)
    tracking_no: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9]{6,40}$")
    public_text: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=1000)

    @field_validator("materials", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("reason", "procedure", "tracking_no", "public_text", "note", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def _deps(request: Request) -> service.CaseDeps:
    return request.app.ctx.cases


@bp.get("/console/cases")
@doc(tag=TAG, summary="办件审核队列（我的待办、即将到期、已超期；按部门）", query=QueueQuery,
     errors=[InvalidInput])  # fmt: skip
@staff
async def queue(request: Request) -> HTTPResponse:
    """The staff member's queue, in the API's scope; yellow and red rows carry a text label too."""
    q = parse_query(request, QueueQuery)
    principal = request.ctx.principal
    result = await service.staff_cases(
        _deps(request), principal=principal, view=None if q.view == "all" else q.view, status=None,
        page=q.page, page_size=20, department=q.department or None,
    )  # fmt: skip
    bundle_names = await service.bundle_names([i.summary.bundle_no for i in result.items if i.summary.bundle_no])
    return page(request, "cases.html", q=q, result=result, views=VIEW_NAMES, sla_names=SLA_NAMES,
                departments=sorted(principal.departments), bundle_names=bundle_names,
                kind_names=KIND_NAMES)  # fmt: skip


def _action_errors(exc: ce.ActionInvalid) -> dict[str, str]:
    """An invalid action's message next to the field it names."""
    details = exc.details or {}
    if details.get("missing"):
        return {str(details["missing"][0]): exc.message}
    if "materials" in details or "unknown" in details:
        return {"materials": exc.message}
    if "procedures" in details:
        return {"procedure": exc.message}
    return {"__all__": exc.message}


async def _case_page(request: Request, view: StaffCaseView, *, status: int = 200, errors: dict[str, str] | None = None,
                     typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    q = parse_query(request, CaseQuery)
    applicant = view.principal if q.show == "applicant" else present.masked_party(view.principal)
    principal = request.ctx.principal
    # Which linked cases (a bundle's parts, a part's bundle) this staff member may open: those in the scope.
    parts = [p for st in view.bundle.stages for p in st.parts] if view.bundle else []
    openable = {p.case_no for p in parts if principal.covers(department=p.department, hall=None)}
    if view.part_of and principal.covers(department=view.part_of.lead_department, hall=None):
        openable.add(view.part_of.bundle_no)
    return page(
        request, "case.html", status=status, case=view, s=view.summary, applicant=applicant,
        unmasked=q.show == "applicant", done=ACTION_NAMES.get(q.done, ""), action_names=ACTION_NAMES,
        action_fields=ACTION_FIELDS, sla_names=SLA_NAMES, errors=errors or {}, typed=typed or {},
        material_names=sorted({m.name for m in view.materials}), tz=clock.SHANGHAI,
        push_status=PUSH_STATUS, channels=CHANNELS, stage_states=STAGE_STATES, kind_names=KIND_NAMES,
        openable=openable,
    )  # fmt: skip


@bp.get("/console/cases/<case_no:str>")
@doc(tag=TAG, summary="办件审核页（申请人、指南版本、材料预览、时间线、通知、可执行操作）",
     errors=[ce.CaseNotFound, ce.CaseOutOfScope])  # fmt: skip
@staff
async def case_page(request: Request, case_no: str) -> HTTPResponse:
    """One case in the staff member's scope."""
    view = await service.staff_detail(_deps(request), principal=request.ctx.principal, case_no=case_no)
    return await _case_page(request, view)


@bp.post("/console/cases/<case_no:str>/actions")
@doc(tag=TAG, summary="办件操作（与 POST /api/v1/staff/cases/<no>/actions 同一服务）",
     errors=[InvalidInput, ce.CaseNotFound, ce.CaseOutOfScope, ce.IllegalTransition, ce.ActionInvalid,
             ce.CaseChanged])  # fmt: skip
@staff
async def act(request: Request, case_no: str) -> HTTPResponse:
    """Take one step; back to the case page with what was done, or the page again with the errors by field."""
    deps, principal = _deps(request), request.ctx.principal
    form, errors, raw = read_form(request, ActionForm)
    status = 422
    if form is not None:
        try:
            done = await service.act(deps, principal=principal, case_no=case_no, action=form.action,
                                     args=form.model_dump(exclude={"action"}))  # fmt: skip
            return see_other(request, f"/console/cases/{done.summary.case_no}?done={form.action}")
        except ce.ActionInvalid as exc:
            errors, status = _action_errors(exc), exc.status
        except (ce.IllegalTransition, ce.CaseChanged) as exc:
            errors, status = {"__all__": exc.message}, exc.status
    view = await service.staff_detail(deps, principal=principal, case_no=case_no)
    typed = {**raw, "action": str(raw.get("action", ""))}
    return await _case_page(request, view, status=status, errors=errors, typed=typed)


@bp.get("/console/cases/<case_no:str>/materials/<upload_id:str>")
@doc(tag=TAG, summary="办件材料（预览 inline，download=1 下载）", query=FileQuery,
     errors=[ce.CaseNotFound, ce.CaseOutOfScope, ce.UploadNotFound,
             ce.StorageUnavailable])  # fmt: skip
@staff
async def material(request: Request, case_no: str, upload_id: str) -> None:
    """A material's file, checked against the scope and streamed with its own type (never sniffed)."""
    q = parse_query(request, FileQuery)
    deps = _deps(request)
    found = await service.staff_material(deps, principal=request.ctx.principal, case_no=case_no, upload_id=upload_id)
    opened = await uploads.open_material(deps, found.key, found.upload_id)
    name = f"{found.case_no}-{found.upload_id}.{found.file_type}"
    headers = {
        **PRIVATE,
        "Content-Disposition": f'{"attachment" if q.download else "inline"}; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",  # the case page frames the PDF preview
    }
    await stream(request, opened, content_type=MEDIA.get(found.file_type, "application/octet-stream"), headers=headers)
