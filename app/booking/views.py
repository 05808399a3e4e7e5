"""Front-desk API (/api/v1/desk, role clerk) and hall calendar administration (/api/v1/admin)."""

from __future__ import annotations

import datetime as dt
import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.booking import admin, desk, present, queue
from app.booking import errors as be
from app.booking.calendar import ScheduleConfig
from app.booking.deps import BookingDeps
from app.errors import InvalidInput
from app.http import JSON_TYPE, doc, finish_even_if_disconnected, json_response, parse_body, parse_query
from app.matters.schemas import Section
from app.notify import present as notify_present
from app.notify import service as notify
from app.notify.errors import NotificationNotFound, NotificationNotRetryable
from app.notify.types import NotificationStatus
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required, staff_required

bp = Blueprint("booking_staff", url_prefix="/api/v1")
DESK_TAG = "desk 窗口签到"
ADMIN_TAG = "admin 大厅预约日历"
AUTH_ERRORS = STAFF_AUTH_ERRORS
NONCE = Field(
    min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$", description="每次扫码一个随机值；重复提交返回同一结果"
)
COUNTER = Field(default=None, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9\-]+$", description="窗口编号")
HALL = Field(
    default=None, max_length=32, pattern=r"^[a-z0-9][a-z0-9_]{1,31}$", description="大厅编码（仅管理员需要指定）"
)
clerk = staff_required("clerk", "admin")


class CheckInBody(BaseModel):
    """A scan: what the scanner typed, the scan's nonce and the desk's counter."""

    model_config = ConfigDict(extra="forbid")
    ALLOW_NUL: ClassVar[bool] = True  # the ticket is never stored: any text a scanner sends gets a verdict
    ticket: str = Field(max_length=65536, description="扫码枪读到的预约码文本（任何内容都会得到结果，不会报 5xx）")
    nonce: str = NONCE
    counter: str | None = COUNTER


class WalkInBody(BaseModel):
    """A queue number without a booking."""

    model_config = ConfigDict(extra="forbid")
    section: Section
    counter: str | None = COUNTER
    hall: str | None = HALL


class HallQuery(BaseModel):
    """The hall (administrators only) and day."""

    model_config = ConfigDict(extra="ignore")
    hall: str | None = HALL
    date: dt.date | None = None


class RevocationQuery(BaseModel):
    """The hall (administrators only) and the time of the desk's last download."""

    model_config = ConfigDict(extra="ignore")
    hall: str | None = HALL
    since: dt.datetime | None = Field(default=None, description="只返回此时间之后作废的预约码（ISO 8601）")


class ClosureBody(BaseModel):
    """A closure date and its reason."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    date: dt.date
    reason: str = Field(default="", max_length=200)


class CounterItem(BaseModel):
    """One counter."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9\-]+$")
    section: Section
    name: str = Field(default="", max_length=100)
    active: bool = True


class CountersBody(BaseModel):
    """The full list of a hall's counters."""

    model_config = ConfigDict(extra="forbid")
    counters: list[CounterItem] = Field(max_length=500)


class NotificationQuery(BaseModel):
    """Outbox filters."""

    model_config = ConfigDict(extra="ignore")
    status: NotificationStatus | None = None
    kind: str | None = Field(default=None, max_length=40)
    subject_id: str | None = Field(default=None, max_length=64)
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


def _deps(request: Request) -> BookingDeps:
    return request.app.ctx.booking


# -- desk --------------------------------------------------------------------------------------


@bp.post("/desk/checkins")
@doc(
    tag=DESK_TAG,
    summary="扫码签到：checked_in（含排队号、脱敏预约人和材料清单）或拒绝原因",
    description="result 取值：checked_in、invalid、revoked、cancelled、wrong_hall、too_early、too_late、"
    "already_checked_in。扫码结果总是 200；同一 nonce 重复提交返回首次的结果。",
    body=CheckInBody,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.CounterUnknown, desk.NonceReused],
)
@clerk
async def check_in(request: Request) -> HTTPResponse:
    """Verify a ticket and give a queue number."""
    body = parse_body(request, CheckInBody)
    answer = await finish_even_if_disconnected(
        desk.check_in(
            _deps(request), principal=request.ctx.principal, ticket=body.ticket, nonce=body.nonce, counter=body.counter
        )
    )
    return HTTPResponse(present.scan_text(answer), content_type=JSON_TYPE)


@bp.post("/desk/checkins/<checkin_id:str>/undo")
@doc(
    tag=DESK_TAG,
    summary="撤销签到（几分钟内）",
    secured="bearer",
    errors=[*AUTH_ERRORS, be.CheckInNotFound, be.CheckInUndone, be.UndoExpired, be.BookingExists],
)
@clerk
async def undo(request: Request, checkin_id: str) -> HTTPResponse:
    """Take a check-in back."""
    undone = await desk.undo(_deps(request), principal=request.ctx.principal, checkin_id=checkin_id)
    return json_response(present.undone_json(undone))


@bp.get("/desk/checkins")
@doc(tag=DESK_TAG, summary="本大厅当天签到与取号记录", query=HallQuery, secured="bearer", errors=[*AUTH_ERRORS])
@clerk
async def checkins(request: Request) -> HTTPResponse:
    """Recent queue numbers of the hall."""
    query = parse_query(request, HallQuery)
    rows = await desk.list_checkins(principal=request.ctx.principal, hall=query.hall, day=query.date)
    return json_response(present.checkins_json(rows))


@bp.post("/desk/tickets")
@doc(
    tag=DESK_TAG,
    summary="现场取号（无预约）",
    body=WalkInBody,
    status=201,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.CounterUnknown, be.HallNotFound],
)
@clerk
async def walk_in(request: Request) -> HTTPResponse:
    """A queue number for a walk-in."""
    body = parse_body(request, WalkInBody)
    result = await desk.walk_in(
        _deps(request),
        principal=request.ctx.principal,
        section=body.section.value,
        counter=body.counter,
        hall=body.hall,
    )
    return json_response(present.walk_in_json(result), status=201)


@bp.get("/desk/revocations")
@doc(
    tag=DESK_TAG,
    summary="作废预约码清单（离线签到设备同步用；公钥见 /.well-known/jwks.json）",
    query=RevocationQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput],
)
@clerk
async def revocations(request: Request) -> HTTPResponse:
    """Revoked tickets of the hall whose slots are not over."""
    query = parse_query(request, RevocationQuery)
    since = query.since
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since 须带时区，如 2026-11-26T09:00:00+08:00", code="SINCE_NEEDS_OFFSET")
    if since is not None and not 2000 <= since.year <= 2100:
        raise InvalidInput("since 超出合理的时间范围", code="SINCE_OUT_OF_RANGE")
    revoked = await desk.revocations(principal=request.ctx.principal, hall=query.hall, since=since)
    return json_response(present.revocations_json(revoked), headers={"Cache-Control": "private, no-store"})


class CounterHallQuery(BaseModel):
    """The hall (administrators only)."""

    model_config = ConfigDict(extra="ignore")
    hall: str | None = HALL


COUNTER_PATH = "<counter:str>"


def _valid_counter(counter: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9\-]{1,16}", counter):
        raise InvalidInput("窗口编号只能是 1-16 位字母、数字或连字符", code="COUNTER_INVALID")


@bp.post(f"/desk/counters/{COUNTER_PATH}/call-next")
@doc(
    tag=DESK_TAG,
    summary="叫号：本窗口呼叫下一位（预约号按时段顺序优先，其后现场号按取号顺序）",
    description="返回 called（可能为 null：无人等候）。上一位本窗口呼叫的号码记为已办结。",
    query=CounterHallQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, be.CounterUnknown, be.HallNotFound],
)
@clerk
async def call_next(request: Request, counter: str) -> HTTPResponse:
    """Call the next waiting number at this counter."""
    query = parse_query(request, CounterHallQuery)
    _valid_counter(counter)
    entry = await queue.call_next(_deps(request), principal=request.ctx.principal, counter=counter, hall=query.hall)
    return json_response({"called": present.queue_entry_json(entry) if entry else None})


@bp.post(f"/desk/counters/{COUNTER_PATH}/recall")
@doc(
    tag=DESK_TAG,
    summary="重呼：再次播报本窗口当前号码",
    query=CounterHallQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, be.CounterUnknown, be.NothingCalled],
)
@clerk
async def recall(request: Request, counter: str) -> HTTPResponse:
    """Announce the current number again."""
    query = parse_query(request, CounterHallQuery)
    _valid_counter(counter)
    entry = await queue.recall(_deps(request), principal=request.ctx.principal, counter=counter, hall=query.hall)
    return json_response({"called": present.queue_entry_json(entry)})


@bp.post(f"/desk/counters/{COUNTER_PATH}/skip")
@doc(
    tag=DESK_TAG,
    summary="过号：本窗口当前号码未到（可重新排队）",
    query=CounterHallQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, be.CounterUnknown, be.NothingCalled],
)
@clerk
async def skip(request: Request, counter: str) -> HTTPResponse:
    """Skip the current number."""
    query = parse_query(request, CounterHallQuery)
    _valid_counter(counter)
    entry = await queue.finish(
        _deps(request), principal=request.ctx.principal, counter=counter, state="skipped", hall=query.hall
    )
    return json_response({"skipped": present.queue_entry_json(entry)})


@bp.post(f"/desk/counters/{COUNTER_PATH}/done")
@doc(
    tag=DESK_TAG,
    summary="办结：本窗口当前号码已办理完毕",
    query=CounterHallQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, be.CounterUnknown, be.NothingCalled],
)
@clerk
async def done(request: Request, counter: str) -> HTTPResponse:
    """Mark the current number done."""
    query = parse_query(request, CounterHallQuery)
    _valid_counter(counter)
    entry = await queue.finish(
        _deps(request), principal=request.ctx.principal, counter=counter, state="done", hall=query.hall
    )
    return json_response({"done": present.queue_entry_json(entry)})


@bp.post("/desk/queue/<checkin_id:str>/requeue")
@doc(
    tag=DESK_TAG,
    summary="过号重新排队（按原顺序）",
    secured="bearer",
    errors=[*AUTH_ERRORS, be.QueueTicketNotFound],
)
@clerk
async def requeue(request: Request, checkin_id: str) -> HTTPResponse:
    """Put a skipped number back in the queue."""
    entry = await queue.requeue(principal=request.ctx.principal, checkin_id=checkin_id)
    return json_response({"requeued": present.queue_entry_json(entry)})


@bp.get("/desk/queue")
@doc(
    tag=DESK_TAG,
    summary="本大厅当天排队：waiting（按叫号顺序）与 called（已叫、过号、办结）",
    query=CounterHallQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS],
)
@clerk
async def queue_list(request: Request) -> HTTPResponse:
    """The hall's queue today."""
    query = parse_query(request, CounterHallQuery)
    hall, entries = await queue.queue_of(principal=request.ctx.principal, hall=query.hall)
    return json_response(
        {
            "hall": hall,
            "waiting": [present.queue_entry_json(e) for e in entries if e.state == "waiting"],
            "called": [present.queue_entry_json(e) for e in entries if e.state != "waiting"],
        },
        headers={"Cache-Control": "private, no-store"},
    )


# -- administration ----------------------------------------------------------------------------


@bp.get("/admin/halls/<hall:str>/schedule")
@doc(tag=ADMIN_TAG, summary="大厅预约日历", secured="bearer", errors=[*AUTH_ERRORS, be.HallNotFound])
@admin_required
async def get_schedule(request: Request, hall: str) -> HTTPResponse:
    """A hall's booking calendar."""
    return json_response(present.schedule_json(await admin.get_schedule(hall=hall)))


@bp.put("/admin/halls/<hall:str>/schedule")
@doc(
    tag=ADMIN_TAG,
    summary="设置大厅预约日历（办公时段、时段长度、各板块号数、预约窗口、截止时间）",
    body=ScheduleConfig,
    secured="bearer",
    errors=[*AUTH_ERRORS, be.HallNotFound, admin.ScheduleInvalid],
)
@admin_required
async def put_schedule(request: Request, hall: str) -> HTTPResponse:
    """Replace a hall's calendar."""
    return json_response(
        present.schedule_json(await admin.put_schedule(_deps(request), hall=hall, config=parse_body(request)))
    )


@bp.get("/admin/halls/<hall:str>/closures")
@doc(tag=ADMIN_TAG, summary="闭厅日期", secured="bearer", errors=[*AUTH_ERRORS, be.HallNotFound])
@admin_required
async def list_closures(request: Request, hall: str) -> HTTPResponse:
    """Closures from today."""
    return json_response(present.closures_json(await admin.list_closures(hall=hall)))


@bp.post("/admin/halls/<hall:str>/closures")
@doc(
    tag=ADMIN_TAG,
    summary="设置临时闭厅",
    body=ClosureBody,
    status=201,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.HallNotFound, admin.ClosureExists],
)
@admin_required
async def add_closure(request: Request, hall: str) -> HTTPResponse:
    """Close a hall on a date."""
    body = parse_body(request, ClosureBody)
    result = await admin.add_closure(_deps(request), hall=hall, day=body.date, reason=body.reason)
    return json_response(present.closure_added_json(result), status=201)


@bp.delete("/admin/halls/<hall:str>/closures/<day:str>")
@doc(
    tag=ADMIN_TAG,
    summary="取消临时闭厅",
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.HallNotFound, admin.ClosureNotFound],
)
@admin_required
async def remove_closure(request: Request, hall: str, day: str) -> HTTPResponse:
    """Reopen a hall on a date."""
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise InvalidInput("日期应为 YYYY-MM-DD", code="DATE_INVALID") from None
    await admin.remove_closure(_deps(request), hall=hall, day=date)
    return json_response({"date": date.isoformat(), "removed": True})


@bp.get("/admin/halls/<hall:str>/counters")
@doc(tag=ADMIN_TAG, summary="大厅窗口", secured="bearer", errors=[*AUTH_ERRORS, be.HallNotFound])
@admin_required
async def get_counters(request: Request, hall: str) -> HTTPResponse:
    """A hall's counters."""
    return json_response(present.counters_json(await admin.get_counters(hall=hall)))


@bp.put("/admin/halls/<hall:str>/counters")
@doc(
    tag=ADMIN_TAG,
    summary="设置大厅窗口（整体替换）",
    body=CountersBody,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, be.HallNotFound],
)
@admin_required
async def put_counters(request: Request, hall: str) -> HTTPResponse:
    """Replace a hall's counters."""
    body = parse_body(request, CountersBody)
    counters = [c.model_dump(mode="json") for c in body.counters]
    result = await admin.put_counters(_deps(request), hall=hall, counters=counters)
    return json_response(present.counters_json(result))


@bp.get("/admin/notifications")
@doc(
    tag="admin 通知发件箱",
    summary="通知发件箱（预约提醒、爽约通知等的发送状态）",
    query=NotificationQuery,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput],
)
@admin_required
async def notifications(request: Request) -> HTTPResponse:
    """A page of the outbox."""
    q = parse_query(request, NotificationQuery)
    body = await notify.list_notifications(
        status=q.status.value if q.status else None,
        kind=q.kind,
        subject_id=q.subject_id,
        page=q.page,
        page_size=q.page_size,
    )
    return json_response(notify_present.notification_page_json(body))


@bp.post("/admin/notifications/<notification_id:str>/retry")
@doc(
    tag="admin 通知发件箱",
    summary="重试发送失败的通知（回到待发送，保留一次性去重键；已发送的不可重试）",
    secured="bearer",
    errors=[*AUTH_ERRORS, NotificationNotFound, NotificationNotRetryable],
)
@admin_required
async def retry_notification(request: Request, notification_id: str) -> HTTPResponse:
    """Re-queue a failed notification."""
    view = await notify.retry_failed(notification_id)
    return json_response(notify_present.notification_json(view))
