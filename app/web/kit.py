"""What every citizen page shares: the session, the CSRF token, forms with errors next to their fields.

Pages are thin: they read a form, call the same service functions as /api/v1, and render or redirect
(post, then 303 to a page, so a reload never repeats a write).
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ValidationError
from sanic import HTTPResponse, Request, redirect

from app.errors import DomainError
from auth.guards import check_csrf, csrf_token, finish_page, page_citizen
from auth.logins import safe_next

HTML = "text/html; charset=utf-8"
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Robots-Tag": "noindex"}
ELDER_COOKIE = "zd_elder"
M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[HTTPResponse]]


def in_wechat(request: Request) -> bool:
    """Opened in WeChat's browser (its user agent says MicroMessenger)."""
    return "MicroMessenger" in request.headers.get("user-agent", "")


def here(request: Request) -> str:
    """This page's own path and query (where sign-in returns to)."""
    return safe_next(request.path + (f"?{request.query_string}" if request.query_string else ""))


def page(request: Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTTPResponse:  # fmt: skip
    """Render a citizen page with what every page shows (who is signed in, the form token, elder mode)."""
    html = request.app.ctx.pages.render(
        template,
        me=getattr(request.ctx, "principal", None),
        csrf=csrf_token(request),
        elder=request.cookies.get(ELDER_COOKIE) == "1",
        in_wechat=in_wechat(request),
        here=here(request),
        new_key=secrets.token_urlsafe(16),  # a fresh Idempotency-Key for each form rendered
        **context,
    )
    return finish_page(
        request, HTTPResponse(html, status=status, content_type=HTML, headers={**PRIVATE, **(headers or {})})
    )


def see_other(request: Request, path: str) -> HTTPResponse:
    """303 to one of our pages after a form post (a reload shows the page, never repeats the post).

    A fragment naming a part of the page (`#correction`) is kept: the path alone is checked as ours.
    """
    path, _, fragment = path.partition("#")
    anchor = f"#{fragment}" if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,40}", fragment) else ""
    return finish_page(request, redirect(safe_next(path) + anchor, status=303))


def login_url(next_path: str) -> str:
    """The sign-in page that comes back to `next_path`."""
    return "/m/login?next=" + quote(safe_next(next_path), safe="/")


def referer_path(request: Request) -> str:
    """The page of ours a form was posted from (browsers send the Referer as a full URL), else /m."""
    raw = request.headers.get("referer", "")
    ref = urlsplit(raw)
    if not ref.scheme and not ref.netloc:
        return safe_next(raw)
    ours = urlsplit(request.app.ctx.settings.base_url)
    if (ref.scheme, ref.netloc) != (ours.scheme, ours.netloc):
        return "/m"
    return safe_next(ref.path + (f"?{ref.query}" if ref.query else ""))


def citizen_page(loa: int = 1) -> Callable[[Handler], Handler]:
    """A page for a signed-in citizen with at least this level of assurance; others are sent to get it."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            principal = await page_citizen(request)
            back = here(request) if request.method in ("GET", "HEAD") else referer_path(request)
            if principal is None:
                return see_other(request, login_url(back))
            if principal.loa < loa:
                step = "/m/me/phone" if loa == 2 else "/m/me/real-name"
                return see_other(request, f"{step}?next={quote(back, safe='/')}")
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorate


async def optional_citizen(request: Request) -> Any:
    """The signed-in citizen or None (public pages show 登录 or 我的)."""
    return await page_citizen(request)


def form_data(request: Request) -> dict[str, Any]:
    """A posted form as a dict (single values as strings, repeated names as lists), CSRF checked."""
    form = request.form or {}
    check_csrf(request, (form.get("csrf") or ""))
    data: dict[str, Any] = {}
    for key, values in form.items():
        if key == "csrf":
            continue
        data[key] = values[0] if len(values) == 1 else values
    return data


def read_form(request: Request, model: type[M]) -> tuple[M | None, dict[str, str], dict[str, Any]]:
    """(the validated form or None, a Chinese message per field, what was typed) — never an error page."""
    data = form_data(request)
    try:
        return model.model_validate(data), {}, data
    except ValidationError as exc:
        from app.errors import pydantic_details

        fields = pydantic_details(exc)["fields"]
        return None, {name: "；".join(msgs) for name, msgs in fields.items()}, data


def field_errors(exc: DomainError, default_field: str = "__all__") -> dict[str, str]:
    """A domain error as messages per field: its `details.fields` when it names them, else one message."""
    fields = (exc.details or {}).get("fields")
    if isinstance(fields, dict) and fields:
        return {str(k): "；".join(v) if isinstance(v, list) else str(v) for k, v in fields.items()}
    return {default_field: exc.message}
