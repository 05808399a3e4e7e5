"""Booking rules: slots, booking, cancelling, rescheduling and tickets.

Seats are counted by the database: a booking takes its seat with one conditional UPDATE
(`booked = booked + 1 WHERE booked < capacity`), which PostgreSQL row locks and SQLite's single
writer both serialise, so a slot can never be overbooked. A partial unique index keeps one active
booking per citizen, matter and day even under races. Two paths write a booking: the ORM's (the
reference, SQLite's) and PostgreSQL's one statement (app/booking/sql.py); they give the same answers
(tests/unit/booking/test_paths_agree.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app import clock, db, idempotency
from app.booking import calendar as cal
from app.booking import present, tickets
from app.booking import sql as booking_sql
from app.booking.calendars import calendar_of
from app.booking.deps import BookingDeps
from app.booking.errors import (
    BookingBusy,
    BookingExists,
    BookingLimitReached,
    BookingNotActive,
    BookingNotFound,
    BookingNotOffered,
    BookingRestricted,
    CutoffPassed,
    HallNotFound,
    RangeInvalid,
    SlotFull,
    SlotInPast,
    SlotNotForMatter,
    SlotNotFound,
    SlotOutsideWindow,
)
from app.booking.models import Booking, CheckIn, RevokedTicket, Slot
from app.booking.sql import Seen
from app.booking.types import (
    BookingDetail,
    BookingPage,
    BookingStatus,
    BookingView,
    HallRef,
    ReminderState,
    SlotList,
    SlotView,
    Ticket,
)
from app.clock import SHANGHAI
from app.errors import DomainError
from app.idempotency import Claim, KeyTaken, Pending
from app.matters import guides
from app.matters.models import Hall
from app.notify import service as notify
from app.notify.models import Notification
from auth.models import Citizen

MAX_RANGE_DAYS = 62
_BOOK_ATTEMPTS = 8  # reads and writes of one booking racing others of the same citizen, before BOOKING_BUSY


async def _bookable_guide(deps: BookingDeps, matter_code: str) -> dict[str, Any]:
    _, _, guide = await guides.guide_document(deps.cache, matter_code, base_url=deps.settings.base_url)
    if not guide["booking"] or guide["status"] != "active":
        raise BookingNotOffered(details={"matter_code": guide["code"]})
    return guide


# -- slots -------------------------------------------------------------------------------------


async def list_slots(
    deps: BookingDeps, *, matter_code: str, hall: str | None, date_from: dt.date | None, date_to: dt.date | None
) -> SlotList:
    """The matter's bookable slots in a date range (within the hall's booking window)."""
    guide = await _bookable_guide(deps, matter_code)
    hall_code, section = guide["hall"]["code"], guide["section"]
    if hall and hall != hall_code:
        if not await Hall.exists(code=hall):
            raise HallNotFound(details={"hall": hall[:40]})
        raise SlotNotForMatter("该事项不在此大厅预约办理", details={"hall": hall, "matter_hall": hall_code})
    hall_cal = await calendar_of(deps, hall_code)
    config = hall_cal.config
    today = clock.today()
    days = hall_cal.window(today)
    start = date_from or today
    end = date_to or (days[-1] if days else today)
    if end < start or (end - start).days > MAX_RANGE_DAYS:
        raise RangeInvalid(details={"from": start.isoformat(), "to": end.isoformat(), "max_days": MAX_RANGE_DAYS})
    chosen = [d for d in days if start <= d <= end]
    # The seats only, as tuples: up to ~3,000 rows, whose model instances would cost a worker ~1 KB each.
    rows: dict[str, tuple[int, int]] = (
        {
            sid: (capacity, booked)
            for sid, capacity, booked in await Slot.filter(
                hall_code=hall_code, section=section, day__in=chosen
            ).values_list("id", "capacity", "booked")
        }
        if chosen
        else {}
    )
    now = clock.now()
    cutoff = dt.timedelta(minutes=config.cutoff_minutes)
    seats = config.seats(section)
    items = []
    for day in chosen:
        for slot in hall_cal.slots(day).values():
            if slot.starts_at <= now:
                continue
            sid = cal.slot_id(hall_code, section, day, slot.hhmm)
            capacity, booked = rows.get(sid, (seats, 0))
            available = max(capacity - booked, 0)
            items.append(
                SlotView(
                    slot_id=sid, day=day, starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=capacity,
                    available=available, bookable=available > 0 and slot.starts_at - cutoff > now,
                )
            )  # fmt: skip
    return SlotList(
        matter_code=guide["code"],
        hall=HallRef(code=hall_code, name=guide["hall"]["name"]),
        section=section,
        slot_minutes=config.slot_minutes,
        window_from=days[0] if days else None,
        window_to=days[-1] if days else None,
        items=tuple(items),
    )


async def _ensure_slot_row(sid: str, hall: str, section: str, slot: cal.SlotTime, seats: int) -> None:
    """Create the slot's row on first use (a conflict means another request already did)."""
    if booking_sql.enabled():
        await booking_sql.ensure_slot(
            {"id": sid, "hall_code": hall, "section": section, "day": slot.day, "starts_at": slot.starts_at,
             "ends_at": slot.ends_at, "capacity": seats}
        )  # fmt: skip
        return
    if await Slot.exists(id=sid):
        return
    await Slot.bulk_create(
        [
            Slot(
                id=sid, hall_code=hall, section=section, day=slot.day,
                starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=seats, booked=0,
            )
        ],
        ignore_conflicts=True,
    )  # fmt: skip


def _place(guide: dict[str, Any]) -> tuple[str, str]:
    """The hall and section a matter is booked in (from its current guide)."""
    return guide["hall"]["code"], guide["section"]


async def _resolve_slot(
    deps: BookingDeps, hall_section: tuple[str, str], slot_id: str, *, ensure: bool = True
) -> tuple[str, cal.SlotTime, cal.ScheduleConfig]:
    """Check a slot id against the hall and section it must be of, the calendar, the window and the cutoff.

    With `ensure` the slot's row is created on first use; without it the caller's write creates it (TRY_BOOK).
    """
    parsed = cal.parse_slot_id(slot_id)
    if parsed is None:
        raise SlotNotFound(details={"slot_id": str(slot_id)[:80]})
    hall, section, day, hhmm = parsed
    if (hall, section) != hall_section:
        raise SlotNotForMatter(details={"slot_id": slot_id})
    hall_cal = await calendar_of(deps, hall)
    config = hall_cal.config
    today = clock.today()
    window = hall_cal.window(today)
    # The date's range first: a slot id names any date, and only days up to the window's end are worth
    # computing slots for (a closed day inside the range has none: 404 below).
    if day < today:
        raise SlotInPast(details={"slot_id": slot_id})
    if not window or day > window[-1]:
        raise SlotOutsideWindow(details={"slot_id": slot_id, "window_days": config.window_days})
    slot = hall_cal.slots(day).get(hhmm)
    if slot is None:
        raise SlotNotFound(details={"slot_id": slot_id})
    now = clock.now()
    if slot.starts_at <= now:
        raise SlotInPast(details={"slot_id": slot_id})
    if day not in window:
        raise SlotOutsideWindow(details={"slot_id": slot_id, "window_days": config.window_days})
    if slot.starts_at - dt.timedelta(minutes=config.cutoff_minutes) <= now:
        raise SlotOutsideWindow(
            f"该时段开始前 {config.cutoff_minutes} 分钟停止预约",
            details={"slot_id": slot_id, "cutoff_minutes": config.cutoff_minutes},
        )
    if ensure and slot_id not in hall_cal.known_slots:
        await _ensure_slot_row(slot_id, hall, section, slot, config.seats(section))
        hall_cal.known_slots.add(slot_id)
    return slot_id, slot, config


# -- booking -----------------------------------------------------------------------------------


def _noshow_since(deps: BookingDeps) -> dt.date:
    """The first day whose no-shows count towards the restriction."""
    return clock.today() - dt.timedelta(days=deps.settings.booking_noshow_days)


async def _citizen_bookings(deps: BookingDeps, citizen_id: uuid.UUID) -> list[tuple[str, str, dt.date]]:
    """(status, matter, day) of the active bookings and recent no-shows (the ORM path; sql.SEEN on PostgreSQL)."""
    return await Booking.filter(
        Q(citizen_id=citizen_id)
        & (Q(status=BookingStatus.booked) | Q(status=BookingStatus.no_show, day__gte=_noshow_since(deps)))
    ).values_list("status", "matter_code", "day")


def _check_restriction(deps: BookingDeps, rows: list[tuple[str, str, dt.date]]) -> None:
    """403 while the no-show rule holds (N no-shows in the period stop booking for some days)."""
    s = deps.settings
    today = clock.today()
    days = sorted((d for status, _, d in rows if status == BookingStatus.no_show), reverse=True)
    if len(days) < s.booking_noshow_limit:
        return
    allowed_from = days[0] + dt.timedelta(days=s.booking_restrict_days)
    if today < allowed_from:
        until = allowed_from - dt.timedelta(days=1)
        raise BookingRestricted(
            f"近 {s.booking_noshow_days} 天内爽约 {len(days)} 次，暂停预约至 {until:%Y-%m-%d}，"
            f"{allowed_from:%Y-%m-%d} 起可重新预约",
            details={"until": until.isoformat(), "allowed_from": allowed_from.isoformat(), "no_shows": len(days)},
        )


def _admit(deps: BookingDeps, rows: list[tuple[str, str, dt.date]], matter_code: str, day: dt.date) -> None:
    """The citizen's booking rules, on their active bookings and recent no-shows (read under their lock)."""
    _check_restriction(deps, rows)
    active = {(m, d) for status, m, d in rows if status == BookingStatus.booked}
    if (matter_code, day) in active:
        raise BookingExists(details={"matter_code": matter_code, "date": day.isoformat()})
    if len(active) >= deps.settings.booking_max_active:
        raise BookingLimitReached(details={"max_active": deps.settings.booking_max_active})


async def _lock_citizen(citizen_id: uuid.UUID) -> None:
    """Serialise one citizen's cancels and reschedules (and the ORM path's bookings): a row lock taken first.

    Taken before any booking or slot row, so these writes cannot deadlock. New bookings on PostgreSQL
    serialise on the citizen's `booking_account` row instead, in one statement that locks it, then
    the slot: it waits on nothing these writes hold after they have taken their slots.
    """
    if booking_sql.enabled():
        await booking_sql.lock_citizen(citizen_id)
        return
    await Citizen.select_for_update().filter(id=citizen_id).only("id").first()


async def _take_seat(sid: str) -> None:
    if not await Slot.filter(id=sid, booked__lt=F("capacity")).update(booked=F("booked") + 1):
        raise SlotFull(details={"slot_id": sid})


async def _release_seat(sid: str) -> None:
    await Slot.filter(id=sid, booked__gt=0).update(booked=F("booked") - 1)


def _reminder_key(booking: Booking) -> str:
    return f"booking:{booking.id}:v{booking.version}:reminder"


def _reminder(deps: BookingDeps, booking: Booking, guide: dict[str, Any]) -> dict[str, Any] | None:
    """The reminder the day before (notify.enqueue's arguments), or None when booked less than a day ahead."""
    remind_at = dt.datetime.combine(
        booking.day - dt.timedelta(days=1), dt.time(deps.settings.booking_reminder_hour), SHANGHAI
    ).astimezone(dt.UTC)
    if remind_at <= clock.now():
        return None  # the citizen has just seen the details
    return {
        "kind": "booking_reminder",
        "citizen_id": booking.citizen_id,
        "subject_type": "booking",
        "subject_id": str(booking.id),
        "dedupe_key": _reminder_key(booking),
        "send_after": remind_at,
        "payload": {
            "matter_name": guide["name"],
            "hall_name": guide["hall"]["name"],
            "hall_address": guide["hall"].get("address", ""),
            "starts_at": clock.iso(booking.starts_at),
            "ends_at": clock.iso(booking.ends_at),
            "url": f"{deps.settings.base_url}/m/{booking.matter_code}",  # a page WeChat opens (the API needs a token)
        },
    }


async def _schedule_reminder(deps: BookingDeps, booking: Booking, guide: dict[str, Any]) -> None:
    reminder = _reminder(deps, booking, guide)
    if reminder is not None:
        await notify.enqueue(fresh=True, **reminder)


async def ticket_for(deps: BookingDeps, booking: Booking) -> str:
    """The booking's current signed ticket."""
    return await tickets.issue(
        sign=deps.tokens.sign,
        booking_id=booking.id,
        version=booking.version,
        hall=booking.hall_code,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
    )


def _ticket_digest(text: str) -> str:
    _, body, signature = tickets.decode(text)
    return tickets.digest(body, signature)


async def _visits(bookings: list[Booking]) -> dict[uuid.UUID, uuid.UUID]:
    """The check-in (visit) of each checked-in booking among these, by booking id, in one query."""
    ids = [b.id for b in bookings if b.status is BookingStatus.checked_in]
    if not ids:
        return {}
    rows = await (
        CheckIn.filter(booking_id__in=ids, undone_at__isnull=True)
        .order_by("created_at")
        .values_list("booking_id", "id")
    )
    return dict(rows)  # an undone check-in done again: the later one is the visit


async def view_of(
    deps: BookingDeps,
    booking: Booking,
    guide: dict[str, Any] | None = None,
    visits: dict[uuid.UUID, uuid.UUID] | None = None,
    ticket: bool = True,
) -> BookingView:
    """A booking as the citizen sees it (with its ticket while it admits its holder, its visit once checked in).

    `ticket=False` leaves the signed ticket out (an Ed25519 signature each): for lists that do not show it.
    """
    if visits is None:
        visits = await _visits([booking])
    if guide is None:
        _, _, guide = await guides.guide_document(deps.cache, booking.matter_code, base_url=deps.settings.base_url)
    config = (await calendar_of(deps, booking.hall_code)).config
    hall = guide["hall"]
    same_hall = hall["code"] == booking.hall_code
    if not same_hall:  # the matter has moved since it was booked: the booking keeps its own hall
        row = await Hall.get_or_none(code=booking.hall_code)
        hall = {
            "code": booking.hall_code,
            **({k: getattr(row, k) for k in ("name", "address", "phone")} if row else {}),
        }
    return BookingView(
        id=booking.id,
        status=booking.status,
        matter_code=booking.matter_code,
        matter_name=guide["name"],
        hall=HallRef(**{k: hall.get(k, "") for k in ("code", "name", "address", "phone")}),
        section=booking.section,
        counter_hint=guide.get("counter", "") if same_hall else "",
        slot_id=booking.slot_id,
        day=booking.day,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        version=booking.version,
        cancel_until=booking.starts_at - dt.timedelta(minutes=config.cutoff_minutes),
        queue_no=booking.queue_no,
        counter=booking.counter,
        checked_in_at=booking.checked_in_at,
        cancelled_at=booking.cancelled_at,
        created_at=booking.created_at,
        ticket=await ticket_for(deps, booking) if ticket and booking.status is BookingStatus.booked else None,
        url=f"{deps.settings.base_url}/api/v1/bookings/{booking.id}",
        checkin_opens_at=booking.starts_at - dt.timedelta(minutes=config.early_minutes),
        checkin_closes_at=booking.noshow_at,
        checkin_id=visits.get(booking.id),
    )


@dataclass(frozen=True)
class Resolved:
    """What `check_seat` resolved for `book` (the guide, the slot), and SEEN's read when it made one."""

    guide: dict[str, Any]
    sid: str
    slot: cal.SlotTime
    config: cal.ScheduleConfig
    seen: Seen | None = None


async def _note_full(deps: BookingDeps, hall: str, sid: str) -> None:
    """Remember that this worker found a slot full: its next attempts read first (see check_seat)."""
    full = (await calendar_of(deps, hall)).full_slots
    if len(full) >= 4096:
        full.clear()
    full.add(sid)


async def check_seat(
    deps: BookingDeps, *, citizen_id: str, matter_code: str, slot_id: str, owner: str, key: str
) -> idempotency.Precheck:
    """Refuse a booking that cannot succeed (unknown, closed or full slot) with reads only, unless its key has history.

    Most attempts on a popular slot find it full and learn it here, with no write and no transaction.
    A key with a record goes on to its replay (or 422 / 409); a new key is recorded by `book` itself,
    which gets what was resolved here. On PostgreSQL a slot not known to be full is not read here at
    all: `book` tries its one statement, which reads as it writes and says "full" or "known" as well.
    Not the guard: `book`'s writes are.
    """
    # On PostgreSQL the slot's row is made by its first booking (TRY_BOOK); SEEN, which reads only slots
    # found full, reads a missing row as full, as a slot with no seats is.
    postgres = booking_sql.enabled()
    try:
        guide = await _bookable_guide(deps, matter_code)
        sid, slot, config = await _resolve_slot(deps, _place(guide), slot_id, ensure=not postgres)
    except DomainError:
        if await idempotency.known(owner=owner, key=key):
            return idempotency.Precheck(known=True)
        raise
    if postgres:
        # A slot this worker last found full is read first (SEEN, outside the slot's gate): most attempts
        # on it end here. Any other goes straight to `book`'s one statement. Only a choice between two
        # paths with the same answers, so the note may be stale: a seat freed since is found by the read.
        full = (await calendar_of(deps, _place(guide)[0])).full_slots
        if sid not in full:
            return idempotency.Precheck(known=False, seen=Resolved(guide, sid, slot, config))
        seen = await _seen(deps, sid, uuid.UUID(citizen_id), owner, key)
        left, known = seen.seat, seen.known
        if left:
            full.discard(sid)
        resolved: Resolved | None = Resolved(guide, sid, slot, config, seen)
    else:
        resolved = Resolved(guide, sid, slot, config)
        left = await Slot.filter(id=sid, booked__lt=F("capacity")).exists()
        known = await idempotency.known(owner=owner, key=key)
    if not left and not known:
        raise SlotFull(details={"slot_id": sid})
    return idempotency.Precheck(known=known, seen=resolved)


async def book(
    deps: BookingDeps,
    *,
    citizen_id: str,
    matter_code: str,
    slot_id: str,
    claim: Claim | Pending | None = None,
) -> BookingView:
    """Book a seat; the seat, the booking, its reminder and the idempotent answer commit together.

    Callers run `check_seat` first (before claiming the key); the conditional UPDATE is the guard.
    The idempotent answer stored is the API's (present.booking_json).
    """
    resolved = claim.seen if isinstance(claim, Pending) and isinstance(claim.seen, Resolved) else None
    if resolved is not None and resolved.guide["code"] == matter_code.strip().upper() and resolved.sid == slot_id:
        guide, sid, slot, config = resolved.guide, resolved.sid, resolved.slot, resolved.config
    else:
        resolved = None
        guide = await _bookable_guide(deps, matter_code)
        sid, slot, config = await _resolve_slot(deps, _place(guide), slot_id)
    now = clock.now()
    booking = Booking(
        id=uuid.uuid4(),
        citizen_id=uuid.UUID(citizen_id),
        matter_code=guide["code"],
        hall_code=guide["hall"]["code"],
        section=guide["section"],
        slot_id=sid,
        day=slot.day,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        noshow_at=slot.ends_at + dt.timedelta(minutes=config.grace_minutes),
        status=BookingStatus.booked,
        version=1,
        created_at=now,
        updated_at=now,
    )
    view = await view_of(deps, booking, guide)
    body = present.booking_json(view)
    booking.ticket_digest = _ticket_digest(body["ticket"])
    reminder = _reminder(deps, booking, guide)
    try:
        # A slot row held locked elsewhere must not draw this worker's every connection into the wait.
        async with db.hot_row(f"slot:{sid}"):
            if booking_sql.enabled():
                seats = config.seats(booking.section)
                await _book_in_one_statement(deps, booking, reminder, body, claim, seats, resolved)
                return view
            await _book_with_orm(deps, booking, reminder, body, claim)
    except IntegrityError as exc:
        if getattr(exc.__cause__, "table_name", None) == "idempotency_record":
            raise KeyTaken() from None  # a concurrent request recorded this key first
        # the partial unique index: a concurrent booking of the same matter and day
        raise BookingExists(details={"matter_code": guide["code"], "date": slot.day.isoformat()}) from None
    return view


async def _book_with_orm(
    deps: BookingDeps, booking: Booking, reminder: dict[str, Any] | None, body: dict[str, Any],
    claim: Claim | Pending | None,
) -> None:  # fmt: skip
    """The ORM path (SQLite): one transaction, the citizen's lock first."""
    async with in_transaction():
        # The citizen's lock first, then a fresh read (a new statement sees what the last holder committed).
        await _lock_citizen(booking.citizen_id)
        if isinstance(claim, Pending):  # a retry that came first has recorded the key: KeyTaken, its replay
            await claim.complete(201, body)
        _admit(deps, await _citizen_bookings(deps, booking.citizen_id), booking.matter_code, booking.day)
        # SLOT_FULL here rolls the whole booking back.
        await _write_booking(booking, reminder, body, claim if isinstance(claim, Claim) else None)


async def _seen(deps: BookingDeps, sid: str, citizen_id: uuid.UUID, owner: str, key: str) -> Seen:
    return await booking_sql.seen(
        slot_id=sid, citizen_id=citizen_id, owner=owner, key=key, noshow_since=_noshow_since(deps)
    )


async def _write_booking(
    booking: Booking, reminder: dict[str, Any] | None, body: dict[str, Any], claim: Claim | None
) -> None:
    """The ORM path, inside the booking's transaction: the booking, its reminder, the idempotent answer, the seat."""
    await booking.save(force_create=True)
    if reminder is not None:
        await notify.enqueue(fresh=True, **reminder)
    if claim is not None:
        await claim.complete(201, body)
    # The seat last: its row stays locked until commit, so others wait as little as possible.
    await _take_seat(booking.slot_id)


def _caps(deps: BookingDeps, capacity: int) -> dict[str, Any]:
    """TRY_BOOK's rule values: the caps `_admit` checks, as the statement checks them, and the slot's seats."""
    s = deps.settings
    return {
        "noshow_since": _noshow_since(deps), "noshow_limit": s.booking_noshow_limit,
        "restrict_days": s.booking_restrict_days, "max_active": s.booking_max_active, "today": clock.today(),
        "capacity": capacity,
    }  # fmt: skip


async def _book_in_one_statement(
    deps: BookingDeps, booking: Booking, reminder: dict[str, Any] | None, body: dict[str, Any],
    claim: Claim | Pending | None, capacity: int, resolved: Resolved | None = None,
) -> None:  # fmt: skip
    """The SQL path: one statement that reads, checks the caps and writes (TRY_BOOK), or BOOK after the precheck's read.

    BOOK writes only if the precheck's read (SEEN, made for a slot last found full) is still current;
    TRY_BOOK reads in its own snapshot and writes only if that snapshot is current for the citizen.
    """
    pending = claim if isinstance(claim, Pending) else None
    seen = resolved.seen if resolved is not None else None
    # Each lost race means another booking of this citizen went through, and the caps end those soon.
    for _ in range(_BOOK_ATTEMPTS):
        if seen is None:
            tried = await booking_sql.try_book(booking, reminder, body, claim, _caps(deps, capacity))
            if tried.booked:
                return
            if pending is not None and tried.known:
                raise KeyTaken()  # a retry of this request was recorded meanwhile: it answers as a known key
            if tried.rows is not None:
                _admit(deps, tried.rows, booking.matter_code, booking.day)
                continue  # the caps refused on rows _admit accepts: only if they changed, so try again
            if tried.booked is False:
                await _note_full(deps, booking.hall_code, booking.slot_id)
                raise SlotFull(details={"slot_id": booking.slot_id})
            continue  # another booking of this citizen committed since the statement's snapshot
        if pending is not None and seen.known:
            raise KeyTaken()  # a retry of this request was recorded meanwhile: it answers as a known key
        if not seen.seat:
            raise SlotFull(details={"slot_id": booking.slot_id})
        _admit(deps, seen.rows, booking.matter_code, booking.day)
        booked = await booking_sql.book(booking, reminder, body, claim, seen.seq)
        if booked:
            return
        if booked is False:
            await _note_full(deps, booking.hall_code, booking.slot_id)
            raise SlotFull(details={"slot_id": booking.slot_id})
        seen = None  # another booking of this citizen committed since the read: try again in one statement
    raise BookingBusy()


async def _own_booking(citizen_id: str, booking_id: str) -> Booking:
    try:
        bid, cid = uuid.UUID(booking_id), uuid.UUID(citizen_id)
    except ValueError:
        raise BookingNotFound() from None
    booking = await Booking.get_or_none(id=bid, citizen_id=cid)
    if booking is None:
        raise BookingNotFound()
    return booking


async def list_bookings(
    deps: BookingDeps, *, citizen_id: str, status: str | None, page: int, page_size: int, tickets: bool = True
) -> BookingPage:
    """The citizen's bookings, the latest slot first (without their signed tickets when `tickets` is false)."""
    query = Booking.filter(citizen_id=uuid.UUID(citizen_id))
    if status:
        query = query.filter(status=status)
    total = await query.count()
    rows = await query.order_by("-starts_at", "-created_at").offset((page - 1) * page_size).limit(page_size)
    visits = await _visits(rows)
    return BookingPage(
        items=tuple([await view_of(deps, row, visits=visits, ticket=tickets) for row in rows]),
        total=total,
        page=page,
        page_size=page_size,
    )


async def get_booking(deps: BookingDeps, *, citizen_id: str, booking_id: str) -> BookingDetail:
    """One of the citizen's bookings, with its reminder."""
    booking = await _own_booking(citizen_id, booking_id)
    view = await view_of(deps, booking)
    reminder = await Notification.get_or_none(dedupe_key=_reminder_key(booking))  # this version's reminder
    state = ReminderState(send_after=reminder.send_after, status=str(reminder.status)) if reminder else None
    return BookingDetail(booking=view, reminder=state)


async def _revoke(booking: Booking, reason: str) -> None:
    await RevokedTicket.create(
        booking_id=booking.id,
        version=booking.version,
        hall_code=booking.hall_code,
        reason=reason,
        revoked_at=clock.now(),
        expires_at=booking.ends_at + dt.timedelta(days=1),
    )


async def _locked_active(booking: Booking, config: cal.ScheduleConfig) -> Booking:
    """Re-read a booking under its citizen's lock and its own; it must be active and before the cutoff."""
    await _lock_citizen(booking.citizen_id)
    booking = await Booking.select_for_update().get(id=booking.id)
    if booking.status is not BookingStatus.booked:
        raise BookingNotActive(details={"status": str(booking.status)})
    if booking.starts_at - dt.timedelta(minutes=config.cutoff_minutes) <= clock.now():
        raise CutoffPassed(details={"cutoff_minutes": config.cutoff_minutes})
    return booking


async def cancel(deps: BookingDeps, *, citizen_id: str, booking_id: str) -> BookingView:
    """Cancel before the cutoff: the seat returns, the ticket is revoked, the reminder is dropped."""
    booking = await _own_booking(citizen_id, booking_id)
    if booking.status is BookingStatus.cancelled:
        return await view_of(deps, booking)  # a retried cancel answers the same
    config = (await calendar_of(deps, booking.hall_code)).config
    async with in_transaction():
        booking = await _locked_active(booking, config)
        now = clock.now()
        changed = await Booking.filter(id=booking.id, status=BookingStatus.booked, version=booking.version).update(
            status=BookingStatus.cancelled, cancelled_at=now, updated_at=now
        )
        if not changed:
            raise BookingNotActive()
        await _release_seat(booking.slot_id)
        await _revoke(booking, "cancelled")
        await notify.cancel_pending(subject_type="booking", subject_id=str(booking.id))
        booking.status, booking.cancelled_at = BookingStatus.cancelled, now
    return await view_of(deps, booking)


async def reschedule(deps: BookingDeps, *, citizen_id: str, booking_id: str, slot_id: str) -> BookingView:
    """Move to another slot: the new seat is taken before the old one is released, in one transaction."""
    booking = await _own_booking(citizen_id, booking_id)
    if booking.status is BookingStatus.booked and booking.slot_id == slot_id:
        return await view_of(deps, booking)  # already there (a retried request)
    if booking.status is not BookingStatus.booked:
        raise BookingNotActive(details={"status": str(booking.status)})
    guide = await _bookable_guide(deps, booking.matter_code)
    sid, slot, config = await _resolve_slot(deps, (booking.hall_code, booking.section), slot_id)
    try:
        async with in_transaction():
            booking = await _locked_active(booking, config)
            # Both slot rows locked in id order: two reschedules crossing between the same slots cannot deadlock.
            await Slot.select_for_update().filter(id__in=sorted({sid, booking.slot_id})).order_by("id").only("id")
            if (
                slot.day != booking.day
                and await Booking.filter(
                    citizen_id=booking.citizen_id,
                    matter_code=booking.matter_code,
                    day=slot.day,
                    status=BookingStatus.booked,
                ).exists()
            ):
                raise BookingExists(details={"matter_code": booking.matter_code, "date": slot.day.isoformat()})
            await _take_seat(sid)
            await _release_seat(booking.slot_id)
            await _revoke(booking, "rescheduled")
            await notify.cancel_pending(subject_type="booking", subject_id=str(booking.id))
            old_version = booking.version
            booking.slot_id, booking.day = sid, slot.day
            booking.starts_at, booking.ends_at = slot.starts_at, slot.ends_at
            booking.noshow_at = slot.ends_at + dt.timedelta(minutes=config.grace_minutes)
            booking.version = old_version + 1
            booking.ticket_digest = _ticket_digest(await ticket_for(deps, booking))
            changed = await Booking.filter(id=booking.id, version=old_version, status=BookingStatus.booked).update(
                ticket_digest=booking.ticket_digest,
                slot_id=booking.slot_id,
                day=booking.day,
                starts_at=booking.starts_at,
                ends_at=booking.ends_at,
                noshow_at=booking.noshow_at,
                version=booking.version,
                updated_at=clock.now(),
            )
            if not changed:
                raise BookingNotActive()
            await _schedule_reminder(deps, booking, guide)
    except IntegrityError:
        raise BookingExists(details={"matter_code": booking.matter_code, "date": slot.day.isoformat()}) from None
    return await view_of(deps, booking, guide)


async def get_ticket(deps: BookingDeps, *, citizen_id: str, booking_id: str) -> Ticket:
    """The ticket of an active booking (409 BOOKING_NOT_ACTIVE once it no longer admits anyone)."""
    booking = await _own_booking(citizen_id, booking_id)
    if booking.status is not BookingStatus.booked:
        raise BookingNotActive(details={"status": str(booking.status)})
    return Ticket(booking_id=booking.id, version=booking.version, text=await ticket_for(deps, booking))
