"""Server-rendered H5 pages (Jinja2)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from app.http import CSP_NONCE_PLACEHOLDER

ACTIONS = {
    "book": "预约办理",
    "apply": "网上申报",
    "progress": "进度查询",
    "consult": "咨询",
    "rate": "评价",
}


def _fen(value: int) -> str:
    yuan, fen = divmod(int(value), 100)
    return f"{yuan}.{fen:02d} 元" if fen else f"{yuan} 元"


class Pages:
    """The Jinja2 environment and the few pages we render.

    Jinja2 is used directly (not through sanic-ext's response helper) because the hot pages are
    rendered once to bytes and cached per worker.
    """

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("app.web", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fen"] = _fen
        # <script nonce="{{ csp_nonce }}">: each response puts its own nonce in place of this (app/observe.py)
        self.env.globals["csp_nonce"] = Markup(CSP_NONCE_PLACEHOLDER)  # noqa: S704 - our own constant
        self.env.filters["zip"] = lambda left, right: zip(left, right, strict=True)

    def render(self, name: str, **context: Any) -> str:
        """Render a template to a string."""
        return self.env.get_template(name).render(**context)

    def error_page(self, *, status: int, code: str, message: str, phone: str | None = None) -> str:
        """The explained error page every H5 route shows instead of a bare status."""
        return self.render("error.html", status=status, code=code, message=message, phone=phone)
