"""Administration of staff accounts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput
from app.http import doc, json_response, parse_body
from auth import present, totp
from auth import staff as staff_accounts
from auth.errors import (
    STAFF_AUTH_ERRORS,
    StaffNotFound,
)
from auth.guards import admin_required

bp = Blueprint("staff_admin", url_prefix="/api/v1/admin/staff")
TAG = "admin 工作人员管理"
AUTH = STAFF_AUTH_ERRORS


class NewStaff(BaseModel):
    """A new staff account."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=10, max_length=256)
    role: str = Field(pattern=r"^(clerk|reviewer|admin)$")
    hall: str | None = Field(default=None, max_length=32)
    departments: list[str] = Field(default_factory=list, max_length=50)
    display_name: str = Field(default="", max_length=100)


@bp.post("")
@doc(tag=TAG, summary="新建工作人员账号", body=NewStaff, status=201, errors=[*AUTH, InvalidInput], secured="bearer")
@admin_required
async def create(request: Request) -> HTTPResponse:
    """Create a staff account."""
    body = parse_body(request, NewStaff)
    staff = await staff_accounts.create_staff(
        username=body.username,
        password=body.password,
        role=body.role,
        hall=body.hall,
        departments=body.departments,
        display_name=body.display_name,
    )
    return json_response(present.staff_json(staff), status=201)


@bp.post("/<username:str>/disable")
@doc(tag=TAG, summary="停用账号（立即注销其全部登录）", errors=[*AUTH, StaffNotFound], secured="bearer")
@admin_required
async def disable(request: Request, username: str) -> HTTPResponse:
    """Disable a staff account and revoke its sessions."""
    await staff_accounts.set_staff_disabled(request.app.ctx.auth, username=username, disabled=True)
    return json_response({"username": username, "disabled": True})


@bp.post("/<username:str>/enable")
@doc(tag=TAG, summary="恢复账号", errors=[*AUTH, StaffNotFound], secured="bearer")
@admin_required
async def enable(request: Request, username: str) -> HTTPResponse:
    """Re-enable a staff account."""
    await staff_accounts.set_staff_disabled(request.app.ctx.auth, username=username, disabled=False)
    return json_response({"username": username, "disabled": False})


@bp.get("")
@doc(tag=TAG, summary="工作人员账号列表", errors=[*AUTH], secured="bearer")
@admin_required
async def list_all(request: Request) -> HTTPResponse:
    """Every staff account."""
    accounts = await staff_accounts.list_staff()
    return json_response({"items": [present.staff_json(s) for s in accounts]})


@bp.post("/<username:str>/reset-password")
@doc(tag=TAG, summary="重置密码（新密码只在此次应答中出现；注销其全部登录）", errors=[*AUTH, StaffNotFound],
     secured="bearer")  # fmt: skip
@admin_required
async def reset_password(request: Request, username: str) -> HTTPResponse:
    """Set a new random password and answer it once."""
    password = await staff_accounts.reset_password(request.app.ctx.auth, username=username)
    return json_response({"username": username, "password": password}, headers={"Cache-Control": "no-store"})


@bp.post("/<username:str>/reset-2fa")
@doc(tag=TAG, summary="重置两步验证（该账号下次登录须重新绑定，并立即注销其全部登录）",
     errors=[*AUTH, StaffNotFound], secured="bearer")  # fmt: skip
@admin_required
async def reset_2fa(request: Request, username: str) -> HTTPResponse:
    """Forget a staff member's authenticator and recovery codes."""
    await totp.reset_totp(request.app.ctx.auth, username=username)
    return json_response({"username": username, "totp_enrolled": False})
