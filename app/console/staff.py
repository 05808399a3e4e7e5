"""Staff accounts in the console (admin): list, create (initial password shown once), disable, reset password
or two-factor."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.console.kit import ConsoleForbidden, page, see_other, staff_page
from app.errors import InvalidInput
from app.http import doc, parse_query
from app.web.kit import field_errors, form_data, read_form
from auth import staff as staff_accounts
from auth import totp
from auth.errors import StaffNotFound

bp = Blueprint("console_staff", url_prefix="")
TAG = "console 工作台"
NO_STORE = {"Cache-Control": "no-store"}


class StaffForm(BaseModel):
    """A new staff account; the password is generated and shown once."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    username: str = Field(min_length=3, max_length=64)
    display_name: str = Field(default="", max_length=100)
    role: str = Field(pattern=r"^(clerk|reviewer|admin)$")
    hall: str = Field(default="", max_length=32)
    departments: str = Field(default="", max_length=600)


class DoneQuery(BaseModel):
    """What the previous post did (said on the list)."""

    model_config = ConfigDict(extra="ignore")
    done: str | None = Field(default=None, pattern=r"^(disabled|enabled|totp_reset)$")
    who: str = Field(default="", max_length=64)


def _departments(text: str) -> list[str]:
    return [d for d in re.split(r"[\s,，、;；]+", text) if d]


async def _render(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
                  typed: dict[str, Any] | None = None, secret: dict[str, str] | None = None,
                  notice: str | None = None) -> HTTPResponse:  # fmt: skip
    accounts = await staff_accounts.list_staff()
    return page(request, "staff.html", status=status, accounts=accounts, errors=errors or {}, typed=typed or {},
                secret=secret, notice=notice, headers=NO_STORE)  # fmt: skip


@bp.get("/console/staff")
@doc(tag=TAG, summary="工作人员账号（列表、新建、停用、重置密码）", query=DoneQuery, errors=[ConsoleForbidden])
@staff_page("admin")
async def staff_list(request: Request) -> HTTPResponse:
    """Every staff account and the form to create one."""
    q = parse_query(request, DoneQuery)
    notice = None
    if q.done == "totp_reset":
        notice = f"账号 {q.who} 的两步验证已重置，其全部登录已注销；下次登录时须重新绑定验证器。"
    elif q.done:
        notice = f"账号 {q.who} 已{'停用，其全部登录已注销' if q.done == 'disabled' else '恢复'}。"
    return await _render(request, notice=notice)


@bp.post("/console/staff")
@doc(tag=TAG, summary="新建工作人员账号（初始密码只显示一次）", errors=[InvalidInput, ConsoleForbidden])
@staff_page("admin")
async def create(request: Request) -> HTTPResponse:
    """Create an account through the same service as POST /api/v1/admin/staff."""
    form, errors, raw = read_form(request, StaffForm)
    typed = {k: str(raw.get(k, ""))[:600] for k in ("username", "display_name", "role", "hall", "departments")}
    if form is None:
        return await _render(request, status=422, errors=errors, typed=typed)
    password = staff_accounts.new_password()
    try:
        account = await staff_accounts.create_staff(
            username=form.username,
            password=password,
            role=form.role,
            hall=(form.hall or None) if form.role == "clerk" else None,
            departments=_departments(form.departments) if form.role == "reviewer" else [],
            display_name=form.display_name,
        )
    except InvalidInput as exc:
        errs = field_errors(exc, "username" if exc.code == "USERNAME_TAKEN" else "__all__")
        return await _render(request, status=exc.status, errors=errs, typed=typed)
    # Rendered on this response only (no redirect): the password is never stored in clear nor shown again.
    secret = {"username": account.username, "password": password, "what": "初始密码"}
    return await _render(request, status=201, secret=secret)


async def _set_disabled(request: Request, username: str, *, disabled: bool) -> HTTPResponse:
    form_data(request)
    try:
        await staff_accounts.set_staff_disabled(request.app.ctx.auth, username=username, disabled=disabled)
    except StaffNotFound as exc:
        return await _render(request, status=exc.status, errors={"__all__": exc.message})
    done = "disabled" if disabled else "enabled"
    return see_other(request, f"/console/staff?done={done}&who={username}")


@bp.post("/console/staff/<username:str>/disable")
@doc(tag=TAG, summary="停用工作人员账号（立即注销其全部登录）", errors=[StaffNotFound, ConsoleForbidden])
@staff_page("admin")
async def disable(request: Request, username: str) -> HTTPResponse:
    """Disable an account through the same service as the admin API."""
    return await _set_disabled(request, username, disabled=True)


@bp.post("/console/staff/<username:str>/enable")
@doc(tag=TAG, summary="恢复工作人员账号", errors=[StaffNotFound, ConsoleForbidden])
@staff_page("admin")
async def enable(request: Request, username: str) -> HTTPResponse:
    """Re-enable an account."""
    return await _set_disabled(request, username, disabled=False)


@bp.post("/console/staff/<username:str>/reset-password")
@doc(tag=TAG, summary="重置工作人员密码（新密码只显示一次）", errors=[StaffNotFound, ConsoleForbidden])
@staff_page("admin")
async def reset_password(request: Request, username: str) -> HTTPResponse:
    """Set a new random password through the same service as the admin API and show it once."""
    form_data(request)
    try:
        password = await staff_accounts.reset_password(request.app.ctx.auth, username=username)
    except StaffNotFound as exc:
        return await _render(request, status=exc.status, errors={"__all__": exc.message})
    return await _render(request, secret={"username": username, "password": password, "what": "新密码"})


@bp.post("/console/staff/<username:str>/reset-2fa")
@doc(tag=TAG, summary="重置工作人员两步验证（下次登录须重新绑定；立即注销其全部登录）",
     errors=[StaffNotFound, ConsoleForbidden])  # fmt: skip
@staff_page("admin")
async def reset_2fa(request: Request, username: str) -> HTTPResponse:
    """Forget the account's authenticator through the same service as POST /api/v1/admin/staff/<u>/reset-2fa."""
    form_data(request)
    try:
        await totp.reset_totp(request.app.ctx.auth, username=username)
    except StaffNotFound as exc:
        return await _render(request, status=exc.status, errors={"__all__": exc.message})
    return see_other(request, f"/console/staff?done=totp_reset&who={username}")
