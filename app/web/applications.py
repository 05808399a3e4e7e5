"""Citizen online application: the materials form, uploads, submit, the receipt, my cases."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from app.errors import MatterNotFound
from app.guide import service as guides
from app.http import doc
from app.web import ACTIONS
from app.web.kit import HTML

bp = Blueprint("web_apply", url_prefix="")
TAG = "h5 页面"


@bp.route("/m/<code:str>/apply", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="办事入口：网上申报", errors=[MatterNotFound])
async def apply_page(request: Request, code: str) -> HTTPResponse:
    """The entry page of this service."""
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    settings = request.app.ctx.settings
    html = request.app.ctx.pages.render(
        "entry.html", g=guide, action="apply", action_name=ACTIONS["apply"], consult_days=settings.consult_days,
        rating_days=settings.rating_window_days,
    )  # fmt: skip
    return HTTPResponse(html, content_type=HTML)
