"""Booking and desk races through HTTP: many requests at once through one app, answers and rows counted.

PostgreSQL serialises the seat UPDATEs with row locks; SQLite has a single writer. Tests marked
`postgres` only mean something with real row locks; the others run on both backends and show that
SQLite neither overbooks nor answers 5xx either. Requests queue for the database pool; that's fine.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import time
import uuid

import jwt
import pytest

from app.booking.models import Booking, BookingStatus, CheckIn, DeskScan, QueueCounter, RevokedTicket, Slot
from app.idempotency import IdempotencyRecord
from app.matters import service as catalogue
from auth.devtokens import dev_tokens_for_new_citizens
from auth.models import Citizen
from tests import factories

pytestmark = pytest.mark.asyncio

MATTER = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
BOOKINGS = "/api/v1/bookings"
CHECKINS = "/api/v1/desk/checkins"
TODAY_1100 = "main.commercial.20260930.1100"
TODAY_1130 = "main.commercial.20260930.1130"
TODAY_1330 = "main.commercial.20260930.1330"
TODAY_1400 = "main.commercial.20260930.1400"
TODAY_1430 = "main.commercial.20260930.1430"


@pytest.fixture
def settings(base_settings, request):
    """The test settings, with overrides a test passes by indirect parametrisation."""
    return base_settings.replace(**getattr(request, "param", {}))


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


def at(fake_clock, when: str) -> None:
    """Set the clock to a Shanghai local time "YYYY-MM-DD HH:MM[:SS]"."""
    fake_clock.current = dt.datetime.fromisoformat(f"{when}+08:00").astimezone(dt.UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def tally(responses) -> collections.Counter:
    """(status, error code or None) of every answer."""
    out: collections.Counter = collections.Counter()
    for resp in responses:
        code = resp.json.get("error", {}).get("code") if resp.status >= 400 else None
        out[(resp.status, code)] += 1
    return out


def no_5xx(responses) -> None:
    errors = [(r.status, r.text[:300]) for r in responses if r.status >= 500]
    assert not errors, errors[:3]


async def put_schedule(client, admin_headers, **config) -> None:
    _, resp = await client.put("/api/v1/admin/halls/main/schedule", json=config, headers=admin_headers)
    assert resp.status == 200, resp.text


async def post(client, url, **kwargs):
    _, resp = await client.post(url, **kwargs)
    return resp


async def post_booking(client, headers, slot_id, matter=MATTER, key=None):
    return await post(
        client,
        BOOKINGS,
        json={"matter_code": matter, "slot_id": slot_id},
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def distinct_citizen_tokens(app, count: int) -> list[str]:
    """`count` tokens of `count` different new citizens.

    dev_tokens_for_new_citizens draws random 199 numbers; among 1,000 a repeat happens about once in
    200 runs, and a repeated citizen would answer BOOKING_EXISTS instead of SLOT_FULL.
    """
    by_subject: dict[str, str] = {}
    while len(by_subject) < count:
        for token in await dev_tokens_for_new_citizens(app.ctx.auth, count=count - len(by_subject), loa=2):
            by_subject.setdefault(jwt.decode(token, options={"verify_signature": False})["sub"], token)
    assert await Citizen.all().count() == count
    return list(by_subject.values())


# -- many citizens, one slot -----------------------------------------------------------------------


async def _race_for_one_slot(client, app, admin_headers, attempts: int, capacity: int = 10) -> float:
    await put_schedule(client, admin_headers, capacity={"commercial": capacity})
    started = time.perf_counter()
    tokens = await distinct_citizen_tokens(app, attempts)
    made = time.perf_counter() - started
    started = time.perf_counter()
    responses = await asyncio.gather(*(post_booking(client, bearer(t), TODAY_1100) for t in tokens))
    raced = time.perf_counter() - started
    print(f"\n{attempts} citizens created in {made:.1f}s; {attempts} concurrent bookings answered in {raced:.1f}s")
    no_5xx(responses)
    counts = tally(responses)
    assert counts == {(201, None): capacity, (409, "SLOT_FULL"): attempts - capacity}, counts
    slot = await Slot.get(id=TODAY_1100)
    assert (slot.capacity, slot.booked) == (capacity, capacity)
    assert await Booking.all().count() == capacity
    assert await Booking.filter(slot_id=TODAY_1100, status=BookingStatus.booked).count() == capacity
    winners = [r.json for r in responses if r.status == 201]
    assert len({w["id"] for w in winners}) == capacity
    assert len({w["ticket"] for w in winners}) == capacity
    # the losers released their idempotency keys; the winners' answers are stored
    assert await IdempotencyRecord.filter(status=201).count() == capacity
    assert await IdempotencyRecord.all().count() == capacity
    return raced


@pytest.mark.postgres
async def test_thousand_concurrent_bookings_of_a_ten_seat_slot(client, app, seeded, fake_clock, admin_headers):
    await _race_for_one_slot(client, app, admin_headers, attempts=1000)


async def test_two_hundred_concurrent_bookings_of_a_ten_seat_slot(client, app, seeded, fake_clock, admin_headers):
    """The same race, smaller, on every backend: no overbooking and no 5xx on SQLite either."""
    await _race_for_one_slot(client, app, admin_headers, attempts=200)


async def test_concurrent_bookings_of_the_last_seats_after_a_capacity_cut(
    client, app, seeded, fake_clock, admin_headers
):
    """Lowering capacity below the seats taken never lets anyone else in."""
    tokens = await distinct_citizen_tokens(app, 30)
    first = await asyncio.gather(*(post_booking(client, bearer(t), TODAY_1100) for t in tokens[:2]))
    assert [r.status for r in first] == [201, 201]
    await put_schedule(client, admin_headers, capacity={"commercial": 1})
    responses = await asyncio.gather(*(post_booking(client, bearer(t), TODAY_1100) for t in tokens[2:]))
    no_5xx(responses)
    assert tally(responses) == {(409, "SLOT_FULL"): 28}
    slot = await Slot.get(id=TODAY_1100)
    assert slot.booked == 2 and await Booking.filter(slot_id=TODAY_1100).count() == 2


# -- one ticket, many scans ------------------------------------------------------------------------


async def _booked_ticket(client, make_citizen, slot_id=TODAY_1100) -> dict:
    _, citizen = await make_citizen(loa=2)
    resp = await post_booking(client, citizen, slot_id)
    assert resp.status == 201, resp.text
    return resp.json


async def test_fifty_concurrent_scans_of_one_ticket_check_in_once(client, seeded, fake_clock, make_citizen, make_staff):
    booking = await _booked_ticket(client, make_citizen)
    at(fake_clock, "2026-09-30 10:45")
    clerks = [(await make_staff("clerk", hall="main"))[1] for _ in range(5)]
    _, admin = await make_staff("admin")
    desks = [*clerks, admin]
    responses = await asyncio.gather(
        *(
            post(
                client,
                CHECKINS,
                json={"ticket": booking["ticket"], "nonce": uuid.uuid4().hex, "counter": f"B{i % 6:02d}"},
                headers=desks[i % len(desks)],
            )
            for i in range(50)
        )
    )
    no_5xx(responses)
    assert {r.status for r in responses} == {200}
    results = collections.Counter(r.json["result"] for r in responses)
    assert results == {"checked_in": 1, "already_checked_in": 49}, results
    winner = next(r.json for r in responses if r.json["result"] == "checked_in")
    assert winner["queue_no"] == "B001"
    for r in responses:
        assert r.json["queue_no"] == "B001"
        if r.json["result"] == "already_checked_in":
            assert r.json["details"]["counter"] == winner["counter"]
            assert r.json["details"]["checked_in_at"] == winner["checked_in_at"]
    assert await CheckIn.all().count() == 1
    assert (await QueueCounter.get(hall_code="main", section="commercial")).issued == 1
    assert await DeskScan.all().count() == 50
    row = await Booking.get(id=booking["id"])
    assert row.status is BookingStatus.checked_in and row.queue_no == "B001" and row.counter == winner["counter"]


async def test_concurrent_scans_of_many_tickets_give_distinct_queue_numbers(
    client, app, seeded, fake_clock, make_staff, admin_headers
):
    """Check-ins of different bookings and walk-ins at once never share a queue number."""
    await put_schedule(client, admin_headers, capacity={"commercial": 20})
    tokens = await distinct_citizen_tokens(app, 20)
    booked = await asyncio.gather(*(post_booking(client, bearer(t), TODAY_1100) for t in tokens))
    assert {r.status for r in booked} == {201}
    at(fake_clock, "2026-09-30 10:45")
    clerks = [(await make_staff("clerk", hall="main"))[1] for _ in range(4)]
    scans = [
        post(client, CHECKINS, json={"ticket": b.json["ticket"], "nonce": uuid.uuid4().hex}, headers=clerks[i % 4])
        for i, b in enumerate(booked)
    ]
    walk_ins = [
        post(client, "/api/v1/desk/tickets", json={"section": "commercial"}, headers=clerks[i % 4]) for i in range(10)
    ]
    responses = await asyncio.gather(*scans, *walk_ins)
    no_5xx(responses)
    assert [r.json["result"] for r in responses[:20]] == ["checked_in"] * 20
    assert [r.status for r in responses[20:]] == [201] * 10
    numbers = sorted(r.json["queue_no"] for r in responses)
    assert numbers == [f"B{n:03d}" for n in range(1, 31)]
    assert await CheckIn.all().count() == 30


async def test_twenty_concurrent_scans_with_the_same_nonce_answer_alike(
    client, seeded, fake_clock, make_citizen, make_staff
):
    booking = await _booked_ticket(client, make_citizen)
    at(fake_clock, "2026-09-30 10:45")
    _, clerk = await make_staff("clerk", hall="main")
    body = {"ticket": booking["ticket"], "nonce": "same-nonce-0001", "counter": "B01"}
    responses = await asyncio.gather(*(post(client, CHECKINS, json=body, headers=clerk) for _ in range(20)))
    no_5xx(responses)
    assert [r.status for r in responses] == [200] * 20, tally(responses)
    answers = [r.json for r in responses]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["result"] == "checked_in" and answers[0]["queue_no"] == "B001"
    assert await DeskScan.all().count() == 1
    assert await CheckIn.all().count() == 1
    assert (await QueueCounter.get(hall_code="main", section="commercial")).issued == 1


async def test_twenty_concurrent_scans_with_the_same_nonce_replay_bytes(
    client, seeded, fake_clock, make_citizen, make_staff
):
    """The replays carry exactly the bytes of the first answer (a desk may compare or cache them)."""
    booking = await _booked_ticket(client, make_citizen)
    at(fake_clock, "2026-09-30 10:45")
    _, clerk = await make_staff("clerk", hall="main")
    body = {"ticket": booking["ticket"], "nonce": "same-nonce-0002"}
    responses = await asyncio.gather(*(post(client, CHECKINS, json=body, headers=clerk) for _ in range(20)))
    no_5xx(responses)
    assert len({r.content for r in responses}) == 1


async def test_concurrent_undos_of_one_check_in_undo_once(client, seeded, fake_clock, make_citizen, make_staff):
    booking = await _booked_ticket(client, make_citizen)
    at(fake_clock, "2026-09-30 10:45")
    _, clerk = await make_staff("clerk", hall="main")
    resp = await post(client, CHECKINS, json={"ticket": booking["ticket"], "nonce": uuid.uuid4().hex}, headers=clerk)
    checkin_id = resp.json["checkin_id"]
    responses = await asyncio.gather(*(post(client, f"{CHECKINS}/{checkin_id}/undo", headers=clerk) for _ in range(10)))
    no_5xx(responses)
    assert tally(responses) == {(200, None): 1, (409, "CHECKIN_ALREADY_UNDONE"): 9}
    row = await Booking.get(id=booking["id"])
    assert row.status is BookingStatus.booked and row.queue_no is None
    # scans racing after the undo: one new check-in with the next number
    responses = await asyncio.gather(
        *(
            post(client, CHECKINS, json={"ticket": booking["ticket"], "nonce": uuid.uuid4().hex}, headers=clerk)
            for _ in range(10)
        )
    )
    no_5xx(responses)
    assert collections.Counter(r.json["result"] for r in responses) == {"checked_in": 1, "already_checked_in": 9}
    assert {r.json["queue_no"] for r in responses} == {"B002"}
    assert await CheckIn.filter(undone_at__isnull=True).count() == 1


# -- one citizen, many bookings --------------------------------------------------------------------


async def test_same_citizen_twenty_concurrent_bookings_of_one_matter_and_day(
    client, seeded, fake_clock, make_citizen, admin_headers
):
    await put_schedule(client, admin_headers, slot_minutes=15, capacity={"commercial": 5})
    _, citizen = await make_citizen(loa=2)
    _, resp = await client.get(
        f"/api/v1/matters/{MATTER}/slots", params={"from": "2026-10-08", "to": "2026-10-08"}, headers=citizen
    )
    slots = [s["slot_id"] for s in resp.json["items"] if s["bookable"]]
    assert len(slots) >= 20
    responses = await asyncio.gather(*(post_booking(client, citizen, sid) for sid in slots[:20]))
    no_5xx(responses)
    assert tally(responses) == {(201, None): 1, (409, "BOOKING_EXISTS"): 19}
    assert await Booking.all().count() == 1
    booking = next(r.json for r in responses if r.status == 201)
    assert await Slot.filter(booked__gt=0).values_list("id", "booked") == [(booking["slot_id"], 1)]
    # the same citizen may still book another matter that day
    again = await post_booking(client, citizen, slots[5], matter=FOOD)
    assert again.status == 201, again.text


@pytest.mark.parametrize("settings", [{"booking_max_active": 3}], indirect=True)
async def test_same_citizen_concurrent_bookings_of_different_days_stop_at_the_limit(
    client, settings, seeded, fake_clock, make_citizen
):
    assert settings.booking_max_active == 3
    _, citizen = await make_citizen(loa=2)
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=citizen)
    first_of_day: dict[str, str] = {}
    for s in resp.json["items"]:
        if s["bookable"]:
            first_of_day.setdefault(s["date"], s["slot_id"])
    assert len(first_of_day) == 7  # 9-30, 10-08, 10-09, 10-10 (调休), 10-12, 10-13, 10-14
    requests = [post_booking(client, citizen, sid) for sid in first_of_day.values()]
    requests += [post_booking(client, citizen, sid, matter=FOOD) for sid in first_of_day.values()]
    responses = await asyncio.gather(*requests)
    no_5xx(responses)
    counts = tally(responses)
    assert counts[(201, None)] == 3, counts
    assert counts == {(201, None): 3, (409, "BOOKING_LIMIT_REACHED"): 11}, counts
    assert await Booking.filter(status=BookingStatus.booked).count() == 3
    assert sum(await Slot.all().values_list("booked", flat=True)) == 3


@pytest.mark.postgres
@pytest.mark.parametrize("settings", [{"booking_max_active": 3}], indirect=True)
async def test_same_citizen_limit_holds_under_repeated_races(
    client, settings, seeded, fake_clock, make_citizen, admin_headers
):
    """Many rounds of the race above (row locks are only exercised for real on PostgreSQL)."""
    await put_schedule(client, admin_headers, capacity={"commercial": 100})
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=(await make_citizen(loa=2))[1])
    days = {}
    for s in resp.json["items"]:
        if s["bookable"]:
            days.setdefault(s["date"], s["slot_id"])
    for _ in range(5):
        _, citizen = await make_citizen(loa=2)
        responses = await asyncio.gather(*(post_booking(client, citizen, sid) for sid in days.values()))
        no_5xx(responses)
        assert tally(responses)[(201, None)] == 3
    assert await Booking.all().count() == 15


@pytest.mark.postgres
@pytest.mark.parametrize("settings", [{"booking_max_active": 100}], indirect=True)
async def test_same_citizen_racing_itself_gets_booking_busy_and_leaks_nothing(
    client, settings, seeded, fake_clock, make_citizen, admin_headers, monkeypatch
):
    """With one attempt per request, a request whose read another booking of the citizen overtook answers
    409 BOOKING_BUSY; seats, bookings and recorded keys still match one for one.

    The cap of active bookings is lifted: a request reads as its statement runs, so a round may book
    several days (the ones that ran after the winner committed), and the cap is not what this is about.
    """
    from app.booking import service as booking_service

    monkeypatch.setattr(booking_service, "_BOOK_ATTEMPTS", 1)
    await put_schedule(client, admin_headers, capacity={"commercial": 100})
    _, citizen = await make_citizen(loa=2)
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=citizen)
    days: dict[str, str] = {}
    for s in resp.json["items"]:
        if s["bookable"]:
            days.setdefault(s["date"], s["slot_id"])
    busy = created = 0
    for _ in range(3):
        responses = await asyncio.gather(*(post_booking(client, citizen, sid) for sid in days.values()))
        no_5xx(responses)
        counts = tally(responses)
        assert set(counts) <= {(201, None), (409, "BOOKING_BUSY"), (409, "BOOKING_EXISTS")}, counts
        busy += counts.get((409, "BOOKING_BUSY"), 0)
        created += counts.get((201, None), 0)
        assert all(r.json["error"]["message"] for r in responses if r.status == 409)
    assert busy > 0  # seven simultaneous first bookings of one citizen: all but one lose the first race
    booked = await Booking.filter(status=BookingStatus.booked).count()
    assert booked == created >= 3  # each round books at least once; a busy request changes nothing
    assert sum(await Slot.all().values_list("booked", flat=True)) == booked
    assert await IdempotencyRecord.filter(status=201).count() == booked
    assert await IdempotencyRecord.all().count() == booked


# -- one idempotency key, many requests ------------------------------------------------------------


async def test_same_idempotency_key_twenty_times_concurrently_books_once(client, seeded, fake_clock, make_citizen):
    _, citizen = await make_citizen(loa=2)
    key = uuid.uuid4().hex
    responses = await asyncio.gather(*(post_booking(client, citizen, TODAY_1100, key=key) for _ in range(20)))
    no_5xx(responses)
    counts = tally(responses)
    assert set(counts) <= {(201, None), (409, "IDEMPOTENCY_IN_FLIGHT")}, counts
    assert counts[(201, None)] >= 1
    created = [r for r in responses if r.status == 201]
    assert all(r.json == created[0].json for r in created)
    for r in responses:
        if r.status == 409:
            assert r.headers["retry-after"] == "1"
    assert await Booking.all().count() == 1
    assert (await Slot.get(id=TODAY_1100)).booked == 1
    assert await IdempotencyRecord.all().count() == 1
    # once it is done every retry replays it
    again = await post_booking(client, citizen, TODAY_1100, key=key)
    assert again.status == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json == created[0].json


async def test_idempotent_replay_is_byte_identical(client, seeded, fake_clock, make_citizen):
    """A retried booking gets exactly the bytes of the first answer."""
    _, citizen = await make_citizen(loa=2)
    key = uuid.uuid4().hex
    first = await post_booking(client, citizen, TODAY_1100, key=key)
    assert first.status == 201, first.text
    again = await post_booking(client, citizen, TODAY_1100, key=key)
    assert again.status == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json == first.json
    assert again.content == first.content, "the replay should be byte-identical"


# -- reschedules -----------------------------------------------------------------------------------


async def _two_bookings_and_one_free_seat(client, make_citizen):
    """A in 11:00, B in 11:30, and 13:30 with one of its two seats taken by C."""
    _, a = await make_citizen(loa=2)
    _, b = await make_citizen(loa=2)
    _, c = await make_citizen(loa=2)
    booked = []
    for headers, slot_id in ((a, TODAY_1100), (b, TODAY_1130), (c, TODAY_1330)):
        resp = await post_booking(client, headers, slot_id)
        assert resp.status == 201, resp.text
        booked.append(resp.json)
    return (a, booked[0]), (b, booked[1])


async def test_concurrent_reschedules_into_the_last_free_seat(client, seeded, fake_clock, make_citizen):
    (a, booking_a), (b, booking_b) = await _two_bookings_and_one_free_seat(client, make_citizen)
    responses = await asyncio.gather(
        post(client, f"{BOOKINGS}/{booking_a['id']}/reschedule", json={"slot_id": TODAY_1330}, headers=a),
        post(client, f"{BOOKINGS}/{booking_b['id']}/reschedule", json={"slot_id": TODAY_1330}, headers=b),
    )
    no_5xx(responses)
    assert tally(responses) == {(200, None): 1, (409, "SLOT_FULL"): 1}
    winner = 0 if responses[0].status == 200 else 1
    moved, stayed = (booking_a, booking_b) if winner == 0 else (booking_b, booking_a)
    assert responses[winner].json["slot_id"] == TODAY_1330 and responses[winner].json["version"] == 2
    seats = dict(await Slot.all().values_list("id", "booked"))
    assert seats[TODAY_1330] == 2
    assert seats[moved["slot_id"]] == 0
    assert seats[stayed["slot_id"]] == 1
    rows = {str(r.id): r for r in await Booking.all()}
    assert (rows[moved["id"]].slot_id, rows[moved["id"]].version) == (TODAY_1330, 2)
    assert (rows[stayed["id"]].slot_id, rows[stayed["id"]].version) == (stayed["slot_id"], 1)
    assert await RevokedTicket.all().values_list("booking_id", "version") == [(uuid.UUID(moved["id"]), 1)]
    # seats match the bookings in every slot
    for slot_id, booked in seats.items():
        assert booked == await Booking.filter(slot_id=slot_id, status=BookingStatus.booked).count()


async def test_concurrent_reschedules_in_opposite_directions(client, seeded, fake_clock, make_citizen, admin_headers):
    """Five citizens move 14:00 -> 14:30 while five others move 14:30 -> 14:00 (both slots have room).

    Every move should succeed without a 5xx. Each reschedule takes its new seat before releasing its
    old one, so the transactions lock the same two slot rows in opposite orders.
    """
    await put_schedule(client, admin_headers, capacity={"commercial": 10})
    moves = []
    for source, target in [(TODAY_1400, TODAY_1430), (TODAY_1430, TODAY_1400)] * 5:
        _, headers = await make_citizen(loa=2)
        resp = await post_booking(client, headers, source)
        assert resp.status == 201, resp.text
        moves.append(
            post(client, f"{BOOKINGS}/{resp.json['id']}/reschedule", json={"slot_id": target}, headers=headers)
        )
    responses = await asyncio.gather(*moves)
    no_5xx(responses)
    assert tally(responses) == {(200, None): 10}
    seats = dict(await Slot.all().values_list("id", "booked"))
    assert seats[TODAY_1400] == seats[TODAY_1430] == 5
