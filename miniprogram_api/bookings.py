"""Citizen booking API: slots, book (idempotent), list, detail, cancel, reschedule and the ticket image."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app import idempotency
from app.booking import errors as be
from app.booking import present, service
from app.booking.deps import BookingDeps
from app.booking.types import BookingStatus
from app.errors import InvalidInput, MatterNotFound
from app.http import doc, idempotent, json_response, parse_body, parse_query
from auth.errors import CITIZEN_AUTH_ERRORS
from auth.guards import citizen_required
from qr.render import MEDIA_TYPES, ImageOptions, cached_render

bp = Blueprint("bookings", url_prefix="/api/v1")
TAG = "bookings 预约"
AUTH_ERRORS = CITIZEN_AUTH_ERRORS
PRIVATE = {"Cache-Control": "private, no-store"}
SLOT_ERRORS = [be.SlotNotFound, be.SlotNotForMatter, be.SlotInPast, be.SlotOutsideWindow, be.SlotFull]


class SlotQuery(BaseModel):
    """Which slots to list."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    hall: str | None = Field(default=None, max_length=32, description="大厅编码（默认为事项的办理大厅）")
    date_from: dt.date | None = Field(default=None, alias="from", description="起始日期 YYYY-MM-DD（默认今天）")
    date_to: dt.date | None = Field(default=None, alias="to", description="结束日期 YYYY-MM-DD（默认预约窗口最后一天）")


class BookBody(BaseModel):
    """What to book."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    matter_code: str = Field(min_length=1, max_length=40)
    slot_id: str = Field(min_length=1, max_length=80)


class RescheduleBody(BaseModel):
    """The new slot."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    slot_id: str = Field(min_length=1, max_length=80)


class ListQuery(BaseModel):
    """Filter and page of the booking list."""

    model_config = ConfigDict(extra="ignore")
    status: BookingStatus | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


def _deps(request: Request) -> BookingDeps:
    return request.app.ctx.booking


@bp.get("/matters/<code:str>/slots")
@doc(
    tag=TAG,
    summary="可预约时段（身份等级 ≥ 2）",
    query=SlotQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, MatterNotFound, be.BookingNotOffered, be.HallNotFound, be.SlotNotForMatter, be.RangeInvalid],
)
@citizen_required(loa=2)
async def slots(request: Request, code: str) -> HTTPResponse:
    """Open slots of the matter's hall and section, with seats left."""
    query = parse_query(request, SlotQuery)
    slots = await service.list_slots(
        _deps(request), matter_code=code, hall=query.hall, date_from=query.date_from, date_to=query.date_to
    )
    return json_response(present.slot_list_json(slots), headers=PRIVATE)


@bp.post("/bookings")
@doc(
    tag=TAG,
    summary="预约（需 Idempotency-Key 请求头；同一键同一内容重放同一结果）",
    body=BookBody,
    status=201,
    secured="bearer",
    errors=[
        *AUTH_ERRORS,
        InvalidInput,
        *idempotency.ERRORS,
        MatterNotFound,
        be.BookingNotOffered,
        *SLOT_ERRORS,
        be.BookingExists,
        be.BookingLimitReached,
        be.BookingRestricted,
        be.BookingBusy,
    ],
)
@citizen_required(loa=2)
async def book(request: Request) -> HTTPResponse:
    """Take a seat in a slot; answers the booking with its signed ticket."""
    body = parse_body(request, BookBody)
    principal = request.ctx.principal
    deps = _deps(request)

    async def run(claim: idempotency.Claim | idempotency.Pending | None) -> dict:
        view = await service.book(
            deps, citizen_id=principal.id, matter_code=body.matter_code, slot_id=body.slot_id, claim=claim
        )
        return present.booking_json(view)

    return await idempotent(
        request,
        owner=principal.subject,
        payload=body.model_dump(),
        precheck=lambda owner, key: service.check_seat(
            deps, citizen_id=principal.id, matter_code=body.matter_code, slot_id=body.slot_id, owner=owner, key=key
        ),
        run=run,
    )


@bp.get("/bookings")
@doc(
    tag=TAG,
    summary="我的预约（每条含 checkin_id，签到前为 null）",
    query=ListQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput],
)
@citizen_required(loa=2)
async def my_bookings(request: Request) -> HTTPResponse:
    """The caller's bookings, latest slot first."""
    query = parse_query(request, ListQuery)
    page = await service.list_bookings(
        _deps(request),
        citizen_id=request.ctx.principal.id,
        status=query.status.value if query.status else None,
        page=query.page,
        page_size=query.page_size,
    )
    return json_response(present.booking_page_json(page), headers=PRIVATE)


@bp.get("/bookings/<booking_id:str>")
@doc(
    tag=TAG,
    summary="预约详情（含预约码、提醒状态、签到时段；已签到的含 checkin_id，用于评价本次窗口服务）",
    description="checkin_id：窗口签到后生成的到场记录编号，签到前为 null；"
    "评价窗口服务时作为 subject_type=visit 的 subject_id。checkin_window：可签到的起止时间。",
    secured="bearer",
    errors=[*AUTH_ERRORS, be.BookingNotFound],
)
@citizen_required(loa=2)
async def booking_detail(request: Request, booking_id: str) -> HTTPResponse:
    """One of the caller's bookings."""
    detail = await service.get_booking(_deps(request), citizen_id=request.ctx.principal.id, booking_id=booking_id)
    return json_response(present.booking_detail_json(detail), headers=PRIVATE)


@bp.post("/bookings/<booking_id:str>/cancel")
@doc(
    tag=TAG,
    summary="取消预约（截止时间前；重复取消返回同一结果）",
    secured="bearer",
    errors=[*AUTH_ERRORS, be.BookingNotFound, be.BookingNotActive, be.CutoffPassed],
)
@citizen_required(loa=2)
async def cancel(request: Request, booking_id: str) -> HTTPResponse:
    """Cancel: the seat returns and the ticket is revoked."""
    view = await service.cancel(_deps(request), citizen_id=request.ctx.principal.id, booking_id=booking_id)
    return json_response(present.booking_json(view))


@bp.post("/bookings/<booking_id:str>/reschedule")
@doc(
    tag=TAG,
    summary="改约（先占新号再释放旧号，原子完成；旧预约码作废）",
    body=RescheduleBody,
    secured="bearer",
    errors=[
        *AUTH_ERRORS,
        InvalidInput,
        be.BookingNotFound,
        be.BookingNotActive,
        be.CutoffPassed,
        *SLOT_ERRORS,
        be.BookingExists,
    ],
)
@citizen_required(loa=2)
async def reschedule(request: Request, booking_id: str) -> HTTPResponse:
    """Move the booking to another slot."""
    body = parse_body(request, RescheduleBody)
    view = await service.reschedule(
        _deps(request), citizen_id=request.ctx.principal.id, booking_id=booking_id, slot_id=body.slot_id
    )
    return json_response(present.booking_json(view))


@bp.get("/bookings/<booking_id:str>/<image:str>")
@doc(
    tag=TAG,
    summary="预约码图片：ticket.png 或 ticket.svg（内容为签名预约码，窗口扫码签到）",
    query=ImageOptions,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.BookingNotFound, be.BookingNotActive],
)
@citizen_required(loa=2)
async def ticket_image(request: Request, booking_id: str, image: str) -> HTTPResponse:
    """The ticket as a QR image (`ticket.png` or `ticket.svg`)."""
    fmt = {"ticket.png": "png", "ticket.svg": "svg"}.get(image)
    if fmt is None:
        raise be.BookingNotFound(details={"path": image[:32]})
    opts = parse_query(request, ImageOptions)
    ticket = await service.get_ticket(_deps(request), citizen_id=request.ctx.principal.id, booking_id=booking_id)
    # Memoised like the matters' codes: a ticket's text stays the same until the booking changes.
    return HTTPResponse(cached_render(fmt, ticket.text, opts), content_type=MEDIA_TYPES[fmt], headers=PRIVATE)
