"""Console pages of the printed codes (administrators): list, issue, retarget, validity, disable, scan limit, ZIP.

The pages call the same service functions as /api/v1/admin/codes (qr.views). The section's print ZIP is
served here too: the admin API authenticates with a bearer token, the console with its own session cookie.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.console.kit import page, see_other, staff_page
from app.errors import DomainError, InvalidInput
from app.http import doc, parse_query
from app.matters import service as catalogue
from app.matters.schemas import SECTION_NAMES, Section
from app.web.kit import field_errors, form_data
from auth.guards import finish_page
from qr import service
from qr.errors import CodeNotFound, TargetInvalid, ValidityEnded
from qr.service import ACTION_NAMES

bp = Blueprint("console_codes", url_prefix="")
TAG = "console 工作台"
STATUS_NAMES = {"active": "启用", "disabled": "停用"}


class CodeQuery(BaseModel):
    """Filters of the code list."""

    model_config = ConfigDict(extra="ignore")
    matter_code: str | None = Field(default=None, max_length=40)
    section: Section | None = None
    hall: str | None = Field(default=None, max_length=32)
    page: int = Field(default=1, ge=1, le=10_000)


class SectionQuery(BaseModel):
    """A section."""

    model_config = ConfigDict(extra="ignore")
    section: Section


def _local(value: str, field: str) -> dt.datetime | None:
    """A datetime-local field read as Beijing time (empty = none)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("时间格式不正确", details={"fields": {field: ["应为 年-月-日 时:分"]}}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=clock.SHANGHAI)


def _int(value: str, field: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 100_000_000:
        raise InvalidInput("次数不正确", details={"fields": {field: ["应为 1 至 100000000 的整数"]}})
    return int(value)


def local_input(value: dt.datetime | None) -> str:
    """A stored time as a datetime-local field's value (Beijing time)."""
    return value.astimezone(clock.SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""


async def _choices() -> dict[str, Any]:
    return {
        "matters": (await catalogue.search_matters(page_size=1000)).items,
        "halls": await catalogue.list_halls(),
        "sections": {s.value: SECTION_NAMES[s] for s in Section},
        "actions": ACTION_NAMES,
        "status_names": STATUS_NAMES,
        "local_input": local_input,
    }


async def _list_page(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
                     typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    q = parse_query(request, CodeQuery)
    result = await service.list_codes(
        request.app.ctx.codes, matter_code=q.matter_code, section=q.section.value if q.section else None,
        hall=q.hall, page=q.page, page_size=50,
    )  # fmt: skip
    return page(request, "codes.html", status=status, q=q, result=result, errors=errors or {}, typed=typed or {},
                **await _choices())  # fmt: skip


@bp.get("/console/codes")
@doc(tag=TAG, summary="二维码管理：按事项、板块、大厅查看，签发", query=CodeQuery)
@staff_page("admin")
async def codes(request: Request) -> HTTPResponse:
    """Codes by matter, section or hall, and the form to issue one."""
    return await _list_page(request)


@bp.post("/console/codes")
@doc(tag=TAG, summary="签发二维码", errors=[InvalidInput, TargetInvalid, ValidityEnded])
@staff_page("admin")
async def issue(request: Request) -> HTTPResponse:
    """Issue a code for a matter (per hall or poster location)."""
    data = form_data(request)
    try:
        info = await service.issue_code(
            request.app.ctx.codes, matter_code=str(data.get("matter_code", "")), action=_action(data),
            label=str(data.get("label", ""))[:200], hall=str(data.get("hall") or "") or None,
            valid_since=_local(str(data.get("valid_since", "")), "valid_since"),
            valid_until=_local(str(data.get("valid_until", "")), "valid_until"),
            max_scans=_int(str(data.get("max_scans", "")), "max_scans"),
            created_by=request.ctx.page_staff.subject,
        )  # fmt: skip
    except InvalidInput as exc:
        return await _list_page(request, status=exc.status, errors=field_errors(exc), typed=data)
    return see_other(request, f"/console/codes/{info.slug}?done=issued")


def _action(data: dict[str, Any]) -> str:
    action = str(data.get("action") or "guide")
    if action not in ACTION_NAMES:
        raise InvalidInput("用途不正确", details={"fields": {"action": ["请从列表中选择"]}})
    return action


async def _code_page(request: Request, slug: str, *, status: int = 200, errors: dict[str, str] | None = None,
                     typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    info = await service.get_code(request.app.ctx.codes, slug=slug)
    done = {"issued": "已签发。", "target": "已改指向。", "validity": "已更新有效期。", "status": "已更新状态。",
            "limit": "已更新扫码次数上限。"}  # fmt: skip
    return page(request, "code.html", status=status, c=info, errors=errors or {}, typed=typed or {},
                notice=done.get(request.args.get("done", ""), ""), **await _choices())  # fmt: skip


@bp.get("/console/codes/<slug:str>")
@doc(tag=TAG, summary="查看并修改一个二维码", errors=[CodeNotFound])
@staff_page("admin")
async def code(request: Request, slug: str) -> HTTPResponse:
    """One code with its change forms."""
    return await _code_page(request, slug)


@bp.post("/console/codes/<slug:str>")
@doc(tag=TAG, summary="修改二维码：改指向、有效期（不可设已结束的有效期）、停用/启用、扫码次数上限",
     errors=[CodeNotFound, InvalidInput, TargetInvalid, ValidityEnded])  # fmt: skip
@staff_page("admin")
async def change(request: Request, slug: str) -> HTTPResponse:
    """Apply one of the code's change forms (named by `op`)."""
    data = form_data(request)
    op = str(data.get("op", ""))
    given: dict[str, Any]
    try:
        if op == "target":
            given = {"matter_code": str(data.get("matter_code", "")), "action": _action(data)}
        elif op == "validity":
            given = {"valid_since": _local(str(data.get("valid_since", "")), "valid_since"),
                     "valid_until": _local(str(data.get("valid_until", "")), "valid_until")}  # fmt: skip
        elif op == "status":
            given = {"status": "disabled" if data.get("status") == "disabled" else "active"}
        elif op == "limit":
            given = {"max_scans": _int(str(data.get("max_scans", "")), "max_scans")}
        else:
            raise InvalidInput("未知的操作", details={"fields": {"op": ["未知的操作"]}})
        await service.update_code(request.app.ctx.codes, slug=slug, **given)
    except CodeNotFound:
        raise
    except DomainError as exc:
        return await _code_page(request, slug, status=exc.status, errors=field_errors(exc), typed=data)
    return see_other(request, f"/console/codes/{slug}?done={op}")


@bp.get("/console/codes/batch.zip")
@doc(tag=TAG, summary="下载业务板块的打印文件（ZIP：海报 SVG + PNG）", query=SectionQuery, errors=[InvalidInput])
@staff_page("admin")
async def batch_zip(request: Request) -> HTTPResponse:
    """The same ZIP as the admin API's batch.zip, for the console session."""
    q = parse_query(request, SectionQuery)
    content, count = await service.section_zip(request.app.ctx.codes, section=q.section.value)
    name = f"qr-{q.section.value}-{count}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    response = HTTPResponse(content, content_type="application/zip", headers=headers)
    return finish_page(request, response)
