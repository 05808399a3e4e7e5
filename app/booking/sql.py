"""Booking's hand-written SQL: PostgreSQL's one-statement booking and check-in, and the queue number upsert.

The ORM path (app/booking/service.py, desk.py) is the reference and SQLite's path; on PostgreSQL the
hot writes run here as fixed statements with named parameters (app/sql.py `named`), which asyncpg
prepares once per connection. The outbox's and the idempotency records' parts of the booking
statement are their modules' fragments (app/notify/sql.py, app/idempotency.py).
tests/unit/booking/test_paths_agree.py shows both paths give the same answers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from app import idempotency, sql
from app.audit import service as audit
from app.booking.models import Booking, QueueCounter
from app.booking.types import SECTION_LETTERS
from app.idempotency import Claim, Pending
from app.notify import sql as outbox

_ORM_ONLY: ContextVar[bool] = ContextVar("booking_orm_only", default=False)


def enabled() -> bool:
    """Whether booking's hot writes take this module's statements: on PostgreSQL, unless `orm_only` holds."""
    return not _ORM_ONLY.get() and sql.is_postgres()


@contextmanager
def orm_only() -> Iterator[None]:
    """Take the ORM path on any backend within this context (tests compare both paths on PostgreSQL)."""
    token = _ORM_ONLY.set(True)
    try:
        yield
    finally:
        _ORM_ONLY.reset(token)


# -- slots and the citizen's lock -----------------------------------------------------------------

ENSURE_SLOT = sql.named("""
INSERT INTO booking_slot (id, hall_code, section, day, starts_at, ends_at, capacity, booked)
VALUES (:id, :hall_code, :section, :day, :starts_at, :ends_at, :capacity, 0) ON CONFLICT (id) DO NOTHING
""")

LOCK_CITIZEN = sql.named("SELECT 1 FROM citizen WHERE id = :citizen_id FOR UPDATE")


async def ensure_slot(values: dict[str, Any]) -> None:
    """Create a slot's row unless it exists (ENSURE_SLOT's values)."""
    async with sql.connection() as conn:
        await conn.execute(ENSURE_SLOT.text, *ENSURE_SLOT.args(values))


async def lock_citizen(citizen_id: uuid.UUID) -> None:
    """Lock the citizen's row until the transaction ends."""
    async with sql.connection() as conn:
        await conn.execute(LOCK_CITIZEN.text, citizen_id)


# -- booking ---------------------------------------------------------------------------------------

# What a booking needs to know, in one read: a seat left, the key's record, and only when a seat is
# left (the storm's commonest answer is "full") the citizen's booking sequence and bookings for the caps.
# Read first only for a slot this worker last found full (service.check_seat); a missing row reads as full.
SEEN = sql.named(f"""
WITH s AS (SELECT coalesce((SELECT booked < capacity FROM booking_slot WHERE id = :slot_id), false) AS seat)
SELECT s.seat,
    {idempotency.KNOWN_SQL} AS known,
    CASE WHEN s.seat THEN coalesce((SELECT seq FROM booking_account WHERE citizen_id = :citizen_id), 0) END AS seq,
    CASE WHEN s.seat THEN ARRAY(
        SELECT (status, matter_code, day) FROM booking
        WHERE citizen_id = :citizen_id AND (status = 'booked' OR (status = 'no_show' AND day >= :noshow_since))
    ) END AS rows
FROM s
""")  # noqa: S608 - constant fragments


@dataclass(frozen=True)
class Seen:
    """One read for a booking on PostgreSQL: a seat left, the key known, the citizen's sequence and bookings."""

    seat: bool
    known: bool
    seq: int = 0
    rows: list[tuple[str, str, dt.date]] = field(default_factory=list)


async def seen(*, slot_id: str, citizen_id: uuid.UUID, owner: str, key: str, noshow_since: dt.date) -> Seen:
    """SEEN for a slot, a citizen and an idempotency key."""
    values = {
        "slot_id": slot_id, "citizen_id": citizen_id, "idem_owner": owner, "idem_key": key,
        "noshow_since": noshow_since,
    }  # fmt: skip
    async with sql.connection() as conn:
        row = await conn.fetchrow(SEEN.text, *SEEN.args(values))
    return Seen(row["seat"], row["known"], row["seq"] or 0, [tuple(r) for r in row["rows"] or ()])


_RECORD_KEY, _COMPLETE_CLAIM = idempotency.answer_sql("b", at=":created_at")

# After SEEN (a slot last found full shows a seat again), PostgreSQL books in one statement: the citizen's booking
# sequence (a), if it is still the one read and the slot still shows a seat; then the seat (s), the
# booking (b), its reminder (n, the outbox's fragment) and the idempotent answer (k: a new key with
# its answer, or c: a claimed key's answer; idempotency's fragments). A concurrent booking of the
# same citizen bumped the sequence first: a is empty after its row lock (PostgreSQL re-reads a
# locked row), nothing is written, and the caller tries again (TRY_BOOK). The caps were checked in Python on
# what was read, which the sequence proves current.
# What BOOK and TRY_BOOK write once the seat CTE `s` has taken a seat: the booking, its reminder in the outbox,
# the key's answer and the claim completed.
_WRITE_BOOKING = f"""b AS (
    INSERT INTO booking (id, citizen_id, matter_code, hall_code, section, slot_id, day, starts_at, ends_at,
        noshow_at, status, version, created_at, updated_at, ticket_digest)
    SELECT :id, :citizen_id, :matter_code, :hall_code, :section, :slot_id, :day, :starts_at, :ends_at,
        :noshow_at, 'booked', 1, :created_at, :created_at, :ticket_digest FROM s
    RETURNING id
), n AS (
    {outbox.pending_insert("b", at=":created_at")}
), k AS (
    {_RECORD_KEY}
), c AS (
    {_COMPLETE_CLAIM}
)"""  # noqa: S608 - constant fragments

BOOK = sql.named(f"""
WITH a AS (
    INSERT INTO booking_account AS acc (citizen_id, seq)
    SELECT :citizen_id, 1 WHERE EXISTS (SELECT 1 FROM booking_slot WHERE id = :slot_id AND booked < capacity)
    ON CONFLICT (citizen_id) DO UPDATE SET seq = acc.seq + 1 WHERE acc.seq = :seq
    RETURNING seq
), s AS (
    UPDATE booking_slot SET booked = booked + 1
    WHERE id = :slot_id AND booked < capacity AND EXISTS (SELECT 1 FROM a)
    RETURNING id
), {_WRITE_BOOKING}
SELECT EXISTS (SELECT 1 FROM s) AS seated, EXISTS (SELECT 1 FROM a) AS admitted,
    EXISTS (SELECT 1 FROM booking_slot WHERE id = :slot_id AND booked < capacity) AS seat_seen
""")  # noqa: S608 - constant fragments

_BOOKING_COLUMNS = (
    "id", "citizen_id", "matter_code", "hall_code", "section", "slot_id", "day", "starts_at", "ends_at", "noshow_at",
    "created_at", "ticket_digest",
)  # fmt: skip

# A booking in one round trip, without the read first: SEEN's read (v) and the caps (the citizen's
# bookings aggregated in u, the same rules as service._admit) in the statement's own snapshot, and
# BOOK's writes only if all of them pass (ok). The snapshot is proven current as in BOOK: the
# citizen's sequence is bumped only if its latest version is still the one read (`excluded.seq - 1`;
# PostgreSQL re-reads a row it waited for). When the caps refuse, the bookings they were checked on
# come back (rows) and service._admit says why in Python, with its details. A slot that is full
# takes no lock and writes nothing: a read-only statement, as cheap as SEEN. The slot's row is made
# by its first booking (s: an upsert that takes the seat only while one is left, on the row's latest
# version), so no statement of its own creates it first (ENSURE_SLOT).
TRY_BOOK = sql.named(f"""
WITH v AS (
    SELECT coalesce((SELECT booked < capacity FROM booking_slot WHERE id = :slot_id), :capacity::int > 0) AS seat,
        {idempotency.KNOWN_SQL} AS known,
        coalesce((SELECT seq FROM booking_account WHERE citizen_id = :citizen_id), 0) AS seq
), u AS (
    SELECT count(*) FILTER (WHERE status = 'no_show') AS no_shows,
        max(day) FILTER (WHERE status = 'no_show') AS last_no_show,
        count(DISTINCT (matter_code, day)) FILTER (WHERE status = 'booked') AS active,
        coalesce(bool_or(status = 'booked' AND matter_code = :matter_code AND day = :day), false) AS same_day
    FROM booking
    WHERE citizen_id = :citizen_id AND (status = 'booked' OR (status = 'no_show' AND day >= :noshow_since))
), ok AS (
    SELECT v.seq FROM v, u
    WHERE v.seat AND NOT v.known AND NOT u.same_day AND u.active < :max_active
        AND (u.no_shows < :noshow_limit OR u.last_no_show + :restrict_days::int <= :today::date)
), a AS (
    INSERT INTO booking_account AS acc (citizen_id, seq)
    SELECT :citizen_id, ok.seq + 1 FROM ok
    ON CONFLICT (citizen_id) DO UPDATE SET seq = acc.seq + 1 WHERE acc.seq = excluded.seq - 1
    RETURNING seq
), s AS (
    INSERT INTO booking_slot AS sl (id, hall_code, section, day, starts_at, ends_at, capacity, booked)
    SELECT :slot_id, :hall_code, :section, :day, :starts_at, :ends_at, :capacity, 1 FROM a
    ON CONFLICT (id) DO UPDATE SET booked = sl.booked + 1 WHERE sl.booked < sl.capacity
    RETURNING id
), {_WRITE_BOOKING}
SELECT v.seat, v.known, EXISTS (SELECT 1 FROM ok) AS capped, EXISTS (SELECT 1 FROM s) AS seated,
    EXISTS (SELECT 1 FROM a) AS admitted,
    CASE WHEN v.seat AND NOT v.known AND NOT EXISTS (SELECT 1 FROM ok) THEN ARRAY(
        SELECT (status, matter_code, day) FROM booking
        WHERE citizen_id = :citizen_id AND (status = 'booked' OR (status = 'no_show' AND day >= :noshow_since))
    ) END AS rows
FROM v
""")  # noqa: S608 - constant fragments


@dataclass(frozen=True)
class Tried:
    """TRY_BOOK's answer: the seat and key as read, and what was written (`rows` when the caps refused)."""

    seat: bool
    known: bool
    booked: bool | None  # True booked, False no seat, None the citizen's sequence moved on (try again)
    rows: list[tuple[str, str, dt.date]] | None = None


async def try_book(
    booking: Booking, reminder: dict[str, Any] | None, body: Any, claim: Claim | Pending | None,
    caps: dict[str, Any],
) -> Tried:  # fmt: skip
    """TRY_BOOK; `caps` are its rule values (noshow_since, noshow_limit, restrict_days, max_active, today, capacity)."""
    values = {name: getattr(booking, name) for name in _BOOKING_COLUMNS}
    values.update(caps)
    values.update(outbox.pending_values(**reminder) if reminder else outbox.NO_NOTIFICATION)
    # A pending key's owner and key (KNOWN_SQL's too), else NULL: a claimed key is known to be ours.
    values.update(idempotency.answer_values(claim, 201, body))
    async with sql.connection() as conn:
        row = await conn.fetchrow(TRY_BOOK.text, *TRY_BOOK.args(values))
    if row["seated"]:
        return Tried(True, False, True)
    rows = None if row["rows"] is None else [tuple(r) for r in row["rows"]]
    if not row["seat"] or row["known"] or rows is not None:
        return Tried(row["seat"], row["known"], False, rows)
    # The caps passed: either the seat went to another booking meanwhile, or the citizen's sequence moved on.
    return Tried(True, False, False if row["admitted"] else None)


async def book(
    booking: Booking, reminder: dict[str, Any] | None, body: Any, claim: Claim | Pending | None, seq: int
) -> bool | None:
    """BOOK: True booked, False no seat, None the citizen's sequence moved on (read again)."""
    values = {name: getattr(booking, name) for name in _BOOKING_COLUMNS}
    values["seq"] = seq
    values.update(outbox.pending_values(**reminder) if reminder else outbox.NO_NOTIFICATION)
    values.update(idempotency.answer_values(claim, 201, body))
    async with sql.connection() as conn:
        row = await conn.fetchrow(BOOK.text, *BOOK.args(values))
    if row["seated"]:
        return True
    if row["admitted"] or not row["seat_seen"]:
        return False
    return None


# -- the desk --------------------------------------------------------------------------------------

TARGET_FIELDS = (
    "id", "citizen_id", "matter_code", "hall_code", "section", "day", "starts_at", "ends_at", "noshow_at", "status",
    "version", "queue_no", "counter", "checked_in_at", "cancelled_at",
)  # fmt: skip
"""A booking's columns as a scan reads them (with its holder's encrypted name and phone, and its ticket digest)."""

_TARGET_COLUMNS = (
    ", ".join(f"b.{f}" for f in TARGET_FIELDS) + ", c.name_enc, c.phone_enc, b.ticket_digest AS issued_digest"
)
TARGET = sql.named(f"""
SELECT {_TARGET_COLUMNS} FROM booking b LEFT JOIN citizen c ON c.id = b.citizen_id WHERE b.id = :booking_id
""")  # noqa: S608 - constant columns
_LETTER_SQL = (
    "CASE q.section " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SECTION_LETTERS.items()) + " ELSE 'Z' END"
)

# One statement checks a booking in on PostgreSQL, reading it as it goes: it locks the booking if it
# admits its holder now (b: booked, this ticket's version, inside the check-in window), takes the
# section's next number (q, n), marks the booking (u), writes the check-in (c) and the scan (s), and
# returns the booking with its holder's encrypted name and phone for the answer. A ticket whose
# signature is unchecked must be the one issued (:issued_digest, see desk.Verified). Anything else
# (a refusal, or another desk winning this instant) leaves b empty: nothing is written, no number is
# spent, and the caller reads the booking to say why (reading it here too cost the check-ins 10 %:
# bench/README). The audit entry (a) is written with the check-in. A nonce already used fails the
# scan's unique key and undoes all of it.
CHECK_IN = sql.named(f"""
WITH b AS (
    SELECT {_TARGET_COLUMNS} FROM booking b LEFT JOIN citizen c ON c.id = b.citizen_id
    WHERE b.id = :booking_id AND b.status = 'booked' AND b.version = :version AND b.starts_at <= :opens_by
        AND b.noshow_at >= :now AND (:issued_digest::text IS NULL OR b.ticket_digest = :issued_digest)
    FOR UPDATE OF b
), q AS (
    INSERT INTO queue_counter (hall_code, section, day, issued) SELECT b.hall_code, b.section, :today, 1 FROM b
    ON CONFLICT (hall_code, section, day) DO UPDATE SET issued = queue_counter.issued + 1
    RETURNING section, issued
), n AS (
    SELECT {_LETTER_SQL} || lpad(q.issued::text, greatest(3, length(q.issued::text)), '0') AS issued_no FROM q
), u AS (
    UPDATE booking SET status = 'checked_in', checked_in_at = :now, counter = :counter, updated_at = :now,
        queue_no = n.issued_no
    FROM n WHERE booking.id = :booking_id RETURNING booking.id
), c AS (
    INSERT INTO checkin (id, booking_id, hall_code, section, day, queue_no, counter, staff_id, kind, created_at)
    SELECT :checkin_id, :booking_id, b.hall_code, b.section, :today, n.issued_no, :counter, :staff_id, 'booking', :now
    FROM b, n, u
), s AS (
    INSERT INTO desk_scan (staff_id, nonce, hall_code, result, booking_id, ticket_digest, created_at, checkin_id)
    SELECT :staff_id, :nonce, :scan_hall, 'checked_in', :booking_id, :ticket_digest, :now, :checkin_id FROM u
), a AS (
    {audit.entry_sql("u")}
)
SELECT b.*, n.issued_no FROM b, n, u
""")  # noqa: S608 - constant columns and section letters

SCAN = sql.named("""
INSERT INTO desk_scan (staff_id, nonce, hall_code, result, booking_id, ticket_digest, response, created_at, checkin_id)
VALUES (:staff_id, :nonce, :scan_hall, :result, :booking_id, :ticket_digest, :response, :now, :checkin_id)
""")


async def target(booking_id: uuid.UUID) -> Any:
    """TARGET's row for a booking (None when there is no such booking)."""
    async with sql.connection() as conn:
        return await conn.fetchrow(TARGET.text, booking_id)


async def check_in(values: dict[str, Any]) -> Any:
    """CHECK_IN's row (the booking with its queue number), or None when the booking does not admit its holder now."""
    async with sql.connection() as conn:
        return await conn.fetchrow(CHECK_IN.text, *CHECK_IN.args(values))


async def log_scan(values: dict[str, Any]) -> None:
    """SCAN: one scan's row (its unique nonce makes a repeat fail)."""
    async with sql.connection() as conn:
        await conn.execute(SCAN.text, *SCAN.args(values))


async def next_queue_no(hall: str, section: str, day: dt.date) -> str:
    """The next queue number of a hall section on a day, e.g. `D007` (both backends; call inside a transaction).

    One upsert with `RETURNING` (PostgreSQL and SQLite ≥ 3.35 alike), as in CHECK_IN: the row stays
    locked until our transaction ends, so the number is ours alone.
    """
    p = sql.placeholders(3)
    rows = await QueueCounter._meta.db.execute_query_dict(
        "INSERT INTO queue_counter (hall_code, section, day, issued) "  # noqa: S608 - placeholders only
        f"VALUES ({p[0]}, {p[1]}, {p[2]}, 1) ON CONFLICT (hall_code, section, day) "
        "DO UPDATE SET issued = queue_counter.issued + 1 RETURNING issued",
        [hall, section, day],
    )
    return f"{SECTION_LETTERS.get(section, 'Z')}{rows[0]['issued']:03d}"
