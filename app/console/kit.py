"""What every console page shares: the staff session, role checks, the form token, rendering.

Console pages call the same service functions as the staff and admin API, with the signed-in staff
member's `Principal`, so scopes (hall, department) apply exactly as in the API.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from sanic import HTTPResponse, Request, redirect

from app.errors import Forbidden
from auth.guards import csrf_token, finish_page, page_staff
from auth.logins import safe_next

HTML = "text/html; charset=utf-8"
PRIVATE = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
}
ROLE_NAMES = {"admin": "管理员", "reviewer": "审核人员", "clerk": "窗口人员"}
Handler = Callable[..., Awaitable[HTTPResponse]]


class ConsoleForbidden(Forbidden):
    code, message = "CONSOLE_ROLE_FORBIDDEN", "您的岗位无权使用此页面"


def here(request: Request) -> str:
    """This page's own path and query (where sign-in returns to)."""
    return safe_next(request.path + (f"?{request.query_string}" if request.query_string else ""))


def page(request: Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTTPResponse:  # fmt: skip
    """Render a console page (templates under console/) with the staff member, the form token and roles."""
    html = request.app.ctx.pages.render(
        f"console/{template}",
        staff=getattr(request.ctx, "page_staff", None),
        role_names=ROLE_NAMES,
        csrf=csrf_token(request),
        here=here(request),
        **context,
    )
    response = HTTPResponse(html, status=status, content_type=HTML, headers={**PRIVATE, **(headers or {})})
    return finish_page(request, response)


def see_other(request: Request, path: str) -> HTTPResponse:
    """303 to a console page after a form post."""
    return finish_page(request, redirect(safe_next(path), status=303))


def staff_page(*roles: str) -> Callable[[Handler], Handler]:
    """A console page for a signed-in staff member holding one of these roles (any role when none given)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            principal = await page_staff(request)
            if principal is None:
                back = here(request) if request.method in ("GET", "HEAD") else "/console"
                return see_other(request, "/console/login?next=" + quote(back, safe="/"))
            if roles and principal.role not in roles:
                raise ConsoleForbidden(details={"required_roles": list(roles)})
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorate
