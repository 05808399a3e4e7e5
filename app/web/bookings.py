"""Citizen booking in the browser: days, times with seats left, confirm, the ticket, my bookings."""

from __future__ import annotations

import contextlib
import itertools

from sanic import Blueprint, HTTPResponse, Request

from app.booking import present as booking_present
from app.booking import service as booking
from app.booking.errors import BookingNotOffered
from app.errors import MatterNotFound
from app.guide import service as guides
from app.http import doc
from app.web.kit import HTML

bp = Blueprint("web_bookings", url_prefix="")
TAG = "h5 页面"


@bp.route("/m/<code:str>/book", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="办事入口：预约办理", errors=[MatterNotFound])
async def book_page(request: Request, code: str) -> HTTPResponse:
    """Seats left per slot."""
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    slots = None
    with contextlib.suppress(BookingNotOffered):
        slots = booking_present.slot_list_json(
            await booking.list_slots(
                request.app.ctx.booking, matter_code=guide["code"], hall=None, date_from=None, date_to=None
            )
        )
    days = itertools.groupby(slots["items"] if slots else [], key=lambda s: s["date"])
    html = request.app.ctx.pages.render(
        "book.html", g=guide, slots=slots, days=[(day, list(items)) for day, items in days]
    )
    return HTTPResponse(html, content_type=HTML, headers={"Cache-Control": "public, max-age=30"})
