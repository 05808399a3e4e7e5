"""Citizen booking in the browser: days, times with seats left, confirm, the ticket, my bookings.

Every write goes through the same service functions as /api/v1/bookings (miniprogram_api/bookings.py):
`book` behind `check_seat` and the idempotency key of the form, `cancel`, `reschedule`; the pages only
read a form, call one service, and render or 303 to the ticket. Dates and times are shown in Asia/Shanghai.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from typing import Any
from urllib.parse import quote

from icalendar import Alarm, Calendar, Event
from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app import clock, idempotency
from app.booking import calendar as booking_calendar
from app.booking import errors as be
from app.booking import present as booking_present
from app.booking import service as booking
from app.booking.types import STATUS_NAMES, BookingStatus, BookingView, SlotList, SlotView
from app.errors import DomainError, InvalidInput, MatterNotFound
from app.guide import service as guides
from app.http import doc, idempotent_answer, parse_query
from app.web.kit import HTML, citizen_page, field_errors, form_data, page, read_form, see_other
from qr.render import MEDIA_TYPES, ImageOptions, cached_render

bp = Blueprint("web_bookings", url_prefix="")
TAG = "h5 页面"
WEEKDAYS = booking_calendar.WEEKDAY_NAMES
PAGE_SIZE = 10
NO_STORE = {"Cache-Control": "private, no-store"}
# What a booking or a move to another slot can be refused with: shown next to the chosen time.
SLOT_ERRORS = (be.SlotNotFound, be.SlotNotForMatter, be.SlotInPast, be.SlotOutsideWindow, be.SlotFull)
BOOK_ERRORS = (
    *SLOT_ERRORS,
    be.BookingNotOffered,
    be.BookingExists,
    be.BookingLimitReached,
    be.BookingRestricted,
    be.BookingBusy,
    *idempotency.ERRORS,
)
CHANGE_ERRORS = (*SLOT_ERRORS, be.BookingNotActive, be.CutoffPassed, be.BookingExists)
# The idempotency refusals speak of a request header: a form says it in its own words.
FORM_KEY_MESSAGES = {
    "IDEMPOTENCY_IN_FLIGHT": "您的预约正在提交，请稍候到“我的预约”查看，不要重复提交",
    "IDEMPOTENCY_KEY_REUSED": "此表单已提交过另一个时段，请重新选择时段后再确认",
    "IDEMPOTENCY_KEY_REQUIRED": "表单已失效，请重新选择时段后再确认",
    "IDEMPOTENCY_KEY_INVALID": "表单已失效，请重新选择时段后再确认",
}


class DayQuery(BaseModel):
    """Which day's times to show."""

    model_config = ConfigDict(extra="ignore")
    day: dt.date | None = Field(default=None, description="日期 YYYY-MM-DD：列出该日各时段及剩余号数")


class ChoiceQuery(BaseModel):
    """The chosen time."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    slot: str = Field(default="", max_length=80, description="所选时段编号（时段列表中的链接带出）")


class BookForm(BaseModel):
    """The confirm form: the chosen time and the form's idempotency key."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    slot: str = Field(min_length=1, max_length=80)
    idem: str = Field(min_length=1, max_length=128)


class RescheduleForm(BaseModel):
    """The new time."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    slot: str = Field(min_length=1, max_length=80)


class ListPageQuery(BaseModel):
    """Which page of my bookings."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(default=1, ge=1, le=10_000)


class TicketImageQuery(ImageOptions):
    """The ticket image's drawing options, and whether to save it as a file."""

    download: int = Field(default=0, ge=0, le=1, description="1：作为附件下载（保存图片）")


class DoneQuery(BaseModel):
    """What the ticket page was reached after (a 303 from a form)."""

    model_config = ConfigDict(extra="ignore")
    done: str = Field(default="", max_length=16)


# -- presentation ------------------------------------------------------------------------------------


def _hhmm(at: dt.datetime) -> str:
    return f"{at.astimezone(clock.SHANGHAI):%H:%M}"


def _day_label(day: dt.date) -> str:
    """2026-10-08 as "10月8日（周四）"."""
    return f"{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


def _minute(at: dt.datetime) -> str:
    local = at.astimezone(clock.SHANGHAI)
    return f"{_day_label(local.date())} {local:%H:%M}"


def _slot_ctx(slot: SlotView) -> dict[str, Any]:
    if slot.bookable:
        reason = ""
    elif slot.available == 0:
        reason = "已约满"
    else:
        reason = "已停止预约"  # inside the hall's cutoff before the slot starts
    return {
        "id": slot.slot_id,
        "time": f"{_hhmm(slot.starts_at)}–{_hhmm(slot.ends_at)}",
        "available": slot.available,
        "bookable": slot.bookable,
        "reason": reason,
    }


def _days_ctx(slots: SlotList) -> list[dict[str, Any]]:
    """The window's days with their times; a day is offered only when one of its times has a seat."""
    days = []
    for day, items in itertools.groupby(slots.items, key=lambda s: s.day):
        times = [_slot_ctx(s) for s in items]
        days.append(
            {
                "date": day.isoformat(),
                "label": _day_label(day),
                "md": f"{day.month}月{day.day}日",
                "weekday": WEEKDAYS[day.weekday()],
                "times": times,
                "seats": sum(t["available"] for t in times if t["bookable"]),
                "open": any(t["bookable"] for t in times),
            }
        )
    return days


def _booking_ctx(view: BookingView) -> dict[str, Any]:
    """What the ticket page and the list show of a booking (times in Asia/Shanghai)."""
    return {
        "id": str(view.id),
        "status": str(view.status),
        "status_name": STATUS_NAMES[view.status],
        "active": view.status is BookingStatus.booked,
        "matter_code": view.matter_code,
        "matter_name": view.matter_name,
        "hall": view.hall,
        "counter_hint": view.counter_hint,
        "date": view.day.isoformat(),
        "day_label": _day_label(view.day),
        "time": f"{_hhmm(view.starts_at)}–{_hhmm(view.ends_at)}",
        "checkin_from": _minute(view.checkin_opens_at),
        "checkin_until": _minute(view.checkin_closes_at),
        "cancel_until": _minute(view.cancel_until),
        "can_change": view.changeable,
        "queue_no": view.queue_no,
        "counter": view.counter,
        "checked_in_at": _minute(view.checked_in_at) if view.checked_in_at else None,
        "cancelled_at": _minute(view.cancelled_at) if view.cancelled_at else None,
        "checkin_id": str(view.checkin_id) if view.checkin_id else None,
        "ticket": view.ticket,
    }


def _form_errors(exc: DomainError) -> dict[str, str]:
    """A refusal as the message next to the chosen time."""
    message = FORM_KEY_MESSAGES.get(exc.code)
    return {"slot": message} if message else field_errors(exc, "slot")


# -- choosing a day and a time -----------------------------------------------------------------------


async def _slots(request: Request, matter_code: str, day: dt.date | None = None) -> SlotList | None:
    """The matter's slots (one day's, or the whole window's); None when it is not booked in advance."""
    with contextlib.suppress(be.BookingNotOffered):
        return await booking.list_slots(
            request.app.ctx.booking, matter_code=matter_code, hall=None, date_from=day, date_to=day
        )
    return None


def _day_of(slot_id: str) -> dt.date | None:
    parsed = booking_calendar.parse_slot_id(slot_id)
    return parsed[2] if parsed else None


@bp.route("/m/<code:str>/book", methods=["GET", "HEAD"])
@doc(
    tag=TAG,
    summary="预约办理：可预约日期（带星期，只列有号的日期）；?day= 列出该日各时段剩余号数，约满、截止的时段标明原因",
    query=DayQuery,
    errors=[MatterNotFound, InvalidInput],
)
async def book_page(request: Request, code: str) -> HTTPResponse:
    """Public: the bookable days, then one day's times; choosing a time opens the confirm page."""
    q = parse_query(request, DayQuery)
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    slots = await _slots(request, guide["code"])
    days = _days_ctx(slots) if slots else []
    chosen = next((d for d in days if d["date"] == (q.day.isoformat() if q.day else "")), None)
    here = f"/m/{guide['code']}/book" + (f"?day={q.day.isoformat()}" if q.day else "")
    html = request.app.ctx.pages.render(
        "book.html", g=guide, slots=slots, days=days, chosen=chosen, day=q.day.isoformat() if q.day else None,
        elder=request.cookies.get("zd_elder") == "1", here=here,
    )  # fmt: skip
    # Seats move: cached briefly; the elder-mode cookie changes the page.
    return HTTPResponse(html, content_type=HTML, headers={"Cache-Control": "public, max-age=10", "Vary": "Cookie"})


async def _confirm_page(
    request: Request, code: str, slot_id: str, *, status: int = 200, errors: dict[str, str] | None = None
) -> HTTPResponse:
    """The confirm form: the chosen day's times with the choice checked, and what went wrong next to it."""
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    day = _day_of(slot_id)
    slots = await _slots(request, guide["code"], day) if day else None
    days = _days_ctx(slots) if slots else []
    times = days[0]["times"] if days else []
    errors = dict(errors or {})
    if not errors.get("slot"):
        picked = next((t for t in times if t["id"] == slot_id), None)
        if picked is None:
            errors["slot"] = "该时段不在可预约范围内，请重新选择日期和时段"
        elif not picked["bookable"]:
            errors["slot"] = f"该时段{picked['reason']}，请选择其他时段"
    return page(
        request, "book_confirm.html", status=status, g=guide, slot_id=slot_id, day=days[0] if days else None,
        times=times, errors=errors, offered=slots is not None or day is None,
    )  # fmt: skip


@bp.get("/m/<code:str>/book/confirm")
@doc(
    tag=TAG,
    summary="预约办理：确认所选时段（需登录并验证手机号；未登录先登录再回到此页）",
    query=ChoiceQuery,
    errors=[MatterNotFound, InvalidInput],
)
@citizen_page(loa=2)
async def confirm_page(request: Request, code: str) -> HTTPResponse:
    """The chosen time with the matter, hall and address, and the button that books it."""
    q = parse_query(request, ChoiceQuery)
    return await _confirm_page(request, code, q.slot)


@bp.post("/m/<code:str>/book")
@doc(
    tag=TAG,
    summary="预约办理：提交预约（表单隐藏字段 idem 为幂等键：连点两次只约一个号，都跳转到预约凭证）",
    description="与 POST /api/v1/bookings 同一服务；失败时在所选时段旁说明原因并保留所选时段。",
    errors=[MatterNotFound, InvalidInput, *BOOK_ERRORS],
)
@citizen_page(loa=2)
async def book(request: Request, code: str) -> HTTPResponse:
    """Book the chosen time once per form key, then show its ticket."""
    form, errors, raw = read_form(request, BookForm)
    if form is None:
        errors = {"slot": "请选择预约时段"} if "slot" in errors else {"slot": "表单已失效，请重新选择时段后再确认"}
        return await _confirm_page(request, code, str(raw.get("slot") or "")[:80], status=422, errors=errors)
    deps = request.app.ctx.booking
    principal = request.ctx.principal
    matter_code = code.strip().upper()

    async def run(claim: idempotency.Claim | idempotency.Pending | None) -> dict[str, Any]:
        view = await booking.book(
            deps, citizen_id=principal.id, matter_code=matter_code, slot_id=form.slot, claim=claim
        )
        return booking_present.booking_json(view)

    try:
        answer = await idempotent_answer(
            request,
            key=form.idem,
            owner=principal.subject,
            payload={"matter_code": matter_code, "slot_id": form.slot},
            precheck=lambda owner, key: booking.check_seat(
                deps, citizen_id=principal.id, matter_code=matter_code, slot_id=form.slot, owner=owner, key=key
            ),
            run=run,
        )
    except BOOK_ERRORS as exc:
        return await _confirm_page(request, code, form.slot, status=exc.status, errors=_form_errors(exc))
    # A first tap and a repeated one (its stored answer) land on the same ticket.
    return see_other(request, f"/m/me/bookings/{answer.body['id']}?done=booked")


# -- my bookings and the ticket ----------------------------------------------------------------------


@bp.get("/m/me/bookings")
@doc(tag=TAG, summary="我的预约（最新时段在前，分页）", query=ListPageQuery, errors=[InvalidInput])
@citizen_page(loa=2)
async def my_bookings(request: Request) -> HTTPResponse:
    """The citizen's bookings with their status, each leading to its ticket (and its rating once checked in)."""
    q = parse_query(request, ListPageQuery)
    result = await booking.list_bookings(
        request.app.ctx.booking,
        citizen_id=request.ctx.principal.id,
        status=None,
        page=q.page,
        page_size=PAGE_SIZE,
        tickets=False,  # the list links to each ticket's page; it shows none
    )
    pages = max(1, -(-result.total // PAGE_SIZE))
    return page(
        request, "my_bookings.html", items=[_booking_ctx(v) for v in result.items], total=result.total,
        page_no=q.page, pages=pages,
    )  # fmt: skip


async def _materials(request: Request, matter_code: str) -> list[dict[str, Any]]:
    """The matter's materials checklist from its current guide (none when the matter is gone)."""
    with contextlib.suppress(MatterNotFound):
        return (await guides.guide(request.app.ctx.guide, code=matter_code)).data["materials"]
    return []


@bp.get("/m/me/bookings/<booking_id:str>")
@doc(
    tag=TAG,
    summary="预约凭证：大号预约码、事项、大厅和地址、时间、窗口、签到规则、材料清单；可保存图片、加入日历、改约、取消",
    query=DoneQuery,
    errors=[be.BookingNotFound],
)
@citizen_page(loa=2)
async def ticket_page(request: Request, booking_id: str) -> HTTPResponse:
    """One of the citizen's bookings as its ticket."""
    q = parse_query(request, DoneQuery)
    detail = await booking.get_booking(
        request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id
    )
    view = detail.booking
    return page(
        request, "ticket.html", b=_booking_ctx(view), materials=await _materials(request, view.matter_code),
        done=q.done, reminder=_minute(detail.reminder.send_after) if detail.reminder else None,
    )  # fmt: skip


@bp.get("/m/me/bookings/<booking_id:str>/<name:ext=png|svg>")
@doc(
    tag=TAG,
    summary="预约码图片 ticket.png / ticket.svg（本人登录可见；download=1 作为附件保存）",
    query=TicketImageQuery,
    errors=[InvalidInput, be.BookingNotFound, be.BookingNotActive],
)
@citizen_page(loa=2)
async def ticket_image(request: Request, booking_id: str, name: str, ext: str) -> HTTPResponse:
    """The ticket's QR code, as the API serves it, for an <img> and for saving."""
    if name != "ticket":
        raise be.BookingNotFound(details={"path": name[:32]})
    opts = parse_query(request, TicketImageQuery)
    ticket = await booking.get_ticket(
        request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id
    )
    headers = dict(NO_STORE)
    if opts.download:
        filename = f"ticket-{str(ticket.booking_id)[:8]}.{ext}"
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote('预约码-' + filename)}"
        )
    image = ImageOptions(size=opts.size, margin=opts.margin, ec=opts.ec)
    return HTTPResponse(cached_render(ext, ticket.text, image), content_type=MEDIA_TYPES[ext], headers=headers)


def _ics_text(view: BookingView, materials: list[dict[str, Any]], page_url: str, host: str) -> bytes:
    """The booking as an RFC 5545 calendar with one event (times in UTC, with a reminder an hour before)."""
    hall = view.hall
    lines = [f"事项：{view.matter_name}"]
    if view.counter_hint:
        lines.append(f"窗口：{view.counter_hint}")
    lines.append(
        f"签到：{_minute(view.checkin_opens_at)} 至 {_minute(view.checkin_closes_at)} 之间"
        "到大厅出示预约码签到取号，逾时记为爽约"
    )
    if materials:
        lines.append("携带材料：" + "；".join(f"{m['name']}（{m['form_name']} {m['copies']} 份）" for m in materials))
    lines.append(f"预约凭证：{page_url}")
    cal = Calendar()
    cal.add("prodid", "-//张家界市政务服务中心//预约办理//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"booking-{view.id}@{host}")
    event.add("dtstamp", clock.now().astimezone(dt.UTC))
    event.add("dtstart", view.starts_at.astimezone(dt.UTC))
    event.add("dtend", view.ends_at.astimezone(dt.UTC))
    event.add("sequence", view.version)  # a reschedule makes a newer version of the same event
    event.add("summary", f"预约办理：{view.matter_name}")
    event.add("location", f"{hall.name} {hall.address}".strip())
    event.add("description", "\n".join(lines))
    event.add("url", page_url)
    event.add("status", "CANCELLED" if view.status is BookingStatus.cancelled else "CONFIRMED")
    if view.status is BookingStatus.booked:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"一小时后到{hall.name}办理：{view.matter_name}")
        alarm.add("trigger", dt.timedelta(hours=-1))
        event.add_component(alarm)
    cal.add_component(event)
    return cal.to_ical()


# Not /m/me/bookings/<id>.ics: the API docs name a typed path parameter without its suffix, and that
# route would take the ticket page's place there.
@bp.get("/m/me/bookings/<booking_id:str>/calendar.ics")
@doc(
    tag=TAG,
    summary="预约加入日历：.ics 文件（RFC 5545，含时间、地点、材料和提前一小时提醒）",
    errors=[be.BookingNotFound],
)
@citizen_page(loa=2)
async def ticket_calendar(request: Request, booking_id: str) -> HTTPResponse:
    """The booking as a calendar entry to save."""
    view = (
        await booking.get_booking(request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id)
    ).booking
    base_url = request.app.ctx.settings.base_url
    host = base_url.split("://", 1)[-1].split("/", 1)[0] or "localhost"
    body = _ics_text(view, await _materials(request, view.matter_code), f"{base_url}/m/me/bookings/{view.id}", host)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="booking-{view.day:%Y%m%d}.ics"'}
    return HTTPResponse(body, content_type="text/calendar; charset=utf-8", headers=headers)


# -- cancel and reschedule ---------------------------------------------------------------------------


async def _own(request: Request, booking_id: str) -> BookingView:
    detail = await booking.get_booking(
        request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id
    )
    return detail.booking


@bp.get("/m/me/bookings/<booking_id:str>/cancel")
@doc(tag=TAG, summary="取消预约：确认页（说明取消后号源释放、预约码作废）", errors=[be.BookingNotFound])
@citizen_page(loa=2)
async def cancel_page(request: Request, booking_id: str) -> HTTPResponse:
    """Ask before cancelling."""
    view = await _own(request, booking_id)
    return page(request, "book_cancel.html", b=_booking_ctx(view), errors={})


@bp.post("/m/me/bookings/<booking_id:str>/cancel")
@doc(
    tag=TAG,
    summary="取消预约（时段开始前的截止时间之前；重复提交结果相同）",
    errors=[be.BookingNotFound, be.BookingNotActive, be.CutoffPassed],
)
@citizen_page(loa=2)
async def cancel(request: Request, booking_id: str) -> HTTPResponse:
    """Cancel through the API's service, then show the ticket with its new status."""
    form_data(request)  # the CSRF check: the form carries nothing else
    try:
        view = await booking.cancel(request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id)
    except (be.BookingNotActive, be.CutoffPassed) as exc:
        view = await _own(request, booking_id)
        return page(
            request, "book_cancel.html", status=exc.status, b=_booking_ctx(view), errors={"__all__": exc.message}
        )
    return see_other(request, f"/m/me/bookings/{view.id}?done=cancelled")


async def _reschedule_page(
    request: Request, view: BookingView, day: dt.date | None, *, chosen: str = "", status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTTPResponse:  # fmt: skip
    """The days of the booking's matter, and one day's times to move to (the choice kept after a refusal)."""
    slots = await _slots(request, view.matter_code)
    days = _days_ctx(slots) if slots else []
    current = next((d for d in days if d["date"] == (day.isoformat() if day else "")), None)
    return page(
        request, "book_reschedule.html", status=status, b=_booking_ctx(view), current_slot=view.slot_id, days=days,
        day=current, chosen=chosen, errors=errors or {},
    )  # fmt: skip


@bp.get("/m/me/bookings/<booking_id:str>/reschedule")
@doc(tag=TAG, summary="改约：选择同一事项的其他日期和时段", query=DayQuery, errors=[be.BookingNotFound, InvalidInput])
@citizen_page(loa=2)
async def reschedule_page(request: Request, booking_id: str) -> HTTPResponse:
    """Pick another day, then another time."""
    q = parse_query(request, DayQuery)
    view = await _own(request, booking_id)
    return await _reschedule_page(request, view, q.day)


@bp.post("/m/me/bookings/<booking_id:str>/reschedule")
@doc(
    tag=TAG,
    summary="改约：提交新时段（先占新号再释放旧号；旧预约码作废）",
    errors=[be.BookingNotFound, InvalidInput, *CHANGE_ERRORS],
)
@citizen_page(loa=2)
async def reschedule(request: Request, booking_id: str) -> HTTPResponse:
    """Move the booking through the API's service, then show the new ticket."""
    form, _, raw = read_form(request, RescheduleForm)
    if form is None:
        view = await _own(request, booking_id)
        day = _day_of(str(raw.get("slot") or "")) or view.day
        return await _reschedule_page(request, view, day, status=422, errors={"slot": "请选择新的预约时段"})
    try:
        view = await booking.reschedule(
            request.app.ctx.booking, citizen_id=request.ctx.principal.id, booking_id=booking_id, slot_id=form.slot
        )
    except CHANGE_ERRORS as exc:
        view = await _own(request, booking_id)
        day = _day_of(form.slot) or view.day
        return await _reschedule_page(
            request, view, day, chosen=form.slot, status=exc.status, errors=field_errors(exc, "slot")
        )
    return see_other(request, f"/m/me/bookings/{view.id}?done=moved")
