"""The front desk: verify a ticket and check its holder in, queue numbers, walk-ins, undo, revocations.

A scan always gets an answer the desk can show (`checked_in` or a typed refusal), never a 5xx
for what a scanner typed. Every scan is logged with its nonce: the same nonce replays the stored
answer and writes nothing new. Of many simultaneous scans of one ticket exactly one wins the
conditional UPDATE of the booking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.booking import tickets
from app.booking.errors import CheckInNotFound, CheckInUndone, CounterUnknown, HallNotFound, UndoExpired
from app.booking.models import (
    Booking,
    BookingStatus,
    CheckIn,
    DeskScan,
    QueueCounter,
    RevokedTicket,
)
from app.booking.service import BookingDeps, calendar_of
from app.errors import Conflict, InvalidInput
from app.jsontext import dumps
from app.matters import guides
from app.matters.models import Hall
from app.matters.schemas import MATERIAL_FORM_NAMES, SECTION_NAMES, MaterialForm, Section
from auth.errors import OutOfScope
from auth.models import Citizen
from auth.pii import PiiDecryptError, mask_name, mask_phone
from auth.tokens import Principal

SECTION_LETTERS = {
    "investment": "A",
    "commercial": "B",
    "real_estate": "C",
    "social_security": "D",
    "tax": "E",
    "public_security": "F",
    "general": "G",
}
MESSAGES = {
    "checked_in": "签到成功，请等候叫号",
    "invalid": "无效的预约码，请核对后重扫",
    "revoked": "该预约码已失效（预约已改约），请出示最新的预约码",
    "cancelled": "该预约已取消",
    "wrong_hall": "该预约不在本大厅办理",
    "too_early": "未到签到时间",
    "too_late": "已超过签到时间",
    "already_checked_in": "该预约已签到",
}


class HallRequired(InvalidInput):
    code, message = "HALL_REQUIRED", "请指定大厅（管理员账号不属于任何大厅）"


def _hall_of(principal: Principal, hall: str | None = None) -> str:
    """The hall a desk action applies to: the clerk's own (admins name one)."""
    if principal.role == "admin":
        if not hall:
            raise HallRequired()
        return hall
    if hall and hall != principal.hall:
        raise OutOfScope(details={"hall": hall})
    if not principal.hall:
        raise OutOfScope(details={"hall": None})
    return principal.hall


async def _check_counter(deps: BookingDeps, hall: str, counter: str | None) -> None:
    """When a hall lists its counters, a desk must name one of them."""
    if counter is None:
        return
    codes = (await calendar_of(deps, hall)).counters
    if codes and counter not in codes:
        raise CounterUnknown(details={"counter": counter, "counters": sorted(codes)})


async def next_queue_no(hall: str, section: str, day: dt.date) -> str:
    """The next queue number of a hall section today, e.g. `D007` (call inside a transaction).

    One `UPDATE … RETURNING` (PostgreSQL and SQLite ≥ 3.35 alike): the row stays locked until our
    transaction ends, so the number is ours alone, and the lock costs a single statement.
    """
    conn = QueueCounter._meta.db
    p = ["$1", "$2", "$3"] if conn.capabilities.dialect == "postgres" else ["?", "?", "?"]
    sql = (
        f"UPDATE queue_counter SET issued = issued + 1 "  # noqa: S608 - placeholders only, no input in the text
        f"WHERE hall_code = {p[0]} AND section = {p[1]} AND day = {p[2]} RETURNING issued"
    )
    rows = await conn.execute_query_dict(sql, [hall, section, day])
    if not rows:  # the day's first number in this section
        await QueueCounter.bulk_create(
            [QueueCounter(hall_code=hall, section=section, day=day, issued=0)], ignore_conflicts=True
        )
        rows = await conn.execute_query_dict(sql, [hall, section, day])
    return f"{SECTION_LETTERS.get(section, 'Z')}{rows[0]['issued']:03d}"


def _refusal(result: str, message: str | None = None, **details: Any) -> dict[str, Any]:
    return {"result": result, "ok": False, "message": message or MESSAGES[result], "details": details}


def _citizen_label(deps: BookingDeps, citizen: Citizen | None) -> dict[str, str | None]:
    """Masked name and phone for the desk (never the full values)."""
    if citizen is None:
        return {"name": None, "phone": None}
    out: dict[str, str | None] = {"name": None, "phone": None}
    for field, masker in (("name", mask_name), ("phone", mask_phone)):
        token = getattr(citizen, f"{field}_enc")
        if token:
            try:
                out[field] = masker(deps.cipher.decrypt(token, aad=f"citizen:{citizen.id}:{field}"))
            except PiiDecryptError:
                out[field] = None
    return out


async def _booking_view(deps: BookingDeps, booking: Booking) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _, _, guide = await guides.guide_document(deps.cache, booking.matter_code, base_url=deps.settings.base_url)
    citizen = await Citizen.get_or_none(id=booking.citizen_id)
    view = {
        "id": str(booking.id),
        "matter": {"code": booking.matter_code, "name": guide["name"]},
        "hall": booking.hall_code,
        "section": booking.section,
        "section_name": SECTION_NAMES[Section(booking.section)],
        "date": booking.day.isoformat(),
        "starts_at": clock.iso(booking.starts_at),
        "ends_at": clock.iso(booking.ends_at),
        "citizen": _citizen_label(deps, citizen),
    }
    materials = [
        {
            "name": m["name"],
            "form": m["form"],
            "form_name": MATERIAL_FORM_NAMES[MaterialForm(m["form"])],
            "copies": m["copies"],
            "required": m["required"],
        }
        for m in guide["materials"]
    ]
    return view, materials


async def _decide(deps: BookingDeps, principal: Principal, ticket: str, counter: str | None) -> dict[str, Any]:
    try:
        claims, body, signature = tickets.decode(ticket)
        tickets.check_signature(body, signature, await deps.tokens.public_key(claims.kid))
    except tickets.TicketInvalid as exc:
        return _refusal("invalid", reason=exc.reason)
    if principal.role != "admin" and claims.hall != principal.hall:
        hall = await Hall.get_or_none(code=claims.hall)
        return _refusal(
            "wrong_hall",
            f"该预约应到「{hall.name if hall else claims.hall}」办理",
            ticket_hall=claims.hall,
            hall_name=hall.name if hall else None,
        )
    booking = await Booking.get_or_none(id=claims.booking_id)
    if booking is None or claims.version > booking.version:
        return _refusal("invalid", reason="unknown")
    if claims.version < booking.version:
        return _refusal("revoked", reason="rescheduled", booking_id=str(booking.id))
    if booking.status is BookingStatus.cancelled:
        return _refusal("cancelled", booking_id=str(booking.id), cancelled_at=clock.iso(booking.cancelled_at))
    if booking.status is BookingStatus.checked_in:
        return await _already(deps, booking)
    hall_cal = await calendar_of(deps, booking.hall_code)
    if principal.role == "admin":  # clerks had their counter checked against their own hall already
        await _check_counter(deps, booking.hall_code, counter)
    config = hall_cal.config
    now = clock.now()
    opens = booking.starts_at - dt.timedelta(minutes=config.early_minutes)
    closes = booking.ends_at + dt.timedelta(minutes=config.grace_minutes)
    if booking.status is BookingStatus.no_show or now > closes:
        return _refusal(
            "too_late",
            f"已超过签到时间（{clock.iso(closes)[11:16]} 截止），请重新预约或现场取号",
            closed_at=clock.iso(closes),
            booking_id=str(booking.id),
        )
    if now < opens:
        return _refusal(
            "too_early",
            f"未到签到时间，请于 {clock.iso(opens)[:16].replace('T', ' ')} 后签到",
            opens_at=clock.iso(opens),
            booking_id=str(booking.id),
        )
    won = await Booking.filter(id=booking.id, status=BookingStatus.booked, version=booking.version).update(
        status=BookingStatus.checked_in, checked_in_at=now, counter=counter, updated_at=now
    )
    if not won:  # another desk was faster, or the citizen cancelled or rescheduled this instant
        booking = await Booking.get(id=booking.id)
        if booking.status is BookingStatus.checked_in:
            return await _already(deps, booking)
        if booking.version != claims.version:
            return _refusal("revoked", reason="rescheduled", booking_id=str(booking.id))
        if booking.status is BookingStatus.no_show:
            return _refusal("too_late", booking_id=str(booking.id))
        return _refusal("cancelled", booking_id=str(booking.id))
    view, materials = await _booking_view(deps, booking)
    today = clock.today()
    # Last: the hall section's counter row stays locked until commit, so take it as late as possible.
    queue_no = await next_queue_no(booking.hall_code, booking.section, today)
    checkin = await CheckIn.create(
        id=uuid.uuid4(),
        booking_id=booking.id,
        hall_code=booking.hall_code,
        section=booking.section,
        day=today,
        queue_no=queue_no,
        counter=counter,
        staff_id=uuid.UUID(principal.id),
        kind="booking",
        created_at=now,
    )
    await Booking.filter(id=booking.id).update(queue_no=queue_no)
    return {
        "result": "checked_in",
        "ok": True,
        "message": MESSAGES["checked_in"],
        "queue_no": queue_no,
        "checkin_id": str(checkin.id),
        "checked_in_at": clock.iso(now),
        "counter": counter,
        "undo_until": clock.iso(now + dt.timedelta(minutes=deps.settings.checkin_undo_minutes)),
        "booking": view,
        "materials": materials,
        "details": {},
    }


async def _already(deps: BookingDeps, booking: Booking) -> dict[str, Any]:
    at = clock.iso(booking.checked_in_at) or ""
    where = f"在 {booking.counter} 窗口" if booking.counter else ""
    view, materials = await _booking_view(deps, booking)
    refusal = _refusal(
        "already_checked_in",
        f"该预约已于 {at[11:16]} {where}签到，排队号 {booking.queue_no}".replace("  ", " "),
        checked_in_at=at,
        counter=booking.counter,
        queue_no=booking.queue_no,
        booking_id=str(booking.id),
    )
    refusal.update(queue_no=booking.queue_no, booking=view, materials=materials)
    return refusal


async def check_in(deps: BookingDeps, *, principal: Principal, ticket: str, nonce: str, counter: str | None) -> str:
    """Verify a scanned ticket and check its holder in; the answer's JSON text (a replay is byte-identical)."""
    staff_id = uuid.UUID(principal.id)
    if principal.hall:
        await _check_counter(deps, principal.hall, counter)
    digest = hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest()
    now = clock.now()
    try:
        async with in_transaction():
            response = await _decide(deps, principal, ticket, counter)
            response["scanned_at"] = clock.iso(now)
            booking_id = (response.get("booking") or {}).get("id") or response["details"].get("booking_id")
            text = dumps(response).decode()
            # The scan row last, with its answer: a scan repeating a committed nonce fails on the unique
            # key here, its whole transaction rolls back, and it answers what the first one stored.
            await DeskScan.create(
                staff_id=staff_id, nonce=nonce, hall_code=principal.hall, result=response["result"],
                booking_id=booking_id, ticket_digest=digest, response=text, created_at=now,
            )  # fmt: skip
    except IntegrityError:
        prior = await DeskScan.get_or_none(staff_id=staff_id, nonce=nonce)
        if prior is None or prior.response is None:
            raise Conflict("相同的扫码正在处理中", code="SCAN_IN_FLIGHT") from None
        return prior.response
    return text


async def walk_in(
    deps: BookingDeps, *, principal: Principal, section: str, counter: str | None, hall: str | None
) -> dict[str, Any]:
    """A queue number for a citizen without a booking."""
    hall_code = _hall_of(principal, hall)
    if not await Hall.exists(code=hall_code):
        raise HallNotFound(details={"hall": hall_code})
    await _check_counter(deps, hall_code, counter)
    now, today = clock.now(), clock.today()
    async with in_transaction():
        queue_no = await next_queue_no(hall_code, section, today)
        checkin = await CheckIn.create(
            id=uuid.uuid4(), booking_id=None, hall_code=hall_code, section=section, day=today,
            queue_no=queue_no, counter=counter, staff_id=uuid.UUID(principal.id), kind="walk_in", created_at=now,
        )  # fmt: skip
    return {
        "checkin_id": str(checkin.id),
        "kind": "walk_in",
        "queue_no": queue_no,
        "hall": hall_code,
        "section": section,
        "section_name": SECTION_NAMES[Section(section)],
        "issued_at": clock.iso(now),
        "undo_until": clock.iso(now + dt.timedelta(minutes=deps.settings.checkin_undo_minutes)),
    }


async def undo(deps: BookingDeps, *, principal: Principal, checkin_id: str) -> dict[str, Any]:
    """Take back a check-in within a few minutes (the booking admits its holder again)."""
    try:
        cid = uuid.UUID(checkin_id)
    except ValueError:
        raise CheckInNotFound() from None
    checkin = await CheckIn.get_or_none(id=cid)
    if checkin is None or (principal.role != "admin" and checkin.hall_code != principal.hall):
        raise CheckInNotFound()
    if checkin.undone_at is not None:
        raise CheckInUndone(details={"undone_at": clock.iso(checkin.undone_at)})
    now = clock.now()
    if now - checkin.created_at > dt.timedelta(minutes=deps.settings.checkin_undo_minutes):
        raise UndoExpired(details={"minutes": deps.settings.checkin_undo_minutes})
    async with in_transaction():
        if not await CheckIn.filter(id=cid, undone_at__isnull=True).update(undone_at=now):
            raise CheckInUndone()
        if checkin.booking_id is not None:
            await Booking.filter(id=checkin.booking_id, status=BookingStatus.checked_in).update(
                status=BookingStatus.booked, checked_in_at=None, queue_no=None, counter=None, updated_at=now
            )
    return {"checkin_id": str(cid), "queue_no": checkin.queue_no, "undone_at": clock.iso(now)}


async def list_checkins(*, principal: Principal, hall: str | None, day: dt.date | None) -> dict[str, Any]:
    """A hall's check-ins of a day, latest first (the desk page's recent list)."""
    hall_code = _hall_of(principal, hall)
    rows = await CheckIn.filter(hall_code=hall_code, day=day or clock.today()).order_by("-created_at").limit(200)
    return {
        "items": [
            {
                "checkin_id": str(r.id),
                "kind": r.kind,
                "queue_no": r.queue_no,
                "section": r.section,
                "counter": r.counter,
                "booking_id": str(r.booking_id) if r.booking_id else None,
                "created_at": clock.iso(r.created_at),
                "undone_at": clock.iso(r.undone_at),
            }
            for r in rows
        ]
    }


async def revocations(*, principal: Principal, hall: str | None, since: dt.datetime | None) -> dict[str, Any]:
    """Revoked tickets of a hall whose slots are not over: what an offline desk must refuse."""
    hall_code = _hall_of(principal, hall)
    now = clock.now()
    query = RevokedTicket.filter(hall_code=hall_code, expires_at__gt=now)
    if since is not None:
        query = query.filter(revoked_at__gte=since.astimezone(dt.UTC))  # SQLite compares stored UTC text
    rows = await query.order_by("revoked_at", "id")
    return {
        "hall": hall_code,
        "generated_at": clock.iso(now),
        "items": [
            {
                "booking_id": str(r.booking_id),
                "version": r.version,
                "reason": r.reason,
                "revoked_at": clock.iso(r.revoked_at),
                "expires_at": clock.iso(r.expires_at),
            }
            for r in rows
        ],
    }
