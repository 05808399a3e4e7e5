"""Calling numbers (叫号): each counter of a hall calls the next waiting number of today, recalls, skips.

The order a counter calls in (`call_next`), among today's check-ins of its hall that are not undone
and not yet called (no QueueTicket row):

1. booked check-ins whose slot has started (slot start <= now), by slot start, then check-in time;
2. walk-ins, in the order their numbers were issued;
3. booked check-ins that arrived before their slot, by slot start, then check-in time.

A counter listed in the hall's counters (admin → 窗口) calls only numbers of its own section; when
the hall lists no counters, any counter calls any section. Calling next first marks the number this
counter called before as done (also when nobody is waiting any more). Two counters calling at once
never get the same number: a call inserts the QueueTicket row keyed by the check-in, and the loser of
that insert takes the next one.

Every call, recall, skip and done is appended to `queue_call`, whose id sequence the waiting-room
screen's event stream follows (any worker, any store).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.booking.deps import BookingDeps
from app.booking.desk import _check_counter, _hall_of
from app.booking.errors import HallNotFound, NothingCalled, QueueTicketNotFound
from app.booking.models import Booking, CheckIn, Counter, QueueCall, QueueTicket
from app.errors import Conflict
from app.matters.models import Hall
from auth.tokens import Principal

CALL_ATTEMPTS = 20  # candidates a call tries before giving up (each lost race moves to the next)


@dataclass(frozen=True)
class QueueEntry:
    """A queue number as the desk sees it: booked or walk-in, its slot (booked), where it was called."""

    checkin_id: uuid.UUID
    queue_no: str
    section: str
    kind: str  # booking | walk_in
    issued_at: dt.datetime
    slot_starts_at: dt.datetime | None
    state: str  # waiting | called | skipped | done
    counter: str | None = None
    called_at: dt.datetime | None = None


@dataclass(frozen=True)
class Announcement:
    """One event of a hall's screen: a number called (again), skipped or done at a counter. No personal data."""

    id: int
    hall: str
    queue_no: str
    counter: str
    action: str
    at: dt.datetime


def _order_key(entry: QueueEntry, now: dt.datetime) -> tuple[int, dt.datetime, dt.datetime]:
    """The call order (see the module docstring)."""
    if entry.kind == "booking" and entry.slot_starts_at is not None:
        tier = 0 if entry.slot_starts_at <= now else 2
        return tier, entry.slot_starts_at, entry.issued_at
    return 1, entry.issued_at, entry.issued_at


async def _counter_section(hall: str, counter: str) -> str | None:
    """The section a listed counter serves, else None (any)."""
    return await Counter.filter(hall_code=hall, code=counter, active=True).first().values_list("section", flat=True)


async def _entries(hall: str, day: dt.date, section: str | None = None) -> list[QueueEntry]:
    """Today's queue numbers of a hall (not undone), with their call state and booked slot."""
    query = CheckIn.filter(hall_code=hall, day=day, undone_at__isnull=True)
    if section is not None:
        query = query.filter(section=section)
    rows = await query.order_by("created_at")
    tickets = {t.checkin_id: t for t in await QueueTicket.filter(hall_code=hall, day=day)}
    booking_ids = [r.booking_id for r in rows if r.booking_id is not None]
    starts = dict(await Booking.filter(id__in=booking_ids).values_list("id", "starts_at")) if booking_ids else {}
    out = []
    for r in rows:
        t = tickets.get(r.id)
        out.append(
            QueueEntry(
                checkin_id=r.id, queue_no=r.queue_no, section=r.section, kind=r.kind, issued_at=r.created_at,
                slot_starts_at=starts.get(r.booking_id) if r.booking_id else None,
                state=t.state if t else "waiting", counter=t.counter if t else None,
                called_at=t.called_at if t else None,
            )
        )  # fmt: skip
    return out


_ACTION_WORDS = {"call": "叫号", "recall": "重呼", "skip": "过号", "done": "办结"}


async def _announce(
    hall: str, day: dt.date, checkin_id: uuid.UUID, queue_no: str, counter: str, action: str, staff: str,
    at: dt.datetime,
) -> None:  # fmt: skip
    await QueueCall.create(
        hall_code=hall, day=day, checkin_id=checkin_id, queue_no=queue_no, counter=counter, action=action,
        staff_id=uuid.UUID(staff), created_at=at,
    )  # fmt: skip
    # The screen's event and the audit entry are written together (in the caller's transaction, if any).
    await audit.record(
        action=f"queue.{action}", object_type="checkin", object_id=str(checkin_id),
        summary=f"{queue_no} 号 {_ACTION_WORDS.get(action, action)}（{counter} 号窗口）", changes={"hall": hall},
    )  # fmt: skip


async def _current(hall: str, day: dt.date, counter: str) -> QueueTicket | None:
    """The number this counter is serving now (called last and not skipped or done)."""
    return (
        await QueueTicket.filter(hall_code=hall, day=day, counter=counter, state="called")
        .order_by("-called_at")
        .first()
    )


async def call_next(
    deps: BookingDeps, *, principal: Principal, counter: str, hall: str | None = None
) -> QueueEntry | None:
    """Call the next waiting number at this counter (the order: module docstring); None when nobody waits."""
    hall_code = _hall_of(principal, hall)
    await _check_counter(deps, hall_code, counter)
    section = await _counter_section(hall_code, counter)
    now, today = clock.now(), clock.today()
    previous = await _current(hall_code, today, counter)
    if previous is not None:
        await _finish(previous, "done", principal, now)
    for _ in range(CALL_ATTEMPTS):
        waiting = [e for e in await _entries(hall_code, today, section) if e.state == "waiting"]
        if not waiting:
            return None
        waiting.sort(key=lambda e: _order_key(e, now))
        for entry in waiting[:5]:
            try:
                async with in_transaction():
                    await QueueTicket.create(
                        checkin_id=entry.checkin_id, hall_code=hall_code, day=today, queue_no=entry.queue_no,
                        state="called", counter=counter, called_at=now, updated_at=now,
                    )  # fmt: skip
                    await _announce(
                        hall_code, today, entry.checkin_id, entry.queue_no, counter, "call", principal.id, now
                    )
            except IntegrityError:  # another counter called it this instant: the next one
                continue
            return QueueEntry(**{**entry.__dict__, "state": "called", "counter": counter, "called_at": now})
    raise Conflict("叫号繁忙，请重试", code="CALL_BUSY")


async def _finish(ticket: QueueTicket, state: str, principal: Principal, now: dt.datetime) -> bool:
    """Move a called number to skipped or done (only from called: a racing counter's change wins once)."""
    async with in_transaction():
        moved = await QueueTicket.filter(checkin_id=ticket.checkin_id, state="called").update(
            state=state, updated_at=now
        )
        if moved:
            action = "skip" if state == "skipped" else "done"
            await _announce(
                ticket.hall_code,
                ticket.day,
                ticket.checkin_id,
                ticket.queue_no,
                ticket.counter,
                action,
                principal.id,
                now,
            )
    return bool(moved)


def _entry(ticket: QueueTicket, state: str) -> QueueEntry:
    return QueueEntry(
        checkin_id=ticket.checkin_id, queue_no=ticket.queue_no, section="", kind="", issued_at=ticket.called_at,
        slot_starts_at=None, state=state, counter=ticket.counter, called_at=ticket.called_at,
    )  # fmt: skip


async def recall(deps: BookingDeps, *, principal: Principal, counter: str, hall: str | None = None) -> QueueEntry:
    """Announce this counter's current number again."""
    hall_code = _hall_of(principal, hall)
    await _check_counter(deps, hall_code, counter)
    ticket = await _current(hall_code, clock.today(), counter)
    if ticket is None:
        raise NothingCalled()
    now = clock.now()
    await _announce(hall_code, ticket.day, ticket.checkin_id, ticket.queue_no, counter, "recall", principal.id, now)
    return _entry(ticket, "called")


async def finish(
    deps: BookingDeps, *, principal: Principal, counter: str, state: str, hall: str | None = None
) -> QueueEntry:
    """Mark this counter's current number skipped (did not come; may be re-queued) or done."""
    hall_code = _hall_of(principal, hall)
    await _check_counter(deps, hall_code, counter)
    ticket = await _current(hall_code, clock.today(), counter)
    if ticket is None or not await _finish(ticket, state, principal, clock.now()):
        raise NothingCalled()
    return _entry(ticket, state)


async def requeue(*, principal: Principal, checkin_id: str) -> QueueEntry:
    """Put a skipped number back in the queue at its original place (the citizen turned up after all)."""
    try:
        cid = uuid.UUID(checkin_id)
    except ValueError:
        raise QueueTicketNotFound() from None
    ticket = await QueueTicket.get_or_none(checkin_id=cid)
    if ticket is None or not principal.covers(department=None, hall=ticket.hall_code):
        raise QueueTicketNotFound()
    async with in_transaction():
        if not await QueueTicket.filter(checkin_id=cid, state="skipped").delete():
            raise Conflict("只有已过号的号码可以重新排队", code="NOT_SKIPPED")
        await audit.record(action="queue.requeue", object_type="checkin", object_id=str(cid),
                           summary=f"{ticket.queue_no} 号重新排队", changes={"hall": ticket.hall_code})  # fmt: skip
    return _entry(ticket, "waiting")


async def queue_of(*, principal: Principal, hall: str | None = None) -> tuple[str, list[QueueEntry]]:
    """A hall's queue today, in call order: waiting first (as they will be called), then the called ones."""
    hall_code = _hall_of(principal, hall)
    now = clock.now()
    entries = await _entries(hall_code, clock.today())
    waiting = sorted((e for e in entries if e.state == "waiting"), key=lambda e: _order_key(e, now))
    others = sorted((e for e in entries if e.state != "waiting"), key=lambda e: e.called_at or now, reverse=True)
    return hall_code, waiting + others


def _announcement(row: Any) -> Announcement:
    return Announcement(
        id=row.id, hall=row.hall_code, queue_no=row.queue_no, counter=row.counter, action=row.action, at=row.created_at
    )


async def announcements(hall: str, *, after: int = 0, limit: int = 50) -> list[Announcement]:
    """A hall's screen events after the given id, oldest first (public: numbers and counters only)."""
    rows = await QueueCall.filter(hall_code=hall, id__gt=after).order_by("id").limit(limit)
    return [_announcement(r) for r in rows]


async def latest_calls(hall: str, *, limit: int = 8) -> tuple[list[Announcement], int]:
    """Today's latest calls of a hall (newest first, one per number) and the last event id."""
    today = clock.today()
    rows = await QueueCall.filter(hall_code=hall, day=today, action__in=("call", "recall")).order_by("-id").limit(60)
    last = await QueueCall.filter(hall_code=hall).order_by("-id").first().values_list("id", flat=True)
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.queue_no not in seen:
            seen.add(r.queue_no)
            out.append(_announcement(r))
    return out[:limit], int(last or 0)


async def hall_name(hall: str) -> str:
    """A hall's name for its waiting-room screen; HALL_NOT_FOUND for an unknown hall."""
    name = await Hall.filter(code=hall).first().values_list("name", flat=True)
    if name is None:
        raise HallNotFound(details={"hall": hall})
    return name


async def counter_sections(hall: str) -> dict[str, str]:
    """A hall's listed active counters and the section each serves (the desk puts its own section first)."""
    return dict(await Counter.filter(hall_code=hall, active=True).values_list("code", "section"))
