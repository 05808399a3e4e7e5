"""The front desk: verify a ticket and check its holder in, queue numbers, walk-ins, undo, revocations.

A scan always gets an answer the desk can show (`checked_in` or a typed refusal), never a 5xx
for what a scanner typed. Every scan is logged with its nonce: the same nonce replays the first
answer (a refusal's is stored; a check-in's is built again from its check-in row) and writes
nothing new. Of many simultaneous scans of one ticket exactly one wins the conditional UPDATE of
the booking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, replace
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.booking import present, tickets
from app.booking import sql as booking_sql
from app.booking.calendars import calendar_of
from app.booking.deps import BookingDeps
from app.booking.errors import BookingExists, CheckInNotFound, CheckInUndone, CounterUnknown, UndoExpired
from app.booking.models import Booking, CheckIn, DeskScan, RevokedTicket
from app.booking.types import (
    BookingStatus,
    CheckedIn,
    CheckInRecord,
    DeskBooking,
    Material,
    Revocation,
    RevocationList,
    ScanAnswer,
    ScanRefusal,
    StoredScan,
    Undone,
    WalkIn,
)
from app.errors import Conflict, InvalidInput
from app.jsontext import dumps
from app.matters import guides
from app.matters.models import Hall
from auth.errors import OutOfScope
from auth.models import Citizen
from auth.pii import PiiDecryptError, mask_name, mask_phone
from auth.tokens import Principal

MESSAGES = {
    "invalid": "无效的预约码，请核对后重扫",
    "revoked": "该预约码已失效（预约已改约），请出示最新的预约码",
    "cancelled": "该预约已取消",
    "wrong_hall": "该预约不在本大厅办理",
    "too_early": "未到签到时间",
    "too_late": "已超过签到时间",
    "already_checked_in": "该预约已签到",
}


class NonceReused(InvalidInput):
    code, message = "NONCE_REUSED", "该 nonce 已用于另一个预约码的扫码，请为每次扫码生成新的 nonce"


class HallRequired(InvalidInput):
    code, message = "HALL_REQUIRED", "请指定大厅（管理员账号不属于任何大厅）"


def _hall_of(principal: Principal, hall: str | None = None) -> str:
    """The hall a desk action applies to: the clerk's own (admins name one), within the staff's scope."""
    if principal.role == "admin" and not hall:
        raise HallRequired()
    chosen = hall or principal.hall
    if chosen is None or not principal.covers(department=None, hall=chosen):
        raise OutOfScope(details={"hall": hall})
    return chosen


async def _check_counter(deps: BookingDeps, hall: str, counter: str | None) -> None:
    """When a hall lists its counters, a desk must name one of them."""
    if counter is None:
        return
    codes = (await calendar_of(deps, hall)).counters
    if codes and counter not in codes:
        raise CounterUnknown(details={"counter": counter, "counters": sorted(codes)})


def _refusal(result: str, at: dt.datetime, message: str | None = None, **details: Any) -> ScanRefusal:
    return ScanRefusal(result=result, message=message or MESSAGES[result], details=details, scanned_at=at)


@dataclass
class ScanTarget:
    """A booking as a scan sees it, with its holder's encrypted name and phone (one read)."""

    id: uuid.UUID
    citizen_id: uuid.UUID
    matter_code: str
    hall_code: str
    section: str
    day: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    noshow_at: dt.datetime
    status: BookingStatus
    version: int
    queue_no: str | None
    counter: str | None
    checked_in_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    name_enc: str | None
    phone_enc: str | None
    issued_digest: str | None = None  # the digest of the ticket issued for this version (booking.ticket_digest)


@dataclass(frozen=True)
class Scan:
    """Who scanned what, and when: the scan log row's fixed part."""

    staff_id: uuid.UUID
    nonce: str
    hall_code: str | None
    ticket_digest: str
    at: dt.datetime


def _target(row: Any) -> ScanTarget:
    values = {f: row[f] for f in booking_sql.TARGET_FIELDS}
    values["status"] = BookingStatus(values["status"])
    return ScanTarget(
        **values, name_enc=row["name_enc"], phone_enc=row["phone_enc"], issued_digest=row["issued_digest"]
    )


async def _load_target(booking_id: uuid.UUID) -> ScanTarget | None:
    if booking_sql.enabled():
        row = await booking_sql.target(booking_id)
        return None if row is None else _target(row)
    booking = await Booking.get_or_none(id=booking_id)
    if booking is None:
        return None
    enc = await Citizen.filter(id=booking.citizen_id).first().values_list("name_enc", "phone_enc")
    name_enc, phone_enc = enc or (None, None)
    return ScanTarget(
        **{f: getattr(booking, f) for f in booking_sql.TARGET_FIELDS}, name_enc=name_enc, phone_enc=phone_enc,
        issued_digest=booking.ticket_digest,
    )  # fmt: skip


def _citizen_label(deps: BookingDeps, target: ScanTarget) -> tuple[str | None, str | None]:
    """Masked name and phone for the desk (never the full values)."""
    out: list[str | None] = []
    for field, masker in (("name", mask_name), ("phone", mask_phone)):
        token = getattr(target, f"{field}_enc")
        value = None
        if token:
            try:
                value = masker(deps.cipher.decrypt(token, aad=f"citizen:{target.citizen_id}:{field}"))
            except PiiDecryptError:
                value = None
        out.append(value)
    return out[0], out[1]


def _materials(guide: dict[str, Any]) -> tuple[Material, ...]:
    return tuple(
        Material(name=m["name"], form=m["form"], copies=m["copies"], required=m["required"]) for m in guide["materials"]
    )


async def _booking_view(deps: BookingDeps, target: ScanTarget) -> tuple[DeskBooking, tuple[Material, ...]]:
    _, _, guide = await guides.guide_document(deps.cache, target.matter_code, base_url=deps.settings.base_url)
    name, phone = _citizen_label(deps, target)
    view = DeskBooking(
        id=target.id, matter_code=target.matter_code, matter_name=guide["name"], hall=target.hall_code,
        section=target.section, day=target.day, starts_at=target.starts_at, ends_at=target.ends_at,
        citizen_name=name, citizen_phone=phone,
    )  # fmt: skip
    return view, _materials(guide)


@dataclass(frozen=True)
class Verified:
    """A ticket scanned where it may be, with its hall's check-in window.

    `digest` is set while its signature is unchecked: the check-in statement then admits it only if
    it is the very ticket issued for its booking (booking.ticket_digest), which we signed. Any other
    outcome checks the signature before saying anything about the booking.
    """

    claims: tickets.TicketClaims
    early: dt.timedelta  # how long before its slot a booking may check in
    body: bytes
    signature: bytes
    digest: str | None = None


async def _read_ticket(
    deps: BookingDeps, principal: Principal, ticket: str, counter: str | None, at: dt.datetime
) -> ScanRefusal | Verified:
    """A refusal the ticket alone gives, or the ticket (a clerk's own hall's goes on unverified: see Verified)."""
    try:
        claims, body, signature = tickets.decode(ticket)
    except tickets.TicketInvalid as exc:
        return _refusal("invalid", at, reason=exc.reason)
    if principal.role != "admin" and claims.hall == principal.hall:
        return Verified(claims, await _early(deps, claims.hall), body, signature, tickets.digest(body, signature))
    return await _verify(deps, principal, claims, body, signature, counter, at)


async def _verify(
    deps: BookingDeps,
    principal: Principal,
    claims: tickets.TicketClaims,
    body: bytes,
    signature: bytes,
    counter: str | None,
    at: dt.datetime,
) -> ScanRefusal | Verified:
    """Check the signature, then the hall: a refusal (invalid, wrong hall), else the verified ticket."""
    try:
        tickets.check_signature(await deps.tokens.signed(claims.kid, tickets.CONTEXT + body, signature))
    except tickets.TicketInvalid as exc:
        return _refusal("invalid", at, reason=exc.reason)
    if not principal.covers(department=None, hall=claims.hall):
        hall = await Hall.get_or_none(code=claims.hall)
        return _refusal(
            "wrong_hall",
            at,
            f"该预约应到「{hall.name if hall else claims.hall}」办理",
            ticket_hall=claims.hall,
            hall_name=hall.name if hall else None,
            booking_id=str(claims.booking_id),
        )
    if principal.role == "admin":  # clerks had their counter checked against their own hall already
        await _check_counter(deps, claims.hall, counter)
    return Verified(claims, await _early(deps, claims.hall), body, signature)


async def _early(deps: BookingDeps, hall: str) -> dt.timedelta:
    """How long before its slot a booking of this hall may check in (a ticket's hall is its booking's)."""
    return dt.timedelta(minutes=(await calendar_of(deps, hall)).config.early_minutes)


async def _decide(
    deps: BookingDeps, ticket: Verified, target: ScanTarget | None, now: dt.datetime
) -> ScanRefusal | None:
    """Why the booking (read after the check-in statement) does not admit its holder now, or None when it does."""
    claims = ticket.claims
    if target is None or claims.version > target.version:
        return _refusal("invalid", now, reason="unknown")
    if claims.version < target.version:
        return _refusal("revoked", now, reason="rescheduled", booking_id=str(target.id))
    if target.status is BookingStatus.cancelled:
        return _refusal("cancelled", now, booking_id=str(target.id), cancelled_at=clock.iso(target.cancelled_at))
    if target.status is BookingStatus.checked_in:
        return await _already(deps, target, now)
    opens = target.starts_at - ticket.early
    closes = target.noshow_at  # what the no-show job goes by, fixed when the booking was made
    if target.status is BookingStatus.no_show or now > closes:
        return _refusal(
            "too_late",
            now,
            f"已超过签到时间（{clock.iso(closes)[11:16]} 截止），请重新预约或现场取号",
            closed_at=clock.iso(closes),
            booking_id=str(target.id),
        )
    if now < opens:
        return _refusal(
            "too_early",
            now,
            f"未到签到时间，请于 {clock.iso(opens)[:16].replace('T', ' ')} 后签到",
            opens_at=clock.iso(opens),
            booking_id=str(target.id),
        )
    return None


async def _already(deps: BookingDeps, target: ScanTarget, now: dt.datetime) -> ScanRefusal:
    at = clock.iso(target.checked_in_at) or ""
    where = f"在 {target.counter} 窗口" if target.counter else ""
    view, materials = await _booking_view(deps, target)
    return ScanRefusal(
        result="already_checked_in",
        message=f"该预约已于 {at[11:16]} {where}签到，排队号 {target.queue_no}".replace("  ", " "),
        details={
            "checked_in_at": at, "counter": target.counter, "queue_no": target.queue_no, "booking_id": str(target.id),
        },
        scanned_at=now,
        queue_no=target.queue_no,
        booking=view,
        materials=materials,
    )  # fmt: skip


async def _with_booking(deps: BookingDeps, refusal: ScanRefusal) -> ScanRefusal:
    """A refusal about a known booking names it (matter, time, masked holder), so the desk can help."""
    booking_id = refusal.details.get("booking_id")
    if refusal.booking is not None or not booking_id:
        return refusal
    target = await _load_target(uuid.UUID(booking_id))
    if target is None:
        return refusal
    view, materials = await _booking_view(deps, target)
    return replace(refusal, booking=view, materials=materials, queue_no=target.queue_no)


async def _answer(
    deps: BookingDeps, target: ScanTarget, *, queue_no: str, checkin_id: uuid.UUID, at: dt.datetime,
    counter: str | None,
) -> CheckedIn:  # fmt: skip
    """A check-in's answer: built when it is made, and again for a replay of its nonce (the same)."""
    view, materials = await _booking_view(deps, target)
    return CheckedIn(
        queue_no=queue_no, checkin_id=checkin_id, checked_in_at=at, counter=counter,
        undo_until=at + dt.timedelta(minutes=deps.settings.checkin_undo_minutes), booking=view, materials=materials,
        scanned_at=at,
    )  # fmt: skip


async def _commit_check_in(deps: BookingDeps, ticket: Verified, counter: str | None, scan: Scan) -> CheckedIn | None:
    """Check the booking in if it admits its holder now, and log the scan, all or nothing; the answer, else None."""
    claims, now, today, checkin_id = ticket.claims, scan.at, clock.today(), uuid.uuid4()
    if booking_sql.enabled():
        row = await booking_sql.check_in(
            {"booking_id": claims.booking_id, "version": claims.version, "opens_by": now + ticket.early, "now": now,
             "today": today, "counter": counter, "checkin_id": checkin_id, "staff_id": scan.staff_id,
             "nonce": scan.nonce, "scan_hall": scan.hall_code, "ticket_digest": scan.ticket_digest,
             "issued_digest": ticket.digest,
             **audit.entry_values(action="desk.checkin", object_type="booking", object_id=claims.booking_id,
                                  summary="窗口扫码签到", changes={"checkin_id": checkin_id, "counter": counter})}
        )  # fmt: skip
        if row is None:
            return None
        target, queue_no = _target(row), row["issued_no"]
    else:
        async with in_transaction():
            admits = Booking.filter(
                id=claims.booking_id, status=BookingStatus.booked, version=claims.version,
                starts_at__lte=now + ticket.early, noshow_at__gte=now,
            )  # fmt: skip
            if ticket.digest is not None:
                admits = admits.filter(ticket_digest=ticket.digest)
            won = await admits.update(
                status=BookingStatus.checked_in, checked_in_at=now, counter=counter, updated_at=now
            )
            if not won:
                return None
            target = await _load_target(claims.booking_id)
            assert target is not None
            # Last: the hall section's counter row stays locked until commit, so take it as late as possible.
            queue_no = await booking_sql.next_queue_no(target.hall_code, target.section, today)
            await CheckIn.create(
                id=checkin_id, booking_id=target.id, hall_code=target.hall_code, section=target.section, day=today,
                queue_no=queue_no, counter=counter, staff_id=scan.staff_id, kind="booking", created_at=now,
            )  # fmt: skip
            await Booking.filter(id=target.id).update(queue_no=queue_no)
            await _log_scan(scan, "checked_in", str(target.id), None, checkin_id=checkin_id)
            await audit.record(
                action="desk.checkin",
                object_type="booking",
                object_id=claims.booking_id,
                summary=f"窗口扫码签到，取号 {queue_no}",
                changes={"checkin_id": checkin_id, "counter": counter},
            )
    return await _answer(deps, target, queue_no=queue_no, checkin_id=checkin_id, at=now, counter=counter)


async def _log_scan(
    scan: Scan, result: str, booking_id: str | None, text: str | None, *, checkin_id: uuid.UUID | None = None
) -> None:
    """The scan's row with its answer (its unique nonce makes a repeat fail here)."""
    bid = uuid.UUID(booking_id) if booking_id else None
    if booking_sql.enabled():
        await booking_sql.log_scan(
            {"staff_id": scan.staff_id, "nonce": scan.nonce, "scan_hall": scan.hall_code, "result": result,
             "booking_id": bid, "ticket_digest": scan.ticket_digest, "response": text, "now": scan.at,
             "checkin_id": checkin_id}
        )  # fmt: skip
        return
    await DeskScan.create(
        staff_id=scan.staff_id, nonce=scan.nonce, hall_code=scan.hall_code, result=result,
        booking_id=bid, ticket_digest=scan.ticket_digest, response=text, created_at=scan.at, checkin_id=checkin_id,
    )  # fmt: skip


async def _replay(deps: BookingDeps, prior: DeskScan) -> CheckedIn | StoredScan | None:
    """The answer a scan got, for a repeat of its nonce: stored, or built again from the check-in it made."""
    if prior.response is not None:
        return StoredScan(prior.response)
    checkin = await CheckIn.get_or_none(id=prior.checkin_id) if prior.checkin_id else None
    target = await _load_target(checkin.booking_id) if checkin and checkin.booking_id else None
    if checkin is None or target is None:
        return None
    return await _answer(
        deps, target, queue_no=checkin.queue_no, checkin_id=checkin.id, at=checkin.created_at, counter=checkin.counter
    )


async def check_in(
    deps: BookingDeps, *, principal: Principal, ticket: str, nonce: str, counter: str | None
) -> ScanAnswer:
    """Verify a scanned ticket and check its holder in: the check-in, a typed refusal, or a repeated nonce's answer.

    A refusal is logged with its answer's JSON text (present.refusal_json), which a repeat of the nonce replays.
    """
    staff_id = uuid.UUID(principal.id)
    if principal.hall:
        await _check_counter(deps, principal.hall, counter)
    scan = Scan(
        staff_id=staff_id,
        nonce=nonce,
        hall_code=principal.hall,
        ticket_digest=hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest(),
        at=clock.now(),
    )
    try:
        outcome = await _read_ticket(deps, principal, ticket, counter, scan.at)
        for _ in range(3):
            if isinstance(outcome, Verified):
                # First try to check in (one statement); only when the booking does not admit its
                # holder now is it read, to say why.
                answer = await _commit_check_in(deps, outcome, counter, scan)
                if answer is not None:
                    return answer
                target = await _load_target(outcome.claims.booking_id)
                # Not the ticket issued for this booking (or no booking): its signature decides first.
                if outcome.digest is not None and (target is None or target.issued_digest != outcome.digest):
                    outcome = await _verify(
                        deps, principal, outcome.claims, outcome.body, outcome.signature, counter, scan.at
                    )
                refusal = await _decide(deps, outcome, target, scan.at) if isinstance(outcome, Verified) else outcome
                if refusal is None:
                    continue  # it admits its holder now: another desk (or an undo) changed it this instant
                outcome = refusal
            outcome = await _with_booking(deps, outcome)
            text = dumps(present.refusal_json(outcome)).decode()
            # A scan repeating a committed nonce fails on the unique key here and answers what the first one got.
            await _log_scan(scan, outcome.result, outcome.booking_id, text)
            return outcome
    except IntegrityError:
        prior = await DeskScan.get_or_none(staff_id=staff_id, nonce=nonce)
        if prior is None:
            raise Conflict("相同的扫码正在处理中", code="SCAN_IN_FLIGHT") from None
        if prior.ticket_digest != scan.ticket_digest:  # a nonce names one scan: never replay it for another ticket
            raise NonceReused() from None
        replayed = await _replay(deps, prior)
        if replayed is None:
            raise Conflict("相同的扫码正在处理中", code="SCAN_IN_FLIGHT") from None
        return replayed
    raise Conflict("该预约正在被其他窗口处理，请重扫", code="SCAN_IN_FLIGHT")


async def walk_in(
    deps: BookingDeps, *, principal: Principal, section: str, counter: str | None, hall: str | None
) -> WalkIn:
    """A queue number for a citizen without a booking."""
    hall_code = _hall_of(principal, hall)
    await calendar_of(deps, hall_code)  # HALL_NOT_FOUND for an unknown hall (cached)
    await _check_counter(deps, hall_code, counter)
    now, today = clock.now(), clock.today()
    async with in_transaction():
        queue_no = await booking_sql.next_queue_no(hall_code, section, today)
        checkin = await CheckIn.create(
            id=uuid.uuid4(), booking_id=None, hall_code=hall_code, section=section, day=today,
            queue_no=queue_no, counter=counter, staff_id=uuid.UUID(principal.id), kind="walk_in", created_at=now,
        )  # fmt: skip
        await audit.record(
            principal,
            action="desk.walk_in",
            object_type="checkin",
            object_id=checkin.id,
            summary=f"现场取号 {queue_no}（{hall_code}）",
            changes={"section": section, "counter": counter},
        )
    return WalkIn(
        checkin_id=checkin.id, queue_no=queue_no, hall=hall_code, section=section, issued_at=now,
        undo_until=now + dt.timedelta(minutes=deps.settings.checkin_undo_minutes),
    )  # fmt: skip


async def undo(deps: BookingDeps, *, principal: Principal, checkin_id: str) -> Undone:
    """Take back a check-in within a few minutes (the booking admits its holder again)."""
    try:
        cid = uuid.UUID(checkin_id)
    except ValueError:
        raise CheckInNotFound() from None
    checkin = await CheckIn.get_or_none(id=cid)
    if checkin is None or not principal.covers(department=None, hall=checkin.hall_code):
        raise CheckInNotFound()
    if checkin.undone_at is not None:
        raise CheckInUndone(details={"undone_at": clock.iso(checkin.undone_at)})
    now = clock.now()
    if now - checkin.created_at > dt.timedelta(minutes=deps.settings.checkin_undo_minutes):
        raise UndoExpired(details={"minutes": deps.settings.checkin_undo_minutes})
    if checkin.booking_id is not None:
        noshow_at = await Booking.filter(id=checkin.booking_id).first().values_list("noshow_at", flat=True)
        if noshow_at is not None and now >= noshow_at:  # booked again, it would be a no-show at once
            raise UndoExpired("该预约的签到时间已过，不能撤销签到", details={"closed_at": clock.iso(noshow_at)})
    try:
        async with in_transaction():
            if not await CheckIn.filter(id=cid, undone_at__isnull=True).update(undone_at=now):
                raise CheckInUndone()
            if checkin.booking_id is not None:
                await Booking.filter(id=checkin.booking_id, status=BookingStatus.checked_in).update(
                    status=BookingStatus.booked, checked_in_at=None, queue_no=None, counter=None, updated_at=now
                )
            await audit.record(
                principal,
                action="desk.undo",
                object_type="checkin",
                object_id=cid,
                summary=f"撤销签到 {checkin.queue_no}",
                changes={"booking_id": checkin.booking_id},
            )
    except IntegrityError:  # since checking in, the citizen booked the same matter for the same day
        raise BookingExists("该市民已另行预约同一事项同一天的时段，不能撤销此次签到") from None
    return Undone(checkin_id=cid, queue_no=checkin.queue_no, undone_at=now)


async def list_checkins(*, principal: Principal, hall: str | None, day: dt.date | None) -> tuple[CheckInRecord, ...]:
    """A hall's check-ins of a day, latest first (the desk page's recent list)."""
    hall_code = _hall_of(principal, hall)
    rows = await CheckIn.filter(hall_code=hall_code, day=day or clock.today()).order_by("-created_at").limit(200)
    return tuple(
        CheckInRecord(
            checkin_id=r.id,
            kind=r.kind,
            queue_no=r.queue_no,
            section=r.section,
            counter=r.counter,
            booking_id=r.booking_id,
            created_at=r.created_at,
            undone_at=r.undone_at,
        )
        for r in rows
    )


async def revocations(*, principal: Principal, hall: str | None, since: dt.datetime | None) -> RevocationList:
    """Revoked tickets of a hall whose slots are not over: what an offline desk must refuse."""
    hall_code = _hall_of(principal, hall)
    now = clock.now()
    query = RevokedTicket.filter(hall_code=hall_code, expires_at__gt=now)
    if since is not None:
        query = query.filter(revoked_at__gte=since.astimezone(dt.UTC))  # SQLite compares stored UTC text
    rows = await query.order_by("revoked_at", "id")
    return RevocationList(
        hall=hall_code,
        generated_at=now,
        items=tuple(
            Revocation(
                booking_id=r.booking_id,
                version=r.version,
                reason=r.reason,
                revoked_at=r.revoked_at,
                expires_at=r.expires_at,
            )
            for r in rows
        ),
    )
