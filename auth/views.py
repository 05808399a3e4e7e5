"""Sign-in endpoints (/api/v1/auth), token introspection and the published key set (/.well-known)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request, redirect

from app.errors import InvalidInput, ServiceUnavailable
from app.http import doc, json_response, parse_body, parse_query
from app.ratelimit import TooManyRequests
from app.wechat.errors import WeChatCodeInvalid, WeChatRateLimited, WeChatUnavailable
from auth import logins
from auth.deps import AuthDeps, TokenPair
from auth.errors import (
    AccountDisabled,
    AccountLocked,
    BadCredentials,
    ClientUnauthorized,
    IdentityConflict,
    OtpInvalid,
    RefreshReused,
    StateInvalid,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    TotpInvalid,
    TotpNotEnrolled,
    TotpRequired,
)
from auth.guards import (
    REFRESH_COOKIE,
    authenticate,
    browser_id,
    clear_session,
    optional_citizen,
    remember_browser,
    set_session,
)
from auth.pii import InvalidPhone
from auth.tokens import ALL_AUDIENCES

bp = Blueprint("auth", url_prefix="")
TAG = "auth 统一身份认证"


class TOKENS(BaseModel):
    """What a successful sign-in answers."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_token: str
    audience: str


class CodeBody(BaseModel):
    """A wx.login code."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)


class PhoneBody(BaseModel):
    """A mainland mobile number."""

    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=11, max_length=20)


class OtpBody(BaseModel):
    """A phone number and the 6-digit code sent to it."""

    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=11, max_length=20)
    otp: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$")


class StaffLoginBody(BaseModel):
    """Staff credentials; `totp` (a 6-digit authenticator code or a recovery code) for roles that need two-factor."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(default=None, min_length=6, max_length=16)


class RefreshBody(BaseModel):
    """A refresh token (H5 pages send it as the httpOnly cookie instead)."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=200)


class AuthorizeQuery(BaseModel):
    """Where to go after signing in (one of our own paths), and the grant asked of WeChat."""

    model_config = ConfigDict(extra="ignore")
    next: str | None = Field(default=None, max_length=512)
    scope: Literal["snsapi_base", "snsapi_userinfo"] = "snsapi_base"


class CallbackQuery(BaseModel):
    """What WeChat sends back."""

    model_config = ConfigDict(extra="ignore")
    code: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=1024)


def _ip(request: Request) -> str:
    return request.remote_addr or request.ip or "unknown"


def _deps(request: Request) -> AuthDeps:
    return request.app.ctx.auth


def _tokens(pair: TokenPair) -> dict[str, Any]:
    """JSON shape of a sign-in (OAuth-style)."""
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "audience": pair.audience,
    }


def _introspection(result: logins.Introspection) -> dict[str, Any]:
    """RFC 7662 answer: only `active` for an inactive token; `loa` for citizens, `role` for staff."""
    if not result.active:
        return {"active": False}
    return {
        "active": True,
        "sub": result.subject,
        "aud": result.audience,
        "iss": result.issuer,
        "exp": result.expires_at,
        "iat": result.issued_at,
        "token_type": "access_token",
        **({"loa": result.loa} if result.kind == "citizen" else {"role": result.role}),
    }


def _cookie_response(request: Request, response: HTTPResponse, pair: TokenPair) -> HTTPResponse:
    return set_session(request, response, pair)


@bp.post("/api/v1/auth/miniprogram")
@doc(
    tag=TAG,
    summary="小程序登录（wx.login code → 令牌）",
    body=CodeBody,
    response=TOKENS,
    errors=[InvalidInput, WeChatCodeInvalid, WeChatRateLimited, WeChatUnavailable, AccountDisabled],
)
async def miniprogram(request: Request) -> HTTPResponse:
    """Sign in from the mini program."""
    body = parse_body(request, CodeBody)
    pair = await logins.login_miniprogram(_deps(request), code=body.code)
    return json_response(_tokens(pair))


@bp.get("/api/v1/auth/wechat/authorize")
@doc(
    tag=TAG,
    summary="公众号网页授权：跳转到微信",
    query=AuthorizeQuery,
    description="next 只能是本站路径（防开放重定向）；state 签名、10 分钟有效、一次性，并与发起登录的浏览器绑定"
    "（Cookie zd_b）：在其他浏览器打开回调链接不会登录任何人。默认静默授权 snsapi_base。",
)
async def authorize(request: Request) -> HTTPResponse:
    """Redirect to WeChat's OAuth page, the state bound to this browser."""
    query = parse_query(request, AuthorizeQuery)
    url = await logins.oauth_start(_deps(request), next_path=query.next, browser=browser_id(request), scope=query.scope)
    return remember_browser(request, redirect(url))


@bp.get("/api/v1/auth/wechat/callback")
@doc(
    tag=TAG,
    summary="公众号网页授权回调：登录并写入 httpOnly Cookie",
    query=CallbackQuery,
    description="state 必须由本浏览器发起（OAUTH_STATE_FOREIGN 时不登录、不写 Cookie）；静默授权无法关联账号时"
    "改用 snsapi_userinfo 再授权一次。",
    errors=[InvalidInput, StateInvalid, WeChatCodeInvalid, WeChatUnavailable, AccountDisabled],
)
async def callback(request: Request) -> HTTPResponse:
    """Finish the OAuth login and go to the requested page."""
    query = parse_query(request, CallbackQuery)
    deps = _deps(request)
    browser = request.cookies.get("zd_b")
    login = await logins.oauth_finish(deps, code=query.code, state=query.state, browser=browser)
    if login.tokens is None:
        url = await logins.oauth_start(deps, next_path=login.next_path, browser=browser or "", scope=login.ask_again)
        return redirect(url)
    return _cookie_response(request, redirect(login.next_path), login.tokens)


@bp.post("/api/v1/auth/sms/send")
@doc(
    tag=TAG,
    summary="发送短信验证码（6 位，5 分钟有效）",
    body=PhoneBody,
    errors=[InvalidInput, InvalidPhone, TooManyRequests, ServiceUnavailable],
)
async def sms_send(request: Request) -> HTTPResponse:
    """Send a one-time code."""
    body = parse_body(request, PhoneBody)
    sent = await logins.sms_send(_deps(request), phone=body.phone, ip=_ip(request))
    return json_response({"phone": sent.masked_phone, "expires_in": sent.expires_in})


@bp.post("/api/v1/auth/sms/verify")
@doc(
    tag=TAG,
    summary="验证码登录；已登录时绑定手机号（同一手机号的账号合并）",
    body=OtpBody,
    response=TOKENS,
    errors=[InvalidInput, InvalidPhone, OtpInvalid, TooManyRequests, IdentityConflict, AccountDisabled],
)
async def sms_verify(request: Request) -> HTTPResponse:
    """Verify a code: sign in (app) or link the phone to the signed-in citizen."""
    body = parse_body(request, OtpBody)
    current = await optional_citizen(request)
    pair = await logins.sms_verify(_deps(request), phone=body.phone, otp=body.otp, current=current)
    return json_response(_tokens(pair))


@bp.post("/api/v1/auth/staff/login")
@doc(
    tag=TAG,
    summary="工作人员登录（需要两步验证的岗位须同时提交 totp；未绑定者先在工作台登录页绑定）",
    body=StaffLoginBody,
    response=TOKENS,
    errors=[
        InvalidInput, BadCredentials, AccountLocked, AccountDisabled, TotpRequired, TotpInvalid, TotpNotEnrolled,
        TooManyRequests,
    ],
)  # fmt: skip
async def staff_login(request: Request) -> HTTPResponse:
    """Staff password sign-in; administrators and reviewers (by default) also give a TOTP code."""
    body = parse_body(request, StaffLoginBody)
    pair = await logins.staff_login(
        _deps(request), username=body.username, password=body.password, ip=_ip(request), code=body.totp
    )
    return json_response(_tokens(pair))


@bp.post("/api/v1/auth/refresh")
@doc(
    tag=TAG,
    summary="刷新令牌（每次使用都轮换；旧令牌重用将注销整个登录）",
    body=RefreshBody,
    response=TOKENS,
    errors=[InvalidInput, TokenInvalid, TokenExpired, TokenRevoked, RefreshReused],
)
async def refresh(request: Request) -> HTTPResponse:
    """Rotate a refresh token."""
    body = parse_body(request, RefreshBody) if request.body else RefreshBody()
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE) or ""
    pair = await logins.refresh(_deps(request), refresh_token=token)
    response = json_response(_tokens(pair))
    return _cookie_response(request, response, pair) if not body.refresh_token else response


@bp.post("/api/v1/auth/logout")
@doc(tag=TAG, summary="退出登录（立即失效）", errors=[TokenMissing, TokenInvalid, TokenExpired, TokenRevoked])
async def logout(request: Request) -> HTTPResponse:
    """Revoke the caller's session."""
    principal = await authenticate(request, ALL_AUDIENCES)
    await logins.logout(_deps(request), principal=principal)
    return clear_session(HTTPResponse(status=204))


@bp.post("/api/v1/auth/introspect")
@doc(
    tag=TAG,
    summary="令牌内省（RFC 7662，供合作系统使用，HTTP Basic 客户端凭证）",
    errors=[ClientUnauthorized, InvalidInput],
)
async def introspect(request: Request) -> HTTPResponse:
    """Tell a partner system whether a token is active."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    client_id = client_secret = ""
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, ValueError):  # bad base64, non-ASCII input, bad UTF-8
            raise ClientUnauthorized() from None
    if "json" in (request.content_type or ""):
        data = parse_body(request)
        token = data.get("token", "") if isinstance(data, dict) else ""
        token = token if isinstance(token, str) else ""
    else:
        token = (parse_qs((request.body or b"").decode(errors="replace")).get("token") or [""])[0]
    result = await logins.introspect(_deps(request), client_id=client_id, client_secret=client_secret, token=token)
    return json_response(_introspection(result))


@bp.get("/.well-known/jwks.json")
@doc(tag=TAG, summary="签名公钥集（JWKS）")
async def jwks(request: Request) -> HTTPResponse:
    """Public keys that verify our tokens."""
    keys = await request.app.ctx.tokens.jwks()
    return json_response(keys, headers={"Cache-Control": "public, max-age=300"})


@bp.get("/.well-known/openid-configuration")
@doc(tag=TAG, summary="发现文档")
async def discovery(request: Request) -> HTTPResponse:
    """Where our keys and endpoints are."""
    settings = request.app.ctx.settings
    base = settings.base_url
    return json_response(
        {
            "issuer": settings.jwt_issuer,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "authorization_endpoint": f"{base}/api/v1/auth/wechat/authorize",
            "token_endpoint": f"{base}/api/v1/auth/refresh",
            "introspection_endpoint": f"{base}/api/v1/auth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
            "audiences": sorted(ALL_AUDIENCES),
        },
        headers={"Cache-Control": "public, max-age=300"},
    )
