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
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock, sql
from app.booking import tickets
from app.booking.errors import BookingExists, CheckInNotFound, CheckInUndone, CounterUnknown, UndoExpired
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


class NonceReused(InvalidInput):
    code, message = "NONCE_REUSED", "该 nonce 已用于另一个预约码的扫码，请为每次扫码生成新的 nonce"


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

    One upsert with `RETURNING` (PostgreSQL and SQLite ≥ 3.35 alike), as in `_CHECK_IN_SQL`: the row
    stays locked until our transaction ends, so the number is ours alone.
    """
    p = ("$1", "$2", "$3") if sql.is_postgres() else ("?", "?", "?")
    rows = await QueueCounter._meta.db.execute_query_dict(
        "INSERT INTO queue_counter (hall_code, section, day, issued) "  # noqa: S608 - placeholders only
        f"VALUES ({p[0]}, {p[1]}, {p[2]}, 1) ON CONFLICT (hall_code, section, day) "
        "DO UPDATE SET issued = queue_counter.issued + 1 RETURNING issued",
        [hall, section, day],
    )
    return f"{SECTION_LETTERS.get(section, 'Z')}{rows[0]['issued']:03d}"


def _refusal(result: str, message: str | None = None, **details: Any) -> dict[str, Any]:
    return {"result": result, "ok": False, "message": message or MESSAGES[result], "details": details}


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


_TARGET_FIELDS = (
    "id", "citizen_id", "matter_code", "hall_code", "section", "day", "starts_at", "ends_at", "noshow_at", "status",
    "version", "queue_no", "counter", "checked_in_at", "cancelled_at",
)  # fmt: skip
_TARGET_COLUMNS = (
    ", ".join(f"b.{f}" for f in _TARGET_FIELDS) + ", c.name_enc, c.phone_enc, b.ticket_digest AS issued_digest"
)
_TARGET_SQL = f"SELECT {_TARGET_COLUMNS} FROM booking b LEFT JOIN citizen c ON c.id = b.citizen_id WHERE b.id = $1"  # noqa: S608 - constant columns
_LETTER_SQL = (
    "CASE q.section " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SECTION_LETTERS.items()) + " ELSE 'Z' END"
)

# One statement checks a booking in on PostgreSQL, reading it as it goes: it locks the booking if it
# admits its holder now (b: booked, this ticket's version, inside the check-in window), takes the
# section's next number (q, n), marks the booking (u), writes the check-in (c) and the scan (s), and
# returns the booking with its holder's encrypted name and phone for the answer. A ticket whose
# signature is unchecked must be the one issued ($12, see Verified). Anything else (a refusal, or
# another desk winning this instant) leaves b empty: nothing is written, no number is spent, and
# the caller reads the booking to say why (reading it here too cost the check-ins 10 %: bench/README).
# A nonce already used fails the scan's unique key and undoes all of it.
_CHECK_IN_SQL = f"""
WITH b AS (
    SELECT {_TARGET_COLUMNS} FROM booking b LEFT JOIN citizen c ON c.id = b.citizen_id
    WHERE b.id = $1 AND b.status = 'booked' AND b.version = $2 AND b.starts_at <= $3 AND b.noshow_at >= $4
        AND ($12::text IS NULL OR b.ticket_digest = $12)
    FOR UPDATE OF b
), q AS (
    INSERT INTO queue_counter (hall_code, section, day, issued) SELECT b.hall_code, b.section, $5, 1 FROM b
    ON CONFLICT (hall_code, section, day) DO UPDATE SET issued = queue_counter.issued + 1
    RETURNING section, issued
), n AS (
    SELECT {_LETTER_SQL} || lpad(q.issued::text, greatest(3, length(q.issued::text)), '0') AS issued_no FROM q
), u AS (
    UPDATE booking SET status = 'checked_in', checked_in_at = $4, counter = $6, updated_at = $4, queue_no = n.issued_no
    FROM n WHERE booking.id = $1 RETURNING booking.id
), c AS (
    INSERT INTO checkin (id, booking_id, hall_code, section, day, queue_no, counter, staff_id, kind, created_at)
    SELECT $7, $1, b.hall_code, b.section, $5, n.issued_no, $6, $8, 'booking', $4 FROM b, n, u
), s AS (
    INSERT INTO desk_scan (staff_id, nonce, hall_code, result, booking_id, ticket_digest, created_at, checkin_id)
    SELECT $8, $9, $10, 'checked_in', $1, $11, $4, $7 FROM u
)
SELECT b.*, n.issued_no FROM b, n, u
"""  # noqa: S608 - constant columns and section letters
_SCAN_SQL = (
    "INSERT INTO desk_scan (staff_id, nonce, hall_code, result, booking_id, ticket_digest, response, created_at, "
    "checkin_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


@dataclass(frozen=True)
class Scan:
    """Who scanned what, and when: the scan log row's fixed part."""

    staff_id: uuid.UUID
    nonce: str
    hall_code: str | None
    ticket_digest: str
    at: dt.datetime


def _target(row: Any) -> ScanTarget:
    values = {f: row[f] for f in _TARGET_FIELDS}
    values["status"] = BookingStatus(values["status"])
    return ScanTarget(
        **values, name_enc=row["name_enc"], phone_enc=row["phone_enc"], issued_digest=row["issued_digest"]
    )


async def _load_target(booking_id: uuid.UUID) -> ScanTarget | None:
    if sql.is_postgres():
        async with sql.connection() as conn:
            row = await conn.fetchrow(_TARGET_SQL, booking_id)
        return None if row is None else _target(row)
    booking = await Booking.get_or_none(id=booking_id)
    if booking is None:
        return None
    enc = await Citizen.filter(id=booking.citizen_id).first().values_list("name_enc", "phone_enc")
    name_enc, phone_enc = enc or (None, None)
    return ScanTarget(
        **{f: getattr(booking, f) for f in _TARGET_FIELDS}, name_enc=name_enc, phone_enc=phone_enc,
        issued_digest=booking.ticket_digest,
    )  # fmt: skip


def _citizen_label(deps: BookingDeps, target: ScanTarget) -> dict[str, str | None]:
    """Masked name and phone for the desk (never the full values)."""
    out: dict[str, str | None] = {"name": None, "phone": None}
    for field, masker in (("name", mask_name), ("phone", mask_phone)):
        token = getattr(target, f"{field}_enc")
        if token:
            try:
                out[field] = masker(deps.cipher.decrypt(token, aad=f"citizen:{target.citizen_id}:{field}"))
            except PiiDecryptError:
                out[field] = None
    return out


def _materials(guide: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": m["name"],
            "form": m["form"],
            "form_name": MATERIAL_FORM_NAMES[MaterialForm(m["form"])],
            "copies": m["copies"],
            "required": m["required"],
        }
        for m in guide["materials"]
    ]


async def _booking_view(deps: BookingDeps, target: ScanTarget) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _, _, guide = await guides.guide_document(deps.cache, target.matter_code, base_url=deps.settings.base_url)
    view = {
        "id": str(target.id),
        "matter": {"code": target.matter_code, "name": guide["name"]},
        "hall": target.hall_code,
        "section": target.section,
        "section_name": SECTION_NAMES[Section(target.section)],
        "date": target.day.isoformat(),
        "starts_at": clock.iso(target.starts_at),
        "ends_at": clock.iso(target.ends_at),
        "citizen": _citizen_label(deps, target),
    }
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
    deps: BookingDeps, principal: Principal, ticket: str, counter: str | None
) -> dict[str, Any] | Verified:
    """A refusal the ticket alone gives, or the ticket (a clerk's own hall's goes on unverified: see Verified)."""
    try:
        claims, body, signature = tickets.decode(ticket)
    except tickets.TicketInvalid as exc:
        return _refusal("invalid", reason=exc.reason)
    if principal.role != "admin" and claims.hall == principal.hall:
        return Verified(claims, await _early(deps, claims.hall), body, signature, tickets.digest(body, signature))
    return await _verify(deps, principal, claims, body, signature, counter)


async def _verify(
    deps: BookingDeps,
    principal: Principal,
    claims: tickets.TicketClaims,
    body: bytes,
    signature: bytes,
    counter: str | None,
) -> dict[str, Any] | Verified:
    """Check the signature, then the hall: a refusal (invalid, wrong hall), else the verified ticket."""
    try:
        tickets.check_signature(await deps.tokens.signed(claims.kid, tickets.CONTEXT + body, signature))
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
    if principal.role == "admin":  # clerks had their counter checked against their own hall already
        await _check_counter(deps, claims.hall, counter)
    return Verified(claims, await _early(deps, claims.hall), body, signature)


async def _early(deps: BookingDeps, hall: str) -> dt.timedelta:
    """How long before its slot a booking of this hall may check in (a ticket's hall is its booking's)."""
    return dt.timedelta(minutes=(await calendar_of(deps, hall)).config.early_minutes)


async def _decide(
    deps: BookingDeps, ticket: Verified, target: ScanTarget | None, now: dt.datetime
) -> dict[str, Any] | None:
    """Why the booking (read after the check-in statement) does not admit its holder now, or None when it does."""
    claims = ticket.claims
    if target is None or claims.version > target.version:
        return _refusal("invalid", reason="unknown")
    if claims.version < target.version:
        return _refusal("revoked", reason="rescheduled", booking_id=str(target.id))
    if target.status is BookingStatus.cancelled:
        return _refusal("cancelled", booking_id=str(target.id), cancelled_at=clock.iso(target.cancelled_at))
    if target.status is BookingStatus.checked_in:
        return await _already(deps, target)
    opens = target.starts_at - ticket.early
    closes = target.noshow_at  # what the no-show job goes by, fixed when the booking was made
    if target.status is BookingStatus.no_show or now > closes:
        return _refusal(
            "too_late",
            f"已超过签到时间（{clock.iso(closes)[11:16]} 截止），请重新预约或现场取号",
            closed_at=clock.iso(closes),
            booking_id=str(target.id),
        )
    if now < opens:
        return _refusal(
            "too_early",
            f"未到签到时间，请于 {clock.iso(opens)[:16].replace('T', ' ')} 后签到",
            opens_at=clock.iso(opens),
            booking_id=str(target.id),
        )
    return None


async def _already(deps: BookingDeps, target: ScanTarget) -> dict[str, Any]:
    at = clock.iso(target.checked_in_at) or ""
    where = f"在 {target.counter} 窗口" if target.counter else ""
    view, materials = await _booking_view(deps, target)
    refusal = _refusal(
        "already_checked_in",
        f"该预约已于 {at[11:16]} {where}签到，排队号 {target.queue_no}".replace("  ", " "),
        checked_in_at=at,
        counter=target.counter,
        queue_no=target.queue_no,
        booking_id=str(target.id),
    )
    refusal.update(queue_no=target.queue_no, booking=view, materials=materials)
    return refusal


async def _answer(
    deps: BookingDeps, target: ScanTarget, *, queue_no: str, checkin_id: uuid.UUID, at: dt.datetime,
    counter: str | None,
) -> str:  # fmt: skip
    """A check-in's answer: built when it is made, and again for a replay of its nonce (same bytes)."""
    view, materials = await _booking_view(deps, target)
    iso = clock.iso(at)
    return dumps(
        {
            "result": "checked_in",
            "ok": True,
            "message": MESSAGES["checked_in"],
            "queue_no": queue_no,
            "checkin_id": str(checkin_id),
            "checked_in_at": iso,
            "counter": counter,
            "undo_until": clock.iso(at + dt.timedelta(minutes=deps.settings.checkin_undo_minutes)),
            "booking": view,
            "materials": materials,
            "details": {},
            "scanned_at": iso,
        }
    ).decode()


async def _commit_check_in(deps: BookingDeps, ticket: Verified, counter: str | None, scan: Scan) -> str | None:
    """Check the booking in if it admits its holder now, and log the scan, all or nothing; the answer, else None."""
    claims, now, today, checkin_id = ticket.claims, scan.at, clock.today(), uuid.uuid4()
    if sql.is_postgres():
        async with sql.connection() as conn:
            row = await conn.fetchrow(
                _CHECK_IN_SQL, claims.booking_id, claims.version, now + ticket.early, now, today, counter,
                checkin_id, scan.staff_id, scan.nonce, scan.hall_code, scan.ticket_digest, ticket.digest,
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
            queue_no = await next_queue_no(target.hall_code, target.section, today)
            await CheckIn.create(
                id=checkin_id, booking_id=target.id, hall_code=target.hall_code, section=target.section, day=today,
                queue_no=queue_no, counter=counter, staff_id=scan.staff_id, kind="booking", created_at=now,
            )  # fmt: skip
            await Booking.filter(id=target.id).update(queue_no=queue_no)
            await _log_scan(scan, "checked_in", str(target.id), None, checkin_id=checkin_id)
    return await _answer(deps, target, queue_no=queue_no, checkin_id=checkin_id, at=now, counter=counter)


async def _log_scan(
    scan: Scan, result: str, booking_id: str | None, text: str | None, *, checkin_id: uuid.UUID | None = None
) -> None:
    """The scan's row with its answer (its unique nonce makes a repeat fail here)."""
    bid = uuid.UUID(booking_id) if booking_id else None
    if sql.is_postgres():
        async with sql.connection() as conn:
            await conn.execute(
                _SCAN_SQL, scan.staff_id, scan.nonce, scan.hall_code, result, bid, scan.ticket_digest, text, scan.at,
                checkin_id,
            )  # fmt: skip
        return
    await DeskScan.create(
        staff_id=scan.staff_id, nonce=scan.nonce, hall_code=scan.hall_code, result=result,
        booking_id=bid, ticket_digest=scan.ticket_digest, response=text, created_at=scan.at, checkin_id=checkin_id,
    )  # fmt: skip


async def _replay(deps: BookingDeps, prior: DeskScan) -> str | None:
    """The answer a scan got, for a repeat of its nonce: stored, or built again from the check-in it made."""
    if prior.response is not None:
        return prior.response
    checkin = await CheckIn.get_or_none(id=prior.checkin_id) if prior.checkin_id else None
    target = await _load_target(checkin.booking_id) if checkin and checkin.booking_id else None
    if checkin is None or target is None:
        return None
    return await _answer(
        deps, target, queue_no=checkin.queue_no, checkin_id=checkin.id, at=checkin.created_at, counter=checkin.counter
    )


async def check_in(deps: BookingDeps, *, principal: Principal, ticket: str, nonce: str, counter: str | None) -> str:
    """Verify a scanned ticket and check its holder in; the answer's JSON text (a replay is byte-identical)."""
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
        outcome = await _read_ticket(deps, principal, ticket, counter)
        for _ in range(3):
            if isinstance(outcome, Verified):
                # First try to check in (one statement); only when the booking does not admit its
                # holder now is it read, to say why.
                text = await _commit_check_in(deps, outcome, counter, scan)
                if text is not None:
                    return text
                target = await _load_target(outcome.claims.booking_id)
                # Not the ticket issued for this booking (or no booking): its signature decides first.
                if outcome.digest is not None and (target is None or target.issued_digest != outcome.digest):
                    outcome = await _verify(deps, principal, outcome.claims, outcome.body, outcome.signature, counter)
                refusal = await _decide(deps, outcome, target, scan.at) if isinstance(outcome, Verified) else outcome
                if refusal is None:
                    continue  # it admits its holder now: another desk (or an undo) changed it this instant
                outcome = refusal
            outcome["scanned_at"] = clock.iso(scan.at)
            booking_id = (outcome.get("booking") or {}).get("id") or outcome["details"].get("booking_id")
            text = dumps(outcome).decode()
            # A scan repeating a committed nonce fails on the unique key here and answers what the first one got.
            await _log_scan(scan, outcome["result"], booking_id, text)
            return text
    except IntegrityError:
        prior = await DeskScan.get_or_none(staff_id=staff_id, nonce=nonce)
        if prior is None:
            raise Conflict("相同的扫码正在处理中", code="SCAN_IN_FLIGHT") from None
        if prior.ticket_digest != scan.ticket_digest:  # a nonce names one scan: never replay it for another ticket
            raise NonceReused() from None
        text = await _replay(deps, prior)
        if text is None:
            raise Conflict("相同的扫码正在处理中", code="SCAN_IN_FLIGHT") from None
        return text
    raise Conflict("该预约正在被其他窗口处理，请重扫", code="SCAN_IN_FLIGHT")


async def walk_in(
    deps: BookingDeps, *, principal: Principal, section: str, counter: str | None, hall: str | None
) -> dict[str, Any]:
    """A queue number for a citizen without a booking."""
    hall_code = _hall_of(principal, hall)
    await calendar_of(deps, hall_code)  # HALL_NOT_FOUND for an unknown hall (cached)
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
    except IntegrityError:  # since checking in, the citizen booked the same matter for the same day
        raise BookingExists("该市民已另行预约同一事项同一天的时段，不能撤销此次签到") from None
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
