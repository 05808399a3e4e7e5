"""Citizen sign-in in the browser (SMS code anywhere, WeChat OAuth inside WeChat), sign-out, my account,
phone binding, real-name verification and the elder-friendly mode."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request, redirect

from app.errors import InvalidInput
from app.http import doc, parse_query
from app.ratelimit import TooManyRequests
from app.web.kit import ELDER_COOKIE, citizen_page, field_errors, form_data, in_wechat, page, read_form, see_other
from auth import accounts, logins
from auth.errors import IdentityConflict, OtpInvalid, RealNameDone, RealNameMismatch
from auth.guards import check_origin, clear_session, page_citizen, renew_session, set_session
from auth.idcard import InvalidIdNumber
from auth.pii import InvalidPhone
from auth.realname import RealNameUnavailable
from auth.sms import SmsUnavailable

bp = Blueprint("web_account", url_prefix="")
TAG = "h5 页面"


class NextQuery(BaseModel):
    """Where to return after signing in."""

    model_config = ConfigDict(extra="ignore")
    next: str = Field(default="/m", max_length=512)
    sms: int = Field(default=0, ge=0, le=1)


class PhoneForm(BaseModel):
    """Step 1: the phone number."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    phone: str = Field(min_length=11, max_length=20)
    next: str = Field(default="/m", max_length=512)


class OtpForm(PhoneForm):
    """Step 2: the code sent to it."""

    otp: str = Field(pattern=r"^\d{6}$")


class RealNameForm(BaseModel):
    """Name and resident ID number."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    name: str = Field(min_length=2, max_length=30)
    id_number: str = Field(min_length=15, max_length=32)
    next: str = Field(default="/m/me", max_length=512)


def _ip(request: Request) -> str:
    return request.remote_addr or request.ip or "unknown"


def _login_page(request: Request, *, binding: bool, next_path: str, status: int = 200, **context) -> HTTPResponse:
    action = "/m/me/phone" if binding else "/m/login"
    context.setdefault("errors", {})
    context.setdefault("phone", "")
    context.setdefault("sent", None)
    return page(request, "login.html", status=status, binding=binding, action=action,
                next=logins.safe_next(next_path), **context)  # fmt: skip


@bp.get("/m/login")
@doc(tag=TAG, summary="登录页：微信内静默授权登录，其他浏览器短信验证码登录；登录后回到来源页面", query=NextQuery)
async def login(request: Request) -> HTTPResponse:
    """Inside WeChat go straight to the official account's silent OAuth; elsewhere the SMS form."""
    q = parse_query(request, NextQuery)
    if await page_citizen(request) is not None:
        return see_other(request, q.next)
    if in_wechat(request) and not q.sms:
        return redirect("/api/v1/auth/wechat/authorize?next=" + quote(logins.safe_next(q.next), safe="/"))
    return _login_page(request, binding=False, next_path=q.next)


async def _send_code(request: Request, *, binding: bool) -> HTTPResponse:
    form, errors, raw = read_form(request, PhoneForm)
    next_path = str(raw.get("next") or "/m")
    if form is None:
        if "phone" in errors:  # say what a phone number looks like, not the validator's length rule
            errors["phone"] = f"{InvalidPhone.message}：请输入 11 位中国大陆手机号"
        return _login_page(request, binding=binding, next_path=next_path, status=422, errors=errors,
                           phone=str(raw.get("phone", ""))[:20])  # fmt: skip
    try:
        sent = await logins.sms_send(request.app.ctx.auth, phone=form.phone, ip=_ip(request))
    except (InvalidPhone, TooManyRequests, SmsUnavailable) as exc:
        return _login_page(request, binding=binding, next_path=next_path, status=exc.status,
                           errors={"phone": exc.message}, phone=form.phone, headers=exc.headers)  # fmt: skip
    return _login_page(request, binding=binding, next_path=form.next, sent=sent, phone=form.phone)


async def _verify(request: Request, *, binding: bool) -> HTTPResponse:
    form, errors, raw = read_form(request, OtpForm)
    next_path = str(raw.get("next") or "/m")
    phone = str(raw.get("phone", ""))[:20]
    resend = logins.OtpSent(masked_phone=phone[:3] + "****" + phone[-4:], expires_in=logins.OTP_TTL)
    if form is None:
        return _login_page(request, binding=binding, next_path=next_path, status=422, errors=errors,
                           phone=phone, sent=resend)  # fmt: skip
    current = await page_citizen(request) if binding else None
    try:
        pair = await logins.sms_verify(
            request.app.ctx.auth, phone=form.phone, otp=form.otp, current=current, audience="h5"
        )
    except (OtpInvalid, InvalidPhone, TooManyRequests) as exc:
        return _login_page(request, binding=binding, next_path=next_path, status=exc.status,
                           errors={"otp": exc.message}, phone=phone, sent=resend)  # fmt: skip
    except IdentityConflict as exc:
        return _login_page(request, binding=binding, next_path=next_path, status=exc.status,
                           errors={"phone": exc.message}, phone=phone)  # fmt: skip
    return set_session(request, see_other(request, form.next), pair)


@bp.post("/m/login/code")
@doc(tag=TAG, summary="登录：发送短信验证码（表单）", errors=[InvalidPhone, TooManyRequests, SmsUnavailable])
async def login_code(request: Request) -> HTTPResponse:
    """Send the code, then show the code field."""
    return await _send_code(request, binding=False)


@bp.post("/m/login")
@doc(
    tag=TAG, summary="登录：校验验证码，写入 HttpOnly 会话 Cookie 并回到来源页面", errors=[OtpInvalid, TooManyRequests]
)
async def login_verify(request: Request) -> HTTPResponse:
    """Check the code and sign in (the same citizen account as the mini program and the app)."""
    return await _verify(request, binding=False)


@bp.get("/m/me/phone")
@doc(tag=TAG, summary="绑定手机号（预约、申报需要身份等级 2）", query=NextQuery)
@citizen_page(loa=1)
async def phone_page(request: Request) -> HTTPResponse:
    """The phone form for a citizen signed in through WeChat only."""
    q = parse_query(request, NextQuery)
    return _login_page(request, binding=True, next_path=q.next)


@bp.post("/m/me/phone/code")
@doc(tag=TAG, summary="绑定手机号：发送验证码", errors=[InvalidPhone, TooManyRequests, SmsUnavailable])
@citizen_page(loa=1)
async def phone_code(request: Request) -> HTTPResponse:
    """Send the code for binding."""
    return await _send_code(request, binding=True)


@bp.post("/m/me/phone")
@doc(tag=TAG, summary="绑定手机号：校验验证码（同一手机号的账号合并）", errors=[OtpInvalid, IdentityConflict])
@citizen_page(loa=1)
async def phone_bind(request: Request) -> HTTPResponse:
    """Link the phone to the signed-in citizen."""
    return await _verify(request, binding=True)


@bp.post("/m/logout")
@doc(tag=TAG, summary="退出登录（会话立即失效）")
async def logout(request: Request) -> HTTPResponse:
    """End the session and clear its cookies."""
    form_data(request)
    principal = await page_citizen(request)
    if principal is not None:
        await logins.logout(request.app.ctx.auth, principal=principal)
    request.ctx.renewed = None
    return clear_session(see_other(request, "/m"))


@bp.post("/m/elder")
@doc(tag=TAG, summary="切换长辈模式（大字体、大按钮、高对比度；记住在本浏览器）")
async def elder(request: Request) -> HTTPResponse:
    """Toggle the elder-friendly mode and go back to the page.

    Only the origin is checked: the button sits on cached public pages too (no per-browser token
    there), and a forged toggle changes nothing but the type size.
    """
    check_origin(request)
    data = {k: v[0] for k, v in (request.form or {}).items()}
    on = request.cookies.get(ELDER_COOKIE) != "1"
    response = see_other(request, str(data.get("next") or "/m"))
    response.add_cookie(ELDER_COOKIE, "1" if on else "0", path="/", max_age=400 * 86400, samesite="Lax",
                        httponly=True, secure=request.app.ctx.settings.base_url.startswith("https://"))  # fmt: skip
    return response


@bp.get("/m/me")
@doc(tag=TAG, summary="我的：账号、我的预约、我的办件、我的咨询、我的评价")
@citizen_page(loa=1)
async def me(request: Request) -> HTTPResponse:
    """The citizen's account page."""
    profile = await accounts.profile(request.app.ctx.auth, principal=request.ctx.principal)
    return page(request, "me.html", profile=profile)


def _real_name_page(request: Request, *, status: int = 200, **context) -> HTTPResponse:
    context.setdefault("errors", {})
    context.setdefault("form", {})
    return page(request, "real_name.html", status=status, **context)


@bp.get("/m/me/real-name")
@doc(tag=TAG, summary="实名认证（姓名 + 身份证号；认证后只显示掩码）", query=NextQuery)
@citizen_page(loa=1)
async def real_name_page(request: Request) -> HTTPResponse:
    """The form, or the masked result once verified."""
    q = parse_query(request, NextQuery)
    profile = await accounts.profile(request.app.ctx.auth, principal=request.ctx.principal)
    return _real_name_page(request, profile=profile, next=logins.safe_next(q.next))


@bp.post("/m/me/real-name")
@doc(tag=TAG, summary="实名认证：提交姓名和身份证号",
     errors=[InvalidInput, InvalidIdNumber, RealNameMismatch, RealNameDone, TooManyRequests,
             RealNameUnavailable])  # fmt: skip
@citizen_page(loa=1)
async def real_name(request: Request) -> HTTPResponse:
    """Verify, then renew the session so it carries level 3, and go on to where the citizen was going."""
    form, errors, raw = read_form(request, RealNameForm)
    deps = request.app.ctx.auth
    profile = await accounts.profile(deps, principal=request.ctx.principal)
    typed = {"name": str(raw.get("name", ""))[:30], "id_number": ""}  # the number is never echoed back
    next_path = logins.safe_next(str(raw.get("next") or "/m/me"))
    if form is None:
        return _real_name_page(request, status=422, errors=errors, form=typed, profile=profile, next=next_path)
    try:
        await accounts.real_name(deps, principal=request.ctx.principal, name=form.name, id_number=form.id_number,
                                 ip=_ip(request))  # fmt: skip
    except InvalidIdNumber as exc:
        return _real_name_page(request, status=exc.status, errors={"id_number": exc.message}, form=typed,
                               profile=profile, next=next_path)  # fmt: skip
    except (RealNameMismatch, RealNameDone, TooManyRequests, RealNameUnavailable, InvalidInput) as exc:
        errors = {k if k in ("name", "id_number") else "__all__": v for k, v in field_errors(exc).items()}
        return _real_name_page(request, status=exc.status, errors=errors, form=typed, profile=profile,
                               next=next_path, headers=exc.headers)  # fmt: skip
    await renew_session(request)  # the session now carries level 3
    return see_other(request, form.next)
