"""The two booking paths give the same answers: the ORM's (SQLite's, the reference) and PostgreSQL's statements.

One sequence of bookings, refusals, cancels, a reschedule and desk scans runs against the services
and is compared with the table below. The suite runs once per backend, so on SQLite this checks the
ORM path and on PostgreSQL the SQL path (app/booking/sql.py) against the same table; on PostgreSQL
the ORM path is forced too (`orm_only`), and both runs are compared with each other.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai); the booking window opens again on 10-08.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from tortoise import connections

from app.booking import admin, desk, service
from app.booking import sql as booking_sql
from app.booking.deps import BookingDeps
from app.booking.models import Booking, Slot
from app.booking.types import BookingStatus, BookingView, CheckedIn, ScanRefusal, StoredScan
from app.clock import SHANGHAI
from app.errors import DomainError
from app.idempotency import IdempotencyRecord, KeyTaken, Pending, Replay, claim, fingerprint
from app.matters import service as catalogue
from app.notify.models import Notification
from auth.tokens import Principal
from tests import factories
from tests.conftest import BACKEND

M1, M2 = "4308-XK-SS-001", "4308-XK-SS-002"


def sid(day: str, hhmm: str) -> str:
    return f"main.commercial.{day.replace('-', '')}.{hhmm.replace(':', '')}"


S1, S2, S3, S4, S5, S6 = (
    sid("2026-10-08", "09:00"),
    sid("2026-10-08", "09:30"),
    sid("2026-10-09", "09:00"),
    sid("2026-10-12", "09:00"),
    sid("2026-10-13", "09:00"),
    sid("2026-10-09", "10:00"),
)

# What each step answers, on either path.
EXPECTED: list[tuple[str, tuple[Any, ...]]] = [
    ("alice books M1 at S1", ("booked", S1, 1, "2026-10-08")),
    ("alice repeats the key", ("replayed", 201, S1, 1)),
    ("bob finds S1 full", ("refused", "SLOT_FULL")),
    ("alice books M1 again the same day", ("refused", "BOOKING_EXISTS")),
    ("alice books M2 at S3", ("booked", S3, 1, "2026-10-09")),
    ("alice books a third (max 2 active)", ("refused", "BOOKING_LIMIT_REACHED")),
    ("carol, three no-shows, is restricted", ("refused", "BOOKING_RESTRICTED")),
    ("bob books S2 with a claimed key", ("booked", S2, 1, "2026-10-08")),
    ("bob repeats the claimed key", ("replayed", 201, S2, 1)),
    ("bob reuses the key for another body", ("refused", "IDEMPOTENCY_KEY_REUSED")),
    ("alice cancels S1", ("cancelled", S1, 1)),
    ("alice cancels again", ("cancelled", S1, 1)),
    ("dave takes the seat S1 freed", ("booked", S1, 1, "2026-10-08")),
    ("alice moves M2 to S6", ("booked", S6, 2, "2026-10-09")),
    ("alice moves M2 back to a full slot", ("refused", "SLOT_FULL")),
    ("desk: dave checks in", ("checked_in", "B001")),
    ("desk: the same nonce again", ("checked_in", "B001")),
    ("desk: dave scans again", ("already_checked_in", "B001")),
    ("desk: bob is early", ("too_early", None)),
    ("desk: alice's cancelled ticket", ("cancelled", None)),
    ("desk: alice's ticket before the move", ("revoked", None)),
    ("desk: a forged ticket", ("invalid", None)),
    ("desk: the same nonce of a refusal", ("stored", "invalid")),
]
# The rows the sequence leaves: seats per slot, bookings per status, notifications per kind and status,
# answered idempotency keys.
EXPECTED_STATE = {
    "seats": {S1: 1, S2: 1, S3: 0, S4: 0, S5: 0, S6: 1},
    "bookings": {"booked": 2, "cancelled": 1, "checked_in": 1, "no_show": 3},
    "notifications": {("booking_reminder", "cancelled"): 2, ("booking_reminder", "pending"): 3},
    "keys": {201: 4},
}

PATHS = ["backend", "orm"]


class Run:
    """The services called as the handlers call them (the Idempotency-Key flow of app/http.py `idempotent`)."""

    def __init__(self, deps: BookingDeps) -> None:
        self.deps = deps
        self.answers: list[tuple[str, tuple[Any, ...]]] = []
        self.views: dict[str, BookingView] = {}

    def note(self, step: str, answer: tuple[Any, ...]) -> None:
        self.answers.append((step, answer))

    @staticmethod
    def booked(view: BookingView) -> tuple[Any, ...]:
        if view.status is BookingStatus.cancelled:
            return ("cancelled", view.slot_id, view.version)
        return ("booked", view.slot_id, view.version, view.day.isoformat())

    async def book(self, step: str, who: str, matter: str, slot: str, key: str, *, claimed: bool = False) -> None:
        owner = f"citizen:{who}"
        digest = fingerprint("POST /api/v1/bookings", {"matter_code": matter, "slot_id": slot})
        args = {"citizen_id": who, "matter_code": matter, "slot_id": slot}
        try:
            if not claimed:
                checked = await service.check_seat(self.deps, owner=owner, key=key, **args)
                if not checked.known:
                    with contextlib.suppress(KeyTaken):
                        view = await service.book(self.deps, claim=Pending(owner, key, digest, checked.seen), **args)
                        self.views[step] = view
                        return self.note(step, self.booked(view))
            got = await claim(owner=owner, key=key, digest=digest)
            if isinstance(got, Replay):
                body = json.loads(got.body)
                return self.note(step, ("replayed", got.status, body["slot_id"], body["version"]))
            try:
                view = await service.book(self.deps, claim=got, **args)
            except Exception:
                await got.release()
                raise
            self.views[step] = view
            self.note(step, self.booked(view))
        except DomainError as exc:
            self.note(step, ("refused", exc.code))

    async def write(self, step: str, call: Any) -> None:
        try:
            self.note(step, self.booked(await call))
        except DomainError as exc:
            self.note(step, ("refused", exc.code))

    async def scan(self, step: str, clerk: Principal, ticket: str, nonce: str) -> None:
        answer = await desk.check_in(self.deps, principal=clerk, ticket=ticket, nonce=nonce, counter=None)
        if isinstance(answer, CheckedIn):
            self.note(step, ("checked_in", answer.queue_no))
        elif isinstance(answer, ScanRefusal):
            self.note(step, (answer.result, answer.queue_no))
        else:
            assert isinstance(answer, StoredScan)
            self.note(step, ("stored", json.loads(answer.text)["result"]))


async def _no_shows(citizen_id: uuid.UUID, count: int) -> None:
    """Past no-shows of a citizen (what the no-show job leaves)."""
    for i in range(count):
        day = dt.date(2026, 9, 20 + i)
        start = dt.datetime.combine(day, dt.time(9), SHANGHAI)
        await Booking.create(
            id=uuid.uuid4(), citizen_id=citizen_id, matter_code=M1, hall_code="main", section="commercial",
            slot_id=sid(day.isoformat(), "09:00"), day=day, starts_at=start, ends_at=start + dt.timedelta(minutes=30),
            noshow_at=start + dt.timedelta(minutes=45), status=BookingStatus.no_show,
        )  # fmt: skip


async def _state() -> dict[str, Any]:
    seats = {s: 0 for s in (S1, S2, S3, S4, S5, S6)}
    for slot in await Slot.all():
        seats[slot.id] = slot.booked
    bookings: dict[str, int] = {}
    for b in await Booking.all():
        bookings[str(b.status)] = bookings.get(str(b.status), 0) + 1
    notifications: dict[tuple[str, str], int] = {}
    for n in await Notification.all():
        notifications[(n.kind, str(n.status))] = notifications.get((n.kind, str(n.status)), 0) + 1
    keys: dict[int | None, int] = {}
    for r in await IdempotencyRecord.all():
        keys[r.status] = keys.get(r.status, 0) + 1
    return {"seats": seats, "bookings": bookings, "notifications": notifications, "keys": keys}


async def _sequence(deps: BookingDeps, make_citizen, make_staff, fake_clock) -> tuple[list, dict[str, Any]]:
    """Run the whole sequence; its answers and the rows it leaves."""
    fake_clock.current = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC)
    alice, bob, carol, dave = [str((await make_citizen())[0].id) for _ in range(4)]
    await _no_shows(uuid.UUID(carol), 3)
    staff, _ = await make_staff("clerk", username=f"clerk-{uuid.uuid4().hex[:8]}")
    clerk = Principal(kind="staff", id=str(staff.id), audience="staff", session_id="s", role="clerk", hall="main")
    run = Run(deps)

    await run.book("alice books M1 at S1", alice, M1, S1, "a1")
    await run.book("alice repeats the key", alice, M1, S1, "a1")
    await run.book("bob finds S1 full", bob, M1, S1, "b1")
    await run.book("alice books M1 again the same day", alice, M1, S2, "a2")
    await run.book("alice books M2 at S3", alice, M2, S3, "a3")
    await run.book("alice books a third (max 2 active)", alice, M1, S4, "a4")
    await run.book("carol, three no-shows, is restricted", carol, M1, S5, "c1")
    await run.book("bob books S2 with a claimed key", bob, M1, S2, "b2", claimed=True)
    await run.book("bob repeats the claimed key", bob, M1, S2, "b2")
    await run.book("bob reuses the key for another body", bob, M1, S4, "b2")
    first = run.views["alice books M1 at S1"]
    await run.write("alice cancels S1", service.cancel(deps, citizen_id=alice, booking_id=str(first.id)))
    await run.write("alice cancels again", service.cancel(deps, citizen_id=alice, booking_id=str(first.id)))
    await run.book("dave takes the seat S1 freed", dave, M1, S1, "d1")
    moved = run.views["alice books M2 at S3"]
    await run.write(
        "alice moves M2 to S6", service.reschedule(deps, citizen_id=alice, booking_id=str(moved.id), slot_id=S6)
    )
    await run.write(
        "alice moves M2 back to a full slot",
        service.reschedule(deps, citizen_id=alice, booking_id=str(moved.id), slot_id=S2),
    )

    fake_clock.current = dt.datetime(2026, 10, 8, 8, 45, tzinfo=SHANGHAI).astimezone(dt.UTC)
    dave_ticket = run.views["dave takes the seat S1 freed"].ticket
    bob_ticket = run.views["bob books S2 with a claimed key"].ticket
    assert dave_ticket and bob_ticket and first.ticket and moved.ticket
    await run.scan("desk: dave checks in", clerk, dave_ticket, "nonce-0001")
    await run.scan("desk: the same nonce again", clerk, dave_ticket, "nonce-0001")
    await run.scan("desk: dave scans again", clerk, dave_ticket, "nonce-0002")
    await run.scan("desk: bob is early", clerk, bob_ticket, "nonce-0003")
    await run.scan("desk: alice's cancelled ticket", clerk, first.ticket, "nonce-0004")
    await run.scan("desk: alice's ticket before the move", clerk, moved.ticket, "nonce-0005")
    await run.scan("desk: a forged ticket", clerk, "BK1.not-a-ticket", "nonce-0006")
    await run.scan("desk: the same nonce of a refusal", clerk, "BK1.not-a-ticket", "nonce-0006")
    return run.answers, await _state()


async def _reset(deps: BookingDeps) -> None:
    """Forget one run's booking rows (and this worker's memory of slot rows) before the next."""
    conn = connections.get("default")
    tables = "booking, booking_slot, booking_account, booking_revoked_ticket, queue_counter, checkin, desk_scan, "
    await conn.execute_script(f"TRUNCATE {tables} notification, idempotency_record")
    deps.cache.clear()


@pytest.fixture
async def deps(services) -> BookingDeps:
    """The booking services with one seat per slot and at most two active bookings per citizen."""
    await catalogue.import_catalogue(services.catalogue, data=factories.small_catalogue())
    settings = services.booking.settings.replace(booking_max_active=2)
    deps = dataclasses.replace(services.booking, settings=settings)
    await admin.put_schedule(deps, hall="main", config={"capacity": {"commercial": 1}})
    return deps


@pytest.mark.parametrize("path", PATHS)
async def test_the_sequence_answers_as_the_table_says(deps, make_citizen, make_staff, fake_clock, path):
    if path == "orm" and BACKEND != "postgres":
        pytest.skip("SQLite has only the ORM path (the 'backend' run is it)")
    forced = booking_sql.orm_only() if path == "orm" else contextlib.nullcontext()
    with forced:
        assert booking_sql.enabled() is (BACKEND == "postgres" and path == "backend")
        answers, state = await _sequence(deps, make_citizen, make_staff, fake_clock)
    assert answers == EXPECTED
    assert state == EXPECTED_STATE


@pytest.mark.postgres
async def test_both_paths_agree_on_postgresql(deps, make_citizen, make_staff, fake_clock):
    """On PostgreSQL the same sequence through the SQL path and through the ORM path answers the same."""
    sql_answers, sql_state = await _sequence(deps, make_citizen, make_staff, fake_clock)
    await _reset(deps)
    with booking_sql.orm_only():
        orm_answers, orm_state = await _sequence(deps, make_citizen, make_staff, fake_clock)
    assert sql_answers == orm_answers
    assert sql_state == orm_state
