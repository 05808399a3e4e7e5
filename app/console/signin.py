"""Console sign-in and sign-out, and the home page that lists what the staff member's role may do."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.console.kit import page, see_other, staff_page
from app.http import doc, parse_query
from app.ratelimit import TooManyRequests
from app.web.kit import read_form
from auth import logins
from auth.errors import AccountDisabled, AccountLocked, BadCredentials
from auth.guards import clear_staff_session, page_staff, set_staff_session

bp = Blueprint("console_signin", url_prefix="")
TAG = "console 工作台"


class NextQuery(BaseModel):
    """Where to return after signing in."""

    model_config = ConfigDict(extra="ignore")
    next: str = Field(default="/console", max_length=512)


class LoginForm(BaseModel):
    """Staff credentials."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    next: str = Field(default="/console", max_length=512)


def _ip(request: Request) -> str:
    return request.remote_addr or request.ip or "unknown"


@bp.get("/console/login")
@doc(tag=TAG, summary="工作人员登录页", query=NextQuery)
async def login_page(request: Request) -> HTTPResponse:
    """The sign-in form (a signed-in staff member goes straight on)."""
    q = parse_query(request, NextQuery)
    if await page_staff(request) is not None:
        return see_other(request, q.next)
    return page(request, "login.html", errors={}, username="", next=logins.safe_next(q.next))


@bp.post("/console/login")
@doc(tag=TAG, summary="工作人员登录（用户名 + 密码；会话在 HttpOnly Cookie 中）",
     errors=[BadCredentials, AccountLocked, AccountDisabled, TooManyRequests])  # fmt: skip
async def login(request: Request) -> HTTPResponse:
    """Check the password and open a console session."""
    form, errors, raw = read_form(request, LoginForm)
    next_path = logins.safe_next(str(raw.get("next") or "/console"))
    username = str(raw.get("username", ""))[:64]
    if form is None:
        return page(request, "login.html", status=422, errors=errors, username=username, next=next_path)
    try:
        pair = await logins.staff_login(
            request.app.ctx.auth, username=form.username, password=form.password, ip=_ip(request)
        )
    except (BadCredentials, AccountLocked, AccountDisabled, TooManyRequests) as exc:
        return page(request, "login.html", status=exc.status, errors={"__all__": exc.message}, username=username,
                    next=next_path, headers=exc.headers)  # fmt: skip
    return set_staff_session(request, see_other(request, next_path), pair)


@bp.post("/console/logout")
@doc(tag=TAG, summary="退出工作台（会话立即失效）")
async def logout(request: Request) -> HTTPResponse:
    """End the console session and clear its cookies."""
    read_form(request, NextQuery)
    principal = await page_staff(request)
    if principal is not None:
        await logins.logout(request.app.ctx.auth, principal=principal)
    request.ctx.staff_renewed = None
    return clear_staff_session(see_other(request, "/console/login"))


@bp.get("/console")
@doc(tag=TAG, summary="工作台首页（按岗位列出可用功能）")
@staff_page()
async def home(request: Request) -> HTTPResponse:
    """What this staff member's role may open."""
    return page(request, "home.html")
