"""Guards: one way for handlers to say who may call them (role, level of assurance); scope is `Principal.covers`.

Apps send `Authorization: Bearer <jwt>`; our H5 pages use the httpOnly cookie `zd_at`. A write
authenticated by the cookie must come from our own origin (CSRF).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sanic import Request

from app.errors import Forbidden
from auth.errors import AssuranceTooLow, TokenMissing, WrongRole
from auth.tokens import CITIZEN_AUDIENCES, STAFF_AUDIENCE, Principal

ACCESS_COOKIE = "zd_at"
REFRESH_COOKIE = "zd_rt"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[..., Awaitable[Any]]


class CrossSiteRejected(Forbidden):
    code, message = "CSRF_REJECTED", "请求来源不可信"


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
