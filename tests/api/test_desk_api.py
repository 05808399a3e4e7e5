"""The front desk through HTTP: every scan answer, queue numbers, nonces, counters, undo, revocations,
roles and offline verification.

The clock starts at 2026-09-30 10:00 (Wednesday, the day before National Day). The first bookable
slot of the licence matter is 11:00-11:30, so check-in opens at 10:30 and closes at 11:45.
Access tokens live 15 minutes: every move of the clock is followed by fresh tokens.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid

import pytest

from app.booking import tickets
from app.booking.models import Booking, BookingStatus, CheckIn, DeskScan
from app.matters import service as catalogue
from tests import factories

pytestmark = pytest.mark.asyncio

MATTER = "4308-XK-SS-001"  # 营业执照设立登记, main hall, commercial (B)
FOOD = "4308-XK-SS-002"  # 食品经营许可, main hall, commercial (B)
FUND = "4308-GG-ZF-001"  # 住房公积金提取, gongjijin hall, social_security (D)
CHECKINS = "/api/v1/desk/checkins"
WALK_IN = "/api/v1/desk/tickets"
REVOCATIONS = "/api/v1/desk/revocations"
MAIN_NAME = "张家界市政务服务中心"
MATERIALS = [
    {"name": "公司登记（备案）申请书", "form": "original", "form_name": "原件", "copies": 1, "required": True},
    {"name": "居民身份证", "form": "copy", "form_name": "复印件", "copies": 1, "required": True},
]


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def nonce() -> str:
    return uuid.uuid4().hex


def at(fake_clock, when: str) -> None:
    """Set the clock to a Shanghai local time, e.g. "2026-09-30 10:45" or "10:45" (that day)."""
    if len(when) <= 8:
        when = f"2026-09-30 {when}"
    fake_clock.current = dt.datetime.fromisoformat(f"{when}+08:00").astimezone(dt.UTC)


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status == status, resp.text
    assert resp.json["error"]["code"] == code, resp.text
    assert resp.json["error"]["message"]
    return resp.json["error"]


async def slots_of(client, headers, matter=MATTER, date=None):
    params = {"from": date, "to": date} if date else None
    _, resp = await client.get(f"/api/v1/matters/{matter}/slots", headers=headers, params=params)
    assert resp.status == 200, resp.text
    return [s for s in resp.json["items"] if s["bookable"]]


async def book(client, headers, matter=MATTER, *, slot_id=None, index=0, starts=None):
    if starts is not None:  # "HH:MM" today
        slot_id = f"main.commercial.20260930.{starts.replace(':', '')}"
    if slot_id is None:
        slot_id = (await slots_of(client, headers, matter))[index]["slot_id"]
    _, resp = await client.post(
        "/api/v1/bookings", json={"matter_code": matter, "slot_id": slot_id}, headers={**headers, **idem()}
    )
    assert resp.status == 201, resp.text
    return resp.json


async def scan(client, headers, ticket, *, counter=None, scan_nonce=None):
    body = {"ticket": ticket, "nonce": scan_nonce or nonce()}
    if counter is not None:
        body["counter"] = counter
    _, resp = await client.post(CHECKINS, json=body, headers=headers)
    assert resp.status == 200, f"{resp.status} {resp.text[:500]}"
    return resp.json


def assert_refusal(answer: dict, result: str, message: str | None = None) -> dict:
    assert answer["result"] == result, answer
    assert answer["ok"] is False
    assert answer["message"], answer
    if message is not None:
        assert answer["message"] == message
    return answer["details"]


def ticket_for(booking_id: uuid.UUID, *, start_minutes: int, length: int, hall="main", kid="k", version=1) -> str:
    """A ticket text with a made-up signature (what anybody can print)."""
    head = struct.pack(">B16sHIH", tickets.FORMAT, booking_id.bytes, version, start_minutes, length)
    body = head + bytes([len(hall)]) + hall.encode() + bytes([len(kid)]) + kid.encode()
    return tickets.encode(body, b"\x07" * 64)


def changed_char(ticket: str, pos: int = 40) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    replacement = alphabet[(alphabet.index(ticket[pos]) + 1) % 32]
    return ticket[:pos] + replacement + ticket[pos + 1 :]


@pytest.fixture
def desk(client, seeded, fake_clock, make_citizen, make_staff):
    """Citizens (one phone by default), clerks and bookings, with fresh tokens on every call."""

    class Desk:
        phone = "13812345678"

        async def citizen(self, phone=None):
            _, headers = await make_citizen(phone=phone or self.phone)
            return headers

        async def clerk(self, hall="main"):
            _, headers = await make_staff("clerk", hall=hall)
            return headers

        async def booking(self, phone=None, matter=MATTER, **kw):
            return await book(client, await self.citizen(phone), matter, **kw)

    return Desk()


# -- a successful check-in -------------------------------------------------------------------------


async def test_check_in_answers_queue_number_masked_citizen_and_materials(client, desk, fake_clock):
    booking = await desk.booking()
    assert booking["starts_at"] == "2026-09-30T11:00:00+08:00"
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    answer = await scan(client, clerk, booking["ticket"], counter="B01")
    assert answer["result"] == "checked_in" and answer["ok"] is True
    assert answer["message"] == "签到成功，请等候叫号"
    assert answer["queue_no"] == "B001"
    assert answer["counter"] == "B01"
    assert answer["checked_in_at"] == "2026-09-30T10:45:00+08:00"
    assert answer["undo_until"] == "2026-09-30T10:50:00+08:00"
    assert answer["scanned_at"] == "2026-09-30T10:45:00+08:00"
    assert answer["details"] == {}
    view = answer["booking"]
    assert view["id"] == booking["id"]
    assert view["matter"] == {"code": MATTER, "name": "营业执照设立登记"}
    assert (view["hall"], view["section"], view["section_name"]) == ("main", "commercial", booking["section_name"])
    assert view["citizen"] == {"name": None, "phone": "138****5678"}
    assert "13812345678" not in json.dumps(answer)
    assert answer["materials"] == MATERIALS
    assert await CheckIn.filter(booking_id=booking["id"]).count() == 1

    _, mine = await client.get(f"/api/v1/bookings/{booking['id']}", headers=await desk.citizen())
    assert mine.status == 200, mine.text
    assert mine.json["status"] == "checked_in" and mine.json["status_name"] == "已签到"
    assert mine.json["queue_no"] == "B001" and mine.json["counter"] == "B01"
    assert mine.json["checked_in_at"] == "2026-09-30T10:45:00+08:00"
    assert mine.json["ticket"] is None


async def test_admin_checks_in_any_hall(client, desk, fake_clock, make_staff):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    _, admin = await make_staff("admin")
    answer = await scan(client, admin, booking["ticket"])
    assert answer["result"] == "checked_in" and answer["queue_no"] == "B001" and answer["counter"] is None


# -- refusals --------------------------------------------------------------------------------------


async def test_invalid_tickets_are_refused_with_200(client, desk, fake_clock):
    booking = await desk.booking()
    ticket = booking["ticket"]
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    bad = {
        "garbage": ("hello world", "format"),
        "empty": ("", "format"),
        "unicode_10kb": ("办" * 10_240, "format"),
        "prefix_then_unicode": ("ZT1" + "办" * 100, "encoding"),
        "one_char_changed": (changed_char(ticket), "signature"),
        "truncated": (ticket[:-10], None),
        "truncated_hard": (ticket[:40], "length"),
        "prefix_only": ("ZT1", "length"),
        "not_base32": ("ZT1" + "0189!" * 20, "encoding"),
        "too_long": (ticket + "A" * 400, "format"),
        "other_prefix": ("ZT2" + ticket[3:], "format"),
        "url": ("https://example.com/?t=" + ticket, "format"),
        "nul_and_controls": ("ZT1\x00\x01\x02\n\t", "encoding"),
    }
    for name, (text, reason) in bad.items():
        answer = await scan(client, clerk, text)
        details = assert_refusal(answer, "invalid", "无效的预约码，请核对后重扫")
        if reason is not None:
            assert details == {"reason": reason}, name
        else:
            assert set(details) == {"reason"} and details["reason"] in {"length", "encoding", "signature"}, name
        assert "booking" not in answer, name
    # nothing was checked in by any of these
    assert await CheckIn.all().count() == 0
    assert (await Booking.get(id=booking["id"])).status is BookingStatus.booked
    # the real ticket with the CR LF a keyboard-wedge scanner appends is still the ticket
    assert (await scan(client, clerk, ticket + "\r\n"))["result"] == "checked_in"


async def test_signed_ticket_of_unknown_booking_or_future_version_is_invalid(client, app, desk, fake_clock):
    booking = await desk.booking()
    starts = dt.datetime.fromisoformat(booking["starts_at"])
    ends = dt.datetime.fromisoformat(booking["ends_at"])
    unknown = await tickets.issue(
        sign=app.ctx.tokens.sign, booking_id=uuid.uuid4(), version=1, hall="main", starts_at=starts, ends_at=ends
    )
    future = await tickets.issue(
        sign=app.ctx.tokens.sign,
        booking_id=uuid.UUID(booking["id"]),
        version=2,
        hall="main",
        starts_at=starts,
        ends_at=ends,
    )
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    for text in (unknown, future):
        details = assert_refusal(await scan(client, clerk, text), "invalid", "无效的预约码，请核对后重扫")
        assert details == {"reason": "unknown"}


async def test_ticket_of_unknown_key_is_invalid(client, desk, fake_clock):
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    text = ticket_for(uuid.uuid4(), start_minutes=29_800_000, length=30, kid="no-such-key")
    assert assert_refusal(await scan(client, clerk, text), "invalid") == {"reason": "kid"}


@pytest.mark.parametrize(
    ("start_minutes", "length"),
    [(0xFFFFFFFF, 30), (4_223_371_679, 0xFFFF)],
    ids=["start-beyond-year-9999", "end-beyond-year-9999"],
)
async def test_forged_ticket_with_out_of_range_times_is_invalid_not_500(
    client, desk, fake_clock, start_minutes, length
):
    """Anybody can print a ticket; its times are read before its signature is checked."""
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    text = ticket_for(uuid.uuid4(), start_minutes=start_minutes, length=length)
    _, resp = await client.post(CHECKINS, json={"ticket": text, "nonce": nonce()}, headers=clerk)
    assert resp.status == 200, f"{resp.status} {resp.text[:300]}"
    assert resp.json["result"] == "invalid"


async def test_revoked_after_reschedule(client, desk, fake_clock):
    booking = await desk.booking()
    citizen = await desk.citizen()
    later = (await slots_of(client, citizen))[1]
    _, moved = await client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule", json={"slot_id": later["slot_id"]}, headers=citizen
    )
    assert moved.status == 200, moved.text
    assert moved.json["version"] == 2
    at(fake_clock, dt.datetime.fromisoformat(later["starts_at"]).strftime("%Y-%m-%d %H:%M"))
    clerk = await desk.clerk()
    details = assert_refusal(
        await scan(client, clerk, booking["ticket"]),
        "revoked",
        "该预约码已失效（预约已改约），请出示最新的预约码",
    )
    assert details == {"reason": "rescheduled", "booking_id": booking["id"]}
    answer = await scan(client, clerk, moved.json["ticket"])
    assert answer["result"] == "checked_in"


async def test_cancelled(client, desk, fake_clock):
    booking = await desk.booking()
    _, resp = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=await desk.citizen())
    assert resp.status == 200, resp.text
    at(fake_clock, "10:45")
    details = assert_refusal(await scan(client, await desk.clerk(), booking["ticket"]), "cancelled", "该预约已取消")
    assert details == {"booking_id": booking["id"], "cancelled_at": "2026-09-30T10:00:00+08:00"}


async def test_wrong_hall(client, desk, fake_clock):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk(hall="gongjijin")
    answer = await scan(client, clerk, booking["ticket"])
    details = assert_refusal(answer, "wrong_hall", f"该预约应到「{MAIN_NAME}」办理")
    assert details == {"ticket_hall": "main", "hall_name": MAIN_NAME, "booking_id": booking["id"]}
    # The clerk still sees which booking it is (matter, time, masked holder) to send the citizen on.
    assert answer["booking"]["matter"]["code"] == MATTER
    assert answer["booking"]["starts_at"] == "2026-09-30T11:00:00+08:00"
    assert answer["booking"]["citizen"]["phone"] == "138****5678"
    assert (await Booking.get(id=booking["id"])).status is BookingStatus.booked


async def test_too_early_and_the_opening_boundary(client, desk, fake_clock):
    booking = await desk.booking()
    clerk = await desk.clerk()
    details = assert_refusal(
        await scan(client, clerk, booking["ticket"]), "too_early", "未到签到时间，请于 2026-09-30 10:30 后签到"
    )
    assert details == {"opens_at": "2026-09-30T10:30:00+08:00", "booking_id": booking["id"]}
    at(fake_clock, "10:29:59")
    clerk = await desk.clerk()
    assert (await scan(client, clerk, booking["ticket"]))["result"] == "too_early"
    at(fake_clock, "10:30:00")
    assert (await scan(client, clerk, booking["ticket"]))["result"] == "checked_in"


async def test_too_late_after_slot_end_plus_grace(client, desk, fake_clock):
    late, on_time = await desk.booking(), await desk.booking(phone="13900000001")
    at(fake_clock, "11:45:00")  # 11:30 + 15 minutes: still admitted
    clerk = await desk.clerk()
    assert (await scan(client, clerk, on_time["ticket"]))["result"] == "checked_in"
    at(fake_clock, "11:45:01")
    clerk = await desk.clerk()
    details = assert_refusal(
        await scan(client, clerk, late["ticket"]), "too_late", "已超过签到时间（11:45 截止），请重新预约或现场取号"
    )
    assert details == {"closed_at": "2026-09-30T11:45:00+08:00", "booking_id": late["id"]}


async def test_too_late_for_a_booking_marked_no_show(client, app, desk, fake_clock):
    booking = await desk.booking()
    other = await desk.booking(phone="13900000002")
    await Booking.filter(id=booking["id"]).update(status=BookingStatus.no_show)
    at(fake_clock, "10:45")  # inside the check-in window, but the booking is a no-show
    details = assert_refusal(await scan(client, await desk.clerk(), booking["ticket"]), "too_late")
    assert details["booking_id"] == booking["id"]
    # and the scheduled job's no-shows too
    at(fake_clock, "11:46")
    await app.ctx.scheduler.run_once("booking-no-shows")
    assert (await Booking.get(id=other["id"])).status is BookingStatus.no_show
    assert assert_refusal(await scan(client, await desk.clerk(), other["ticket"]), "too_late")


async def test_already_checked_in_names_time_counter_and_queue_number(client, desk, fake_clock):
    booking = await desk.booking()
    food = await desk.booking(matter=FOOD)
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    first = await scan(client, clerk, booking["ticket"], counter="B01")
    assert first["result"] == "checked_in"
    at(fake_clock, "10:50")
    other_clerk = await desk.clerk()
    again = await scan(client, other_clerk, booking["ticket"], counter="B02")
    details = assert_refusal(again, "already_checked_in", "该预约已于 10:45 在 B01 窗口签到，排队号 B001")
    assert details == {
        "checked_in_at": "2026-09-30T10:45:00+08:00",
        "counter": "B01",
        "queue_no": "B001",
        "booking_id": booking["id"],
    }
    assert again["queue_no"] == "B001"
    assert again["booking"]["citizen"]["phone"] == "138****5678"
    assert again["materials"] == MATERIALS
    assert await CheckIn.all().count() == 1
    # without a counter the message reads without one
    await scan(client, clerk, food["ticket"])
    answer = await scan(client, other_clerk, food["ticket"])
    assert answer["message"] == "该预约已于 10:50 签到，排队号 B002"
    assert answer["details"]["counter"] is None


# -- queue numbers ---------------------------------------------------------------------------------


async def test_queue_numbers_past_999_keep_every_digit(client, desk, fake_clock):
    from app.booking.models import QueueCounter

    booking = await desk.booking()
    at(fake_clock, "10:40")
    clerk = await desk.clerk()
    await QueueCounter.create(hall_code="main", section="commercial", day=dt.date(2026, 9, 30), issued=999)
    answer = await scan(client, clerk, booking["ticket"])
    assert answer["result"] == "checked_in" and answer["queue_no"] == "B1000"
    row = await CheckIn.get(booking_id=booking["id"])
    assert row.queue_no == "B1000"
    assert (await Booking.get(id=booking["id"])).queue_no == "B1000"
    scan_row = await DeskScan.get(booking_id=booking["id"])
    assert scan_row.checkin_id == row.id and scan_row.response is None  # the answer is built again from the row


async def test_queue_numbers_per_hall_section_and_day_shared_with_walk_ins(client, desk, fake_clock, make_staff):
    first = await desk.booking()  # 11:00
    second = await desk.booking(phone="13900000003")  # 11:00
    food = await desk.booking(matter=FOOD, starts="11:30")  # the 11:00 slot has two seats
    at(fake_clock, "10:40")
    clerk = await desk.clerk()
    gjj_clerk = await desk.clerk(hall="gongjijin")
    assert (await scan(client, clerk, first["ticket"]))["queue_no"] == "B001"
    fake_clock.advance(seconds=10)

    async def walk_in(headers, section, **extra):
        _, resp = await client.post(WALK_IN, json={"section": section, **extra}, headers=headers)
        assert resp.status == 201, resp.text
        return resp.json

    walk = await walk_in(clerk, "commercial")
    assert walk["queue_no"] == "B002"
    assert walk["kind"] == "walk_in" and walk["hall"] == "main" and walk["section"] == "commercial"
    assert walk["issued_at"] == "2026-09-30T10:40:10+08:00" and walk["undo_until"] == "2026-09-30T10:45:10+08:00"
    fake_clock.advance(seconds=10)  # the recent list is ordered by time: one step per number
    assert (await scan(client, clerk, second["ticket"]))["queue_no"] == "B003"
    fake_clock.advance(seconds=10)
    assert (await walk_in(clerk, "social_security"))["queue_no"] == "D001"
    fake_clock.advance(seconds=10)
    assert (await walk_in(clerk, "social_security"))["queue_no"] == "D002"
    # another hall has its own sequence
    assert (await walk_in(gjj_clerk, "commercial"))["queue_no"] == "B001"
    assert (await walk_in(gjj_clerk, "social_security"))["queue_no"] == "D001"
    at(fake_clock, "11:05")  # the 11:30 booking may check in now
    clerk = await desk.clerk()
    assert (await scan(client, clerk, food["ticket"]))["queue_no"] == "B004"
    at(fake_clock, "11:06")
    _, admin = await make_staff("admin")
    assert (await walk_in(admin, "commercial", hall="main"))["queue_no"] == "B005"
    _, listed = await client.get(CHECKINS, headers=clerk)
    assert listed.status == 200, listed.text
    assert [i["queue_no"] for i in listed.json["items"]] == ["B005", "B004", "D002", "D001", "B003", "B002", "B001"]
    kinds = {i["queue_no"]: i["kind"] for i in listed.json["items"]}
    assert kinds["B001"] == kinds["B003"] == kinds["B004"] == "booking" and kinds["B002"] == "walk_in"

    # a new day starts again at 001 (a booking on the next open day, and a walk-in)
    at(fake_clock, "2026-10-08 08:00")
    citizen = await desk.citizen("13900000004")
    slot = next(
        s for s in await slots_of(client, citizen, date="2026-10-08") if s["starts_at"].endswith("09:00:00+08:00")
    )
    tomorrow = await book(client, citizen, slot_id=slot["slot_id"])
    at(fake_clock, "2026-10-08 08:40")
    clerk = await desk.clerk()
    assert (await walk_in(clerk, "commercial"))["queue_no"] == "B001"
    assert (await scan(client, clerk, tomorrow["ticket"]))["queue_no"] == "B002"
    assert (await walk_in(clerk, "social_security"))["queue_no"] == "D001"
    _, listed = await client.get(CHECKINS, headers=clerk, params={"date": "2026-09-30"})
    assert len(listed.json["items"]) == 7


async def test_walk_in_needs_a_hall_for_admins_and_stays_in_the_clerks(client, desk, fake_clock, make_staff):
    clerk = await desk.clerk()
    _, admin = await make_staff("admin")
    _, resp = await client.post(WALK_IN, json={"section": "commercial"}, headers=admin)
    assert_error(resp, 422, "HALL_REQUIRED")
    _, resp = await client.post(WALK_IN, json={"section": "commercial", "hall": "nowhere"}, headers=admin)
    assert_error(resp, 404, "HALL_NOT_FOUND")
    _, resp = await client.post(WALK_IN, json={"section": "commercial", "hall": "gongjijin"}, headers=clerk)
    assert_error(resp, 403, "OUT_OF_SCOPE")
    _, resp = await client.post(WALK_IN, json={"section": "astrology"}, headers=clerk)
    assert_error(resp, 422, "INVALID_INPUT")
    assert await CheckIn.all().count() == 0


# -- nonces and the scan log -----------------------------------------------------------------------


async def test_same_nonce_replays_byte_identical_and_writes_nothing(client, desk, fake_clock):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    body = {"ticket": booking["ticket"], "nonce": "scan-0001", "counter": "B01"}
    _, first = await client.post(CHECKINS, json=body, headers=clerk)
    assert first.status == 200 and first.json["result"] == "checked_in"
    counts = (await DeskScan.all().count(), await CheckIn.all().count())
    assert counts == (1, 1)
    at(fake_clock, "10:47")  # the clerk's token is still valid
    _, again = await client.post(CHECKINS, json=body, headers=clerk)
    assert again.status == 200
    assert again.json == first.json
    assert again.content == first.content, "the replay should be byte-identical"
    assert (await DeskScan.all().count(), await CheckIn.all().count()) == counts


async def test_same_nonce_replays_a_refusal_byte_identical(client, desk, fake_clock):
    booking = await desk.booking()
    clerk = await desk.clerk()
    body = {"ticket": booking["ticket"], "nonce": "scan-early-1"}
    _, first = await client.post(CHECKINS, json=body, headers=clerk)
    assert first.json["result"] == "too_early"
    at(fake_clock, "10:10")  # a retry a little later replays the first answer
    _, again = await client.post(CHECKINS, json=body, headers=clerk)
    assert again.json == first.json
    assert again.content == first.content, "the replay should be byte-identical"
    assert await DeskScan.all().count() == 1 and await CheckIn.all().count() == 0
    # a nonce belongs to its clerk: another clerk's same nonce is a new scan
    at(fake_clock, "10:45")
    other = await desk.clerk()
    answer = await scan(client, other, booking["ticket"], scan_nonce="scan-early-1")
    assert answer["result"] == "checked_in"
    assert await DeskScan.all().count() == 2


@pytest.mark.parametrize(
    "body",
    [
        {"ticket": "ZT1AAAA"},
        {"ticket": "ZT1AAAA", "nonce": "short"},
        {"ticket": "ZT1AAAA", "nonce": "x" * 65},
        {"ticket": "ZT1AAAA", "nonce": "has space 123"},
        {"ticket": "ZT1AAAA", "nonce": "ünïcödé-nonce"},
        {"ticket": "ZT1AAAA", "nonce": 12345678},
        {"nonce": "nonce-missing-ticket"},
        {"ticket": 12345678, "nonce": "nonce-number-ticket"},
        {"ticket": None, "nonce": "nonce-null-ticket"},
        {"ticket": ["ZT1"], "nonce": "nonce-list-ticket"},
        {"ticket": "ZT1AAAA", "nonce": "nonce-extra-field", "extra": 1},
        {"ticket": "ZT1AAAA", "nonce": "nonce-empty-counter", "counter": ""},
        {"ticket": "ZT1AAAA", "nonce": "nonce-long-counter", "counter": "C" * 17},
        {"ticket": "x" * 65_537, "nonce": "nonce-huge-ticket"},
    ],
    ids=[
        "no-nonce",
        "nonce-too-short",
        "nonce-too-long",
        "nonce-space",
        "nonce-unicode",
        "nonce-number",
        "no-ticket",
        "ticket-number",
        "ticket-null",
        "ticket-list",
        "extra-field",
        "counter-empty",
        "counter-too-long",
        "ticket-over-64k",
    ],
)
async def test_malformed_scan_bodies_are_422(client, desk, body):
    _, resp = await client.post(CHECKINS, json=body, headers=await desk.clerk())
    assert_error(resp, 422, "INVALID_INPUT")
    assert await DeskScan.all().count() == 0


async def test_non_json_scan_body_is_422(client, desk):
    _, resp = await client.post(CHECKINS, content=b"ZT1AAAA", headers=await desk.clerk())
    assert_error(resp, 422, "MALFORMED_JSON")


async def test_failed_scans_are_logged(client, desk, fake_clock):
    booking = await desk.booking()
    cancelled = await desk.booking(matter=FOOD)
    _, resp = await client.post(f"/api/v1/bookings/{cancelled['id']}/cancel", headers=await desk.citizen())
    assert resp.status == 200
    clerk = await desk.clerk()
    await scan(client, clerk, "garbage", scan_nonce="log-invalid")
    await scan(client, clerk, booking["ticket"], scan_nonce="log-too-early")
    await scan(client, clerk, cancelled["ticket"], scan_nonce="log-cancelled")
    await scan(client, await desk.clerk(hall="gongjijin"), booking["ticket"], scan_nonce="log-wrong-hall")
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    await scan(client, clerk, booking["ticket"], scan_nonce="log-checked-in")
    await scan(client, clerk, booking["ticket"], scan_nonce="log-already")
    rows = {r.nonce: r for r in await DeskScan.all()}
    assert {n: r.result for n, r in rows.items()} == {
        "log-invalid": "invalid",
        "log-too-early": "too_early",
        "log-cancelled": "cancelled",
        "log-wrong-hall": "wrong_hall",
        "log-checked-in": "checked_in",
        "log-already": "already_checked_in",
    }
    assert rows["log-invalid"].booking_id is None and rows["log-invalid"].hall_code == "main"
    assert json.loads(rows["log-invalid"].response)["details"] == {"reason": "format"}
    assert str(rows["log-too-early"].booking_id) == booking["id"]
    assert str(rows["log-cancelled"].booking_id) == cancelled["id"]
    assert rows["log-wrong-hall"].hall_code == "gongjijin" and str(rows["log-wrong-hall"].booking_id) == booking["id"]
    assert str(rows["log-already"].booking_id) == booking["id"]
    assert all(len(r.ticket_digest) == 64 for r in rows.values())


# -- counters --------------------------------------------------------------------------------------


async def test_counters_must_be_known_once_a_hall_lists_them(client, desk, fake_clock, admin_headers):
    booking = await desk.booking()
    _, resp = await client.put(
        "/api/v1/admin/halls/main/counters",
        json={"counters": [{"code": "B01", "section": "commercial"}]},
        headers=admin_headers,
    )
    assert resp.status == 200, resp.text
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    _, resp = await client.post(
        CHECKINS, json={"ticket": booking["ticket"], "nonce": nonce(), "counter": "ZZ9"}, headers=clerk
    )
    error = assert_error(resp, 422, "COUNTER_UNKNOWN")
    assert error["message"] == "该窗口不属于本大厅"
    assert error["details"] == {"counter": "ZZ9", "counters": ["B01"]}
    assert await DeskScan.all().count() == 0
    _, resp = await client.post(WALK_IN, json={"section": "commercial", "counter": "ZZ9"}, headers=clerk)
    assert_error(resp, 422, "COUNTER_UNKNOWN")
    answer = await scan(client, clerk, booking["ticket"], counter="B01")
    assert answer["result"] == "checked_in" and answer["counter"] == "B01"
    _, resp = await client.post(WALK_IN, json={"section": "commercial", "counter": "B01"}, headers=clerk)
    assert resp.status == 201 and resp.json["queue_no"] == "B002"
    # a hall without a counter list accepts any counter name
    gjj = await desk.clerk(hall="gongjijin")
    _, resp = await client.post(WALK_IN, json={"section": "social_security", "counter": "ZZ9"}, headers=gjj)
    assert resp.status == 201, resp.text


async def test_admin_check_in_also_needs_a_listed_counter(client, desk, fake_clock, admin_headers, make_staff):
    """A hall's counter list binds every desk of the hall, the administrator's too (walk-ins check it)."""
    booking = await desk.booking()
    _, resp = await client.put(
        "/api/v1/admin/halls/main/counters",
        json={"counters": [{"code": "B01", "section": "commercial"}]},
        headers=admin_headers,
    )
    assert resp.status == 200, resp.text
    at(fake_clock, "10:45")
    _, admin = await make_staff("admin")
    _, resp = await client.post(
        WALK_IN, json={"section": "commercial", "hall": "main", "counter": "ZZ9"}, headers=admin
    )
    assert_error(resp, 422, "COUNTER_UNKNOWN")
    _, resp = await client.post(
        CHECKINS, json={"ticket": booking["ticket"], "nonce": nonce(), "counter": "ZZ9"}, headers=admin
    )
    assert resp.status == 422 and resp.json["error"]["code"] == "COUNTER_UNKNOWN", resp.text[:300]


NUL = "B\u000001"
NUL_REQUESTS = {
    "checkin-counter": ("post", CHECKINS, {"json": {"ticket": "TICKET", "nonce": "nul-counter-1", "counter": NUL}}),
    "walk-in-counter": ("post", WALK_IN, {"json": {"section": "commercial", "counter": NUL}}),
    "walk-in-hall": ("post", WALK_IN, {"json": {"section": "commercial", "hall": NUL}}),
    "revocations-hall": ("get", REVOCATIONS, {"params": {"hall": NUL}}),
    "checkins-hall": ("get", CHECKINS, {"params": {"hall": NUL}}),
}


@pytest.mark.parametrize("name", list(NUL_REQUESTS))
async def test_nul_characters_from_a_desk_are_refused_not_500(client, desk, fake_clock, make_staff, name):
    """What a desk sends never makes a 5xx (PostgreSQL text cannot hold NUL; SQLite can)."""
    booking = await desk.booking()
    at(fake_clock, "10:45")
    _, admin = await make_staff("admin")
    headers = await desk.clerk() if "counter" in name else admin
    method, path, kwargs = NUL_REQUESTS[name]
    if "json" in kwargs and kwargs["json"].get("ticket") == "TICKET":
        kwargs = {"json": {**kwargs["json"], "ticket": booking["ticket"]}}
    _, resp = await getattr(client, method)(path, headers=headers, **kwargs)
    assert resp.status < 500, resp.text[:300]


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59-08:00",
        "1970-01-01T00:00:00Z",
        "2026-09-30T10:00:00+14:00",
        "2026-09-30T10:00:00.123456+08:00",
    ],
)
async def test_revocations_since_extremes_never_500(client, desk, since):
    _, resp = await client.get(REVOCATIONS, headers=await desk.clerk(), params={"since": since})
    assert resp.status in (200, 422), resp.text[:300]


# -- undo ------------------------------------------------------------------------------------------


async def test_undo_within_five_minutes_readmits_the_ticket_with_a_new_number(client, desk, fake_clock):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    first = await scan(client, clerk, booking["ticket"], counter="B01")
    assert first["queue_no"] == "B001"
    at(fake_clock, "10:50")  # exactly the undo limit
    _, resp = await client.post(f"{CHECKINS}/{first['checkin_id']}/undo", headers=clerk)
    assert resp.status == 200, resp.text
    assert resp.json == {
        "checkin_id": first["checkin_id"],
        "queue_no": "B001",
        "undone_at": "2026-09-30T10:50:00+08:00",
    }
    _, mine = await client.get(f"/api/v1/bookings/{booking['id']}", headers=await desk.citizen())
    assert mine.json["status"] == "booked"
    assert mine.json["queue_no"] is None and mine.json["counter"] is None and mine.json["checked_in_at"] is None
    assert mine.json["ticket"]
    _, listed = await client.get(CHECKINS, headers=clerk)
    assert listed.json["items"][0]["undone_at"] == "2026-09-30T10:50:00+08:00"

    _, again = await client.post(f"{CHECKINS}/{first['checkin_id']}/undo", headers=clerk)
    assert_error(again, 409, "CHECKIN_ALREADY_UNDONE")

    answer = await scan(client, clerk, booking["ticket"], counter="B01")
    assert answer["result"] == "checked_in" and answer["queue_no"] == "B002"
    assert answer["checkin_id"] != first["checkin_id"]
    _, mine = await client.get(f"/api/v1/bookings/{booking['id']}", headers=await desk.citizen())
    assert mine.json["status"] == "checked_in" and mine.json["queue_no"] == "B002"


async def test_undo_after_the_check_in_window_closed_is_refused(client, desk, fake_clock):
    """Booked again after 11:45 (slot end plus grace), the no-show job would strike the citizen at once."""
    booking = await desk.booking()  # 11:00-11:30, check-in closes 11:45
    at(fake_clock, "11:44")
    clerk = await desk.clerk()
    first = await scan(client, clerk, booking["ticket"])
    assert first["result"] == "checked_in"
    at(fake_clock, "11:46")  # within the five undo minutes, past the window
    _, resp = await client.post(f"{CHECKINS}/{first['checkin_id']}/undo", headers=clerk)
    error = assert_error(resp, 409, "UNDO_EXPIRED")
    assert error["details"] == {"closed_at": "2026-09-30T11:45:00+08:00"}
    assert (await Booking.get(id=booking["id"])).status is BookingStatus.checked_in
    assert (await CheckIn.get(id=first["checkin_id"])).undone_at is None


async def test_a_nonce_reused_for_another_ticket_is_refused_not_replayed(client, desk, fake_clock):
    first_booking = await desk.booking()
    second_booking = await desk.booking(phone="13900000003")
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    answer = await scan(client, clerk, first_booking["ticket"], scan_nonce="scan-reused-1")
    assert answer["result"] == "checked_in"
    body = {"ticket": second_booking["ticket"], "nonce": "scan-reused-1"}
    _, resp = await client.post(CHECKINS, json=body, headers=clerk)
    assert_error(resp, 422, "NONCE_REUSED")
    assert (await Booking.get(id=second_booking["id"])).status is BookingStatus.booked
    assert await DeskScan.all().count() == 1


async def test_undo_after_five_minutes_is_refused(client, desk, fake_clock):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    first = await scan(client, clerk, booking["ticket"])
    at(fake_clock, "10:50:01")
    _, resp = await client.post(f"{CHECKINS}/{first['checkin_id']}/undo", headers=clerk)
    error = assert_error(resp, 409, "UNDO_EXPIRED")
    assert error["details"] == {"minutes": 5}
    assert (await Booking.get(id=booking["id"])).status is BookingStatus.checked_in


async def test_undo_of_a_walk_in(client, desk, fake_clock):
    clerk = await desk.clerk()
    _, walk = await client.post(WALK_IN, json={"section": "commercial"}, headers=clerk)
    _, resp = await client.post(f"{CHECKINS}/{walk.json['checkin_id']}/undo", headers=clerk)
    assert resp.status == 200 and resp.json["queue_no"] == "B001"
    _, resp = await client.post(f"{CHECKINS}/{walk.json['checkin_id']}/undo", headers=clerk)
    assert_error(resp, 409, "CHECKIN_ALREADY_UNDONE")


async def test_undo_by_another_halls_clerk_or_of_nothing_is_404(client, desk, fake_clock, make_staff):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    first = await scan(client, clerk, booking["ticket"])
    gjj = await desk.clerk(hall="gongjijin")
    for checkin_id in (first["checkin_id"], str(uuid.uuid4()), "not-a-uuid"):
        _, resp = await client.post(f"{CHECKINS}/{checkin_id}/undo", headers=gjj)
        assert_error(resp, 404, "CHECKIN_NOT_FOUND")
    assert (await Booking.get(id=booking["id"])).status is BookingStatus.checked_in
    _, admin = await make_staff("admin")
    _, resp = await client.post(f"{CHECKINS}/{first['checkin_id']}/undo", headers=admin)
    assert resp.status == 200, resp.text


# -- revocations -----------------------------------------------------------------------------------


async def test_revocations_list_the_clerks_hall_only(client, desk, fake_clock, make_staff):
    cancelled = await desk.booking()
    citizen = await desk.citizen()
    _, resp = await client.post(f"/api/v1/bookings/{cancelled['id']}/cancel", headers=citizen)
    assert resp.status == 200
    fund = await desk.booking(matter=FUND)
    _, resp = await client.post(f"/api/v1/bookings/{fund['id']}/cancel", headers=citizen)
    assert resp.status == 200
    active = await desk.booking(phone="13900000005")
    at(fake_clock, "10:05")
    citizen = await desk.citizen()
    moved = await desk.booking(matter=FOOD)
    target = (await slots_of(client, citizen, FOOD))[1]["slot_id"]
    _, resp = await client.post(f"/api/v1/bookings/{moved['id']}/reschedule", json={"slot_id": target}, headers=citizen)
    assert resp.status == 200, resp.text

    clerk = await desk.clerk()
    _, rev = await client.get(REVOCATIONS, headers=clerk)
    assert rev.status == 200, rev.text
    assert rev.headers["cache-control"] == "private, no-store"
    assert rev.json["hall"] == "main" and rev.json["generated_at"] == "2026-09-30T10:05:00+08:00"
    items = rev.json["items"]
    assert [(i["booking_id"], i["version"], i["reason"]) for i in items] == [
        (cancelled["id"], 1, "cancelled"),
        (moved["id"], 1, "rescheduled"),
    ]
    assert items[0]["revoked_at"] == "2026-09-30T10:00:00+08:00"
    assert items[1]["revoked_at"] == "2026-09-30T10:05:00+08:00"
    assert active["id"] not in json.dumps(rev.json) and fund["id"] not in json.dumps(rev.json)

    _, since = await client.get(REVOCATIONS, headers=clerk, params={"since": "2026-09-30T02:01:00Z"})
    assert since.status == 200, since.text
    assert [i["booking_id"] for i in since.json["items"]] == [moved["id"]]
    _, since = await client.get(REVOCATIONS, headers=clerk, params={"since": "2026-09-30T02:00:00Z"})
    assert len(since.json["items"]) == 2  # since is inclusive
    _, naive = await client.get(REVOCATIONS, headers=clerk, params={"since": "2026-09-30T10:01:00"})
    assert_error(naive, 422, "SINCE_NEEDS_OFFSET")
    _, junk = await client.get(REVOCATIONS, headers=clerk, params={"since": "yesterday"})
    assert_error(junk, 422, "INVALID_INPUT")

    gjj = await desk.clerk(hall="gongjijin")
    _, rev = await client.get(REVOCATIONS, headers=gjj)
    assert [(i["booking_id"], i["reason"]) for i in rev.json["items"]] == [(fund["id"], "cancelled")]
    _, other = await client.get(REVOCATIONS, headers=gjj, params={"hall": "main"})
    assert_error(other, 403, "OUT_OF_SCOPE")

    _, admin = await make_staff("admin")
    _, resp = await client.get(REVOCATIONS, headers=admin)
    assert_error(resp, 422, "HALL_REQUIRED")
    _, resp = await client.get(REVOCATIONS, headers=admin, params={"hall": "main"})
    assert resp.status == 200 and len(resp.json["items"]) == 2

    # once a revoked ticket's slot is a day over it leaves the list
    at(fake_clock, "2026-10-02 12:00")
    _, admin = await make_staff("admin")
    _, resp = await client.get(REVOCATIONS, headers=admin, params={"hall": "main"})
    assert resp.status == 200 and resp.json["items"] == []


async def test_revocations_since_with_the_shanghai_offset(client, desk, fake_clock):
    """The desk sends its last download time as the API writes times: with +08:00."""
    first = await desk.booking()
    _, resp = await client.post(f"/api/v1/bookings/{first['id']}/cancel", headers=await desk.citizen())
    assert resp.status == 200
    at(fake_clock, "10:05")
    second = await desk.booking(matter=FOOD)
    _, resp = await client.post(f"/api/v1/bookings/{second['id']}/cancel", headers=await desk.citizen())
    assert resp.status == 200
    clerk = await desk.clerk()
    expected = {
        "2026-09-30T10:01:00+08:00": [second["id"]],  # = 02:01Z
        "2026-09-30T02:01:00+00:00": [second["id"]],
        "2026-09-30T09:59:00+08:00": [first["id"], second["id"]],
        "2026-09-30T10:06:00+08:00": [],
        "2026-09-30T03:01:00+01:00": [second["id"]],  # = 02:01Z
    }
    for since, ids in expected.items():
        _, resp = await client.get(REVOCATIONS, headers=clerk, params={"since": since})
        assert resp.status == 200, resp.text
        assert [i["booking_id"] for i in resp.json["items"]] == ids, since


# -- roles -----------------------------------------------------------------------------------------

DESK_CALLS = [
    ("post", CHECKINS, {"ticket": "ZT1", "nonce": "role-nonce-1"}),
    ("post", f"{CHECKINS}/00000000-0000-4000-8000-000000000001/undo", None),
    ("get", CHECKINS, None),
    ("post", WALK_IN, {"section": "commercial"}),
    ("get", REVOCATIONS, None),
]


@pytest.mark.parametrize(("method", "path", "body"), DESK_CALLS, ids=[f"{m}-{p}" for m, p, _ in DESK_CALLS])
async def test_desk_needs_a_clerk_or_admin(client, seeded, make_citizen, make_staff, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    _, resp = await getattr(client, method)(path, **kwargs)
    assert_error(resp, 401, "TOKEN_MISSING")
    _, citizen = await make_citizen(loa=3)
    _, resp = await getattr(client, method)(path, headers=citizen, **kwargs)
    assert_error(resp, 401, "TOKEN_INVALID")  # a citizen token is not for the staff audience
    _, reviewer = await make_staff("reviewer")
    _, resp = await getattr(client, method)(path, headers=reviewer, **kwargs)
    error = assert_error(resp, 403, "INSUFFICIENT_ROLE")
    assert error["details"] == {"required_roles": ["clerk", "admin"]}
    assert await DeskScan.all().count() == 0 and await CheckIn.all().count() == 0


async def test_clerk_cannot_change_counters(client, desk):
    _, resp = await client.put("/api/v1/admin/halls/main/counters", json={"counters": []}, headers=await desk.clerk())
    assert_error(resp, 403, "INSUFFICIENT_ROLE")


# -- offline verification --------------------------------------------------------------------------


async def test_jwks_verifies_tickets_offline_and_old_tickets_survive_key_rotation(client, app, desk, fake_clock):
    booking = await desk.booking()
    _, jwks = await client.get("/.well-known/jwks.json")
    assert jwks.status == 200
    claims = tickets.verify_offline(booking["ticket"], jwks.json)
    assert str(claims.booking_id) == booking["id"] and claims.version == 1 and claims.hall == "main"
    assert claims.starts_at == dt.datetime.fromisoformat(booking["starts_at"])
    assert claims.ends_at == dt.datetime.fromisoformat(booking["ends_at"])
    old_kid = claims.kid
    with pytest.raises(tickets.TicketInvalid):
        tickets.verify_offline(changed_char(booking["ticket"]), jwks.json)
    with pytest.raises(tickets.TicketInvalid):
        tickets.verify_offline(booking["ticket"], {"keys": []})

    new_kid = await app.ctx.tokens.create_key(activate=True)
    assert new_kid != old_kid
    other = await desk.booking(matter=FOOD)
    _, jwks = await client.get("/.well-known/jwks.json")
    assert {k["kid"] for k in jwks.json["keys"]} >= {old_kid, new_kid}
    assert tickets.verify_offline(other["ticket"], jwks.json).kid == new_kid
    assert tickets.verify_offline(booking["ticket"], jwks.json).kid == old_kid
    _, mine = await client.get(f"/api/v1/bookings/{booking['id']}", headers=await desk.citizen())
    assert tickets.verify_offline(mine.json["ticket"], jwks.json).kid == new_kid  # reissued with the new key

    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    assert (await scan(client, clerk, booking["ticket"]))["result"] == "checked_in"  # the old ticket
    assert (await scan(client, clerk, other["ticket"]))["result"] == "checked_in"


# -- the issued ticket's digest (a scan of exactly that ticket skips the signature check) -----------


def digest_of(ticket: str) -> str:
    _, body, signature = tickets.decode(ticket)
    return tickets.digest(body, signature)


async def test_bookings_record_the_digest_of_the_ticket_issued_and_reschedules_renew_it(client, desk, fake_clock):
    booking = await desk.booking()
    assert (await Booking.get(id=booking["id"])).ticket_digest == digest_of(booking["ticket"])
    citizen = await desk.citizen()
    later = (await slots_of(client, citizen))[1]
    _, moved = await client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule", json={"slot_id": later["slot_id"]}, headers=citizen
    )
    assert moved.status == 200, moved.text
    row = await Booking.get(id=booking["id"])
    assert row.ticket_digest == digest_of(moved.json["ticket"]) != digest_of(booking["ticket"])


async def test_tickets_other_than_the_one_recorded_are_verified_then_checked_in(client, app, desk, fake_clock):
    """A booking without a recorded digest, and a ticket signed again with a newer key: the signature decides."""
    unrecorded = await desk.booking()
    await Booking.filter(id=unrecorded["id"]).update(ticket_digest=None)
    resigned = await desk.booking(matter=FOOD)
    await app.ctx.tokens.create_key(activate=True)
    _, mine = await client.get(f"/api/v1/bookings/{resigned['id']}", headers=await desk.citizen())
    assert mine.json["ticket"] != resigned["ticket"]  # the same claims, signed with the new key
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    assert (await scan(client, clerk, unrecorded["ticket"]))["result"] == "checked_in"
    assert (await scan(client, clerk, mine.json["ticket"]))["result"] == "checked_in"
    # a forged signature on the clerk's own hall's booking is still invalid, and changes nothing
    third = await desk.booking(phone="13900000003")
    details = assert_refusal(await scan(client, clerk, changed_char(third["ticket"], -5)), "invalid")
    assert details == {"reason": "signature"}
    assert (await Booking.get(id=third["id"])).status is BookingStatus.booked
    assert await CheckIn.filter(booking_id=third["id"]).count() == 0
    # nor does a forged ticket of a booking already checked in learn anything about it
    details = assert_refusal(await scan(client, clerk, changed_char(resigned["ticket"], -5)), "invalid")
    assert details == {"reason": "signature"}
    assert (await scan(client, clerk, resigned["ticket"]))["result"] == "already_checked_in"  # the issued one


async def test_a_replay_after_an_undo_still_answers_the_first_check_in(client, desk, fake_clock):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    body = {"ticket": booking["ticket"], "nonce": "scan-undo-1", "counter": "B01"}
    _, first = await client.post(CHECKINS, json=body, headers=clerk)
    assert first.json["result"] == "checked_in"
    _, undone = await client.post(f"{CHECKINS}/{first.json['checkin_id']}/undo", headers=clerk)
    assert undone.status == 200, undone.text
    again = await scan(client, clerk, booking["ticket"], counter="B01")
    assert again["queue_no"] == "B002"
    fake_clock.advance(seconds=30)
    _, replay = await client.post(CHECKINS, json=body, headers=clerk)
    assert replay.status == 200 and replay.content == first.content
    assert await CheckIn.filter(booking_id=booking["id"]).count() == 2
