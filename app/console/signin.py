"""Console sign-in and sign-out, and the home page that lists what the staff member's role may do."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.console.kit import page, see_other, staff_page
from app.http import doc, parse_query
from app.ratelimit import TooManyRequests
from app.web.kit import read_form
from auth import logins
from auth.errors import AccountDisabled, AccountLocked, BadCredentials, SignInPending, TotpInvalid
from auth.guards import browser_id, clear_staff_session, page_staff, set_staff_session

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


class CodeForm(BaseModel):
    """A TOTP code (6 digits) or a recovery code."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    code: str = Field(min_length=6, max_length=16)


STEP_PATHS = {"enrol": "/console/login/enrol", "code": "/console/login/code"}
CODE_ERRORS = {"code": "请输入 6 位动态验证码"}


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
        result = await logins.console_login(
            request.app.ctx.auth, username=form.username, password=form.password, ip=_ip(request),
            browser=browser_id(request), next_path=next_path,
        )  # fmt: skip
    except (BadCredentials, AccountLocked, AccountDisabled, TooManyRequests, SignInPending) as exc:
        return page(request, "login.html", status=exc.status, errors={"__all__": exc.message}, username=username,
                    next=next_path, headers=exc.headers)  # fmt: skip
    if isinstance(result, logins.SecondStep):
        # The password was right, but this role signs in with a second factor first (no session yet).
        return see_other(request, STEP_PATHS[result.step])
    return set_staff_session(request, see_other(request, next_path), result)


def _expired(request: Request, exc: SignInPending) -> HTTPResponse:
    """The pending sign-in is gone (expired, other browser): back to the password form with the reason."""
    return page(request, "login.html", status=exc.status, errors={"__all__": exc.message}, username="",
                next="/console")  # fmt: skip


def _grouped(secret: str) -> str:
    """The key in groups of four, as authenticator apps show it (easier to type by hand)."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


async def _enrol_page(request: Request, *, status: int = 200, errors: dict[str, str] | None = None) -> HTTPResponse:
    try:
        enrolment = await logins.console_enrolment(request.app.ctx.auth, browser=browser_id(request))
    except SignInPending as exc:
        return _expired(request, exc)
    return page(request, "login_enrol.html", status=status, errors=errors or {}, qr_svg=enrolment.qr_svg,
                secret=_grouped(enrolment.secret))  # fmt: skip


@bp.get("/console/login/enrol")
@doc(tag=TAG, summary="绑定两步验证（扫码或手动输入密钥，再输入一次验证码确认）", errors=[SignInPending])
async def enrol_page(request: Request) -> HTTPResponse:
    """The QR code and key of a new authenticator, for a pending sign-in without one."""
    return await _enrol_page(request)


@bp.post("/console/login/enrol")
@doc(tag=TAG, summary="确认两步验证绑定（成功后登录，并一次性显示 10 个恢复码）",
     errors=[TotpInvalid, SignInPending, TooManyRequests])  # fmt: skip
async def enrol(request: Request) -> HTTPResponse:
    """Confirm the authenticator with a code; sign in and show the recovery codes once."""
    form, _, _ = read_form(request, CodeForm)
    if form is None:
        return await _enrol_page(request, status=422, errors=CODE_ERRORS)
    try:
        pair, codes, next_path = await logins.console_confirm_enrolment(
            request.app.ctx.auth, browser=browser_id(request), code=form.code
        )
    except SignInPending as exc:
        return _expired(request, exc)
    except (TotpInvalid, TooManyRequests) as exc:
        return await _enrol_page(request, status=exc.status, errors={"code": exc.message})
    response = page(request, "login_recovery.html", codes=codes, next=next_path)
    return set_staff_session(request, response, pair)


def _code_page(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> HTTPResponse:  # fmt: skip
    return page(request, "login_code.html", status=status, errors=errors or {}, headers=headers)


@bp.get("/console/login/code")
@doc(tag=TAG, summary="两步验证：输入动态验证码或恢复码", errors=[SignInPending])
async def code_page(request: Request) -> HTTPResponse:
    """The second-factor form of a pending sign-in."""
    try:
        step = await logins.console_pending_step(request.app.ctx.auth, browser=browser_id(request))
    except SignInPending as exc:
        return _expired(request, exc)
    if step.step == "enrol":
        return see_other(request, STEP_PATHS["enrol"])
    return _code_page(request)


@bp.post("/console/login/code")
@doc(tag=TAG, summary="提交动态验证码或恢复码（通过后才开启会话）",
     errors=[TotpInvalid, SignInPending, TooManyRequests])  # fmt: skip
async def code(request: Request) -> HTTPResponse:
    """Check the second factor and open the console session."""
    form, _, _ = read_form(request, CodeForm)
    if form is None:
        return _code_page(request, status=422, errors=CODE_ERRORS)
    try:
        pair, next_path = await logins.console_second_factor(
            request.app.ctx.auth, browser=browser_id(request), code=form.code
        )
    except SignInPending as exc:
        return _expired(request, exc)
    except (TotpInvalid, TooManyRequests) as exc:
        return _code_page(request, status=exc.status, errors={"code": exc.message}, headers=exc.headers)
    return set_staff_session(request, see_other(request, next_path), pair)


@bp.post("/console/logout-all")
@doc(tag=TAG, summary="退出所有设备（本账号的全部登录立即失效）")
async def logout_all(request: Request) -> HTTPResponse:
    """End every session of this staff member, on every browser and app."""
    read_form(request, NextQuery)
    principal = await page_staff(request)
    if principal is not None:
        await logins.logout_everywhere(request.app.ctx.auth, principal=principal)
    request.ctx.staff_renewed = None
    return clear_staff_session(see_other(request, "/console/login"))


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
