"""Citizen consultation and ratings: ask, my questions, rate a case, a visit or an answer."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from app.errors import MatterNotFound
from app.guide import service as guides
from app.http import doc
from app.web import ACTIONS
from app.web.kit import HTML

bp = Blueprint("web_feedback", url_prefix="")
TAG = "h5 页面"


@bp.route("/m/<code:str>/consult", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="办事入口：咨询", errors=[MatterNotFound])
async def consult_page(request: Request, code: str) -> HTTPResponse:
    """The entry page of this service."""
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    settings = request.app.ctx.settings
    html = request.app.ctx.pages.render(
        "entry.html", g=guide, action="consult", action_name=ACTIONS["consult"], consult_days=settings.consult_days,
        rating_days=settings.rating_window_days,
    )  # fmt: skip
    return HTTPResponse(html, content_type=HTML)


@bp.route("/m/<code:str>/rate", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="办事入口：评价", errors=[MatterNotFound])
async def rate_page(request: Request, code: str) -> HTTPResponse:
    """The entry page of this service."""
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    settings = request.app.ctx.settings
    html = request.app.ctx.pages.render(
        "entry.html", g=guide, action="rate", action_name=ACTIONS["rate"], consult_days=settings.consult_days,
        rating_days=settings.rating_window_days,
    )  # fmt: skip
    return HTTPResponse(html, content_type=HTML)
