"""Guards: one way for handlers to say who may call them (role, level of assurance); scope is `Principal.covers`.

Apps send `Authorization: Bearer <jwt>`; our H5 pages use the httpOnly cookie `zd_at`. A write
authenticated by the cookie must come from our own origin (CSRF).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sanic import HTTPResponse, Request

from app.errors import DomainError, Forbidden
from auth import logins
from auth.deps import TokenPair
from auth.errors import AssuranceTooLow, TokenMissing, WrongRole
from auth.tokens import CITIZEN_AUDIENCES, STAFF_AUDIENCE, Principal

ACCESS_COOKIE = "zd_at"
REFRESH_COOKIE = "zd_rt"
STAFF_COOKIE = "zd_st"  # the console's access token (SameSite=Strict: staff never arrive from another site)
STAFF_REFRESH_COOKIE = "zd_srt"
BROWSER_COOKIE = "zd_b"  # a random id per browser: binds OAuth states and CSRF tokens to it
BROWSER_DAYS = 400
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[..., Awaitable[Any]]


class CrossSiteRejected(Forbidden):
    code, message = "CSRF_REJECTED", "请求来源不可信"


class FormExpired(Forbidden):
    code, message = "FORM_EXPIRED", "页面已过期，请返回刷新后重新提交"


def _secure(request: Request) -> bool:
    """Cookies are Secure outside development (and whenever we are served over https)."""
    settings = request.app.ctx.settings
    return settings.base_url.startswith("https://") or not settings.is_dev


def browser_id(request: Request) -> str:
    """This browser's id: from its cookie, or a new one (`remember_browser` stores it on the response)."""
    known = getattr(request.ctx, "browser_id", None)
    if known:
        return known
    cookie = request.cookies.get(BROWSER_COOKIE) or ""
    if not (32 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum()):
        cookie = ""
    request.ctx.browser_new = not cookie
    request.ctx.browser_id = cookie or secrets.token_urlsafe(24)
    return request.ctx.browser_id


def remember_browser(request: Request, response: HTTPResponse) -> HTTPResponse:
    """Set the browser cookie when this request made a new id."""
    if getattr(request.ctx, "browser_new", False):
        response.add_cookie(
            BROWSER_COOKIE, request.ctx.browser_id, httponly=True, secure=_secure(request), samesite="Lax",
            path="/", max_age=BROWSER_DAYS * 86400,
        )  # fmt: skip
    return response


def csrf_token(request: Request) -> str:
    """The form token of this browser (signed double-submit: an HMAC of the browser cookie)."""
    secret = request.app.ctx.settings.secret_key.encode()
    return hmac.new(secret, f"csrf:{browser_id(request)}".encode(), hashlib.sha256).hexdigest()[:32]


def check_origin(request: Request) -> None:
    """Refuse a post whose Origin (or Referer) names another site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and not _same_origin(request):
        raise CrossSiteRejected()


def check_csrf(request: Request, token: str | None) -> None:
    """Refuse a form post that is not from our own page in this browser (origin and token both)."""
    check_origin(request)
    if not request.cookies.get(BROWSER_COOKIE) or not token or not hmac.compare_digest(token, csrf_token(request)):
        raise FormExpired()


def _set_pair(request: Request, response: HTTPResponse, pair: TokenPair, names: tuple[str, str], samesite: str) -> None:
    """Both tokens of a session in HttpOnly cookies on every path (a page renews an expired access token)."""
    secure = _secure(request)
    access, refresh = names
    response.add_cookie(
        access, pair.access_token, httponly=True, secure=secure, samesite=samesite, path="/", max_age=pair.expires_in
    )
    response.add_cookie(
        refresh, pair.refresh_token, httponly=True, secure=secure, samesite=samesite, path="/",
        max_age=request.app.ctx.settings.refresh_token_days * 86400,
    )  # fmt: skip


def set_session(request: Request, response: HTTPResponse, pair: TokenPair) -> HTTPResponse:
    """Sign the browser in: the access and refresh tokens in HttpOnly, SameSite=Lax cookies."""
    _set_pair(request, response, pair, (ACCESS_COOKIE, REFRESH_COOKIE), "Lax")
    return response


def clear_session(response: HTTPResponse) -> HTTPResponse:
    """Sign the browser out (both cookies, and the refresh cookie's older, narrower path)."""
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/api/v1/auth")
    return response


async def page_citizen(request: Request) -> Principal | None:
    """The citizen signed in on this browser, renewing an expired access token from the refresh cookie.

    A renewal is stored in `request.ctx.renewed`; `finish_page` writes its cookies. A session that
    cannot be renewed reads as signed out (the page offers sign-in), never as an error page. Asked
    twice in one request it answers the same (a refresh token is rotated at most once).
    """
    if hasattr(request.ctx, "page_citizen"):
        return request.ctx.page_citizen
    request.ctx.page_citizen = principal = await _page_citizen(request)
    return principal


async def _page_citizen(request: Request) -> Principal | None:
    token = request.cookies.get(ACCESS_COOKIE)
    if token:
        try:
            principal = await request.app.ctx.tokens.verify(token, audiences=CITIZEN_AUDIENCES)
        except DomainError:
            principal = None
        if principal is not None and principal.kind == "citizen":
            request.ctx.principal = principal
            return principal
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    try:
        pair = await logins.refresh(request.app.ctx.auth, refresh_token=refresh)
        principal = await request.app.ctx.tokens.verify(pair.access_token, audiences=CITIZEN_AUDIENCES)
    except DomainError:
        request.ctx.session_lost = True
        return None
    if principal.kind != "citizen":
        return None
    request.ctx.renewed = pair
    request.ctx.principal = principal
    return principal


async def renew_session(request: Request) -> None:
    """Rotate the session now so its access token carries the account's new claims (e.g. LoA 3)."""
    renewed = getattr(request.ctx, "renewed", None)
    refresh = renewed.refresh_token if renewed is not None else request.cookies.get(REFRESH_COOKIE)
    if refresh:
        try:
            request.ctx.renewed = await logins.refresh(request.app.ctx.auth, refresh_token=refresh)
        except DomainError:
            request.ctx.session_lost = True


def set_staff_session(request: Request, response: HTTPResponse, pair: TokenPair) -> HTTPResponse:
    """Sign a staff member in to the console: HttpOnly, SameSite=Strict cookies (never readable by script)."""
    _set_pair(request, response, pair, (STAFF_COOKIE, STAFF_REFRESH_COOKIE), "Strict")
    return response


def clear_staff_session(response: HTTPResponse) -> HTTPResponse:
    """Sign the console out."""
    response.delete_cookie(STAFF_COOKIE, path="/")
    response.delete_cookie(STAFF_REFRESH_COOKIE, path="/")
    return response


async def page_staff(request: Request) -> Principal | None:
    """The staff member signed in to the console on this browser (renewed like `page_citizen`), or None."""
    if hasattr(request.ctx, "page_staff"):
        return request.ctx.page_staff
    principal: Principal | None = None
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        try:
            principal = await request.app.ctx.tokens.verify(token, audiences=frozenset({STAFF_AUDIENCE}))
        except DomainError:
            principal = None
    if principal is None and request.cookies.get(STAFF_REFRESH_COOKIE):
        try:
            refresh = request.cookies.get(STAFF_REFRESH_COOKIE) or ""
            pair = await logins.refresh(request.app.ctx.auth, refresh_token=refresh)
            principal = await request.app.ctx.tokens.verify(pair.access_token, audiences=frozenset({STAFF_AUDIENCE}))
            request.ctx.staff_renewed = pair
        except DomainError:
            request.ctx.staff_lost = True
            principal = None
    if principal is not None and principal.kind != "staff":
        principal = None
    if principal is not None and not await logins.console_active(request.app.ctx.auth, session_id=principal.session_id):
        # Unused past CONSOLE_IDLE_MINUTES: the session is revoked and the browser signed out.
        request.ctx.staff_renewed = None
        request.ctx.staff_lost = True
        request.ctx.staff_idle = True
        principal = None
    if principal is not None:
        request.ctx.principal = principal
    request.ctx.page_staff = principal
    return principal


def finish_page(request: Request, response: HTTPResponse) -> HTTPResponse:
    """Write what this request changed about the browser's session and id onto the response."""
    renewed = getattr(request.ctx, "renewed", None)
    if renewed is not None:
        set_session(request, response, renewed)
    elif getattr(request.ctx, "session_lost", False):
        clear_session(response)
    staff_renewed = getattr(request.ctx, "staff_renewed", None)
    if staff_renewed is not None:
        set_staff_session(request, response, staff_renewed)
    elif getattr(request.ctx, "staff_lost", False):
        clear_staff_session(response)
    return remember_browser(request, response)


def bearer(request: Request) -> tuple[str | None, bool]:
    """(token, from_cookie) of a request."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(ACCESS_COOKIE)
    return (cookie, True) if cookie else (None, False)


def _same_origin(request: Request) -> bool:
    ours = urlsplit(request.app.ctx.settings.base_url)
    origin = urlsplit(request.headers.get("origin") or request.headers.get("referer") or "")
    return (origin.scheme, origin.netloc) == (ours.scheme, ours.netloc)


async def authenticate(request: Request, audiences: frozenset[str]) -> Principal:
    """Verify the caller's token for these audiences; 401 with a code otherwise."""
    token, from_cookie = bearer(request)
    if audiences == frozenset({STAFF_AUDIENCE}) and (not token or from_cookie) and request.cookies.get(STAFF_COOKIE):
        # The console's pages call the staff API with their own session cookie (same origin checks apply).
        token, from_cookie = request.cookies.get(STAFF_COOKIE), True
    if not token:
        raise TokenMissing(headers={"WWW-Authenticate": "Bearer"})
    if from_cookie and request.method not in _SAFE and not _same_origin(request):
        raise CrossSiteRejected()
    principal = await request.app.ctx.tokens.verify(token, audiences=audiences)
    request.ctx.principal = principal
    return principal


async def optional_citizen(request: Request) -> Principal | None:
    """The signed-in citizen, or None when no token is presented (a bad token still fails)."""
    token, _ = bearer(request)
    if not token:
        return None
    return await authenticate(request, CITIZEN_AUDIENCES)


def citizen_required(loa: int = 1) -> Callable[[Handler], Handler]:
    """A signed-in citizen with at least this level of assurance (1 WeChat, 2 phone, 3 real name)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            principal = await authenticate(request, CITIZEN_AUDIENCES)
            if principal.kind != "citizen":
                raise WrongRole()
            if principal.loa < loa:
                raise AssuranceTooLow(details={"required_loa": loa, "current_loa": principal.loa})
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorate


def staff_required(*roles: str) -> Callable[[Handler], Handler]:
    """A signed-in staff member holding one of these roles."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            principal = await authenticate(request, frozenset({STAFF_AUDIENCE}))
            if principal.kind != "staff" or (roles and principal.role not in roles):
                raise WrongRole(details={"required_roles": list(roles)})
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorate


admin_required = staff_required("admin")
