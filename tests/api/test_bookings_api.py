"""Citizen booking API and hall calendar administration through HTTP: every rule and error code.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai), a Wednesday before the National Day
holiday (10-01..10-07); 2026-10-10 is a 调休 Saturday workday. With the default calendar the
booking window is 09-30, 10-08, 10-09, 10-10, 10-12, 10-13 and 10-14.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from app.booking import jobs as booking_jobs
from app.clock import SHANGHAI
from app.matters import service as catalogue
from auth import logins
from auth.models import Citizen
from tests import factories

pytestmark = pytest.mark.asyncio

MATTER = "4308-XK-SS-001"
MATTER2 = "4308-XK-SS-002"
GJJ_MATTER = "4308-GG-ZF-001"
NO_BOOKING_MATTER = "4308-XK-SS-009"
WINDOW = ["2026-09-30", "2026-10-08", "2026-10-09", "2026-10-10", "2026-10-12", "2026-10-13", "2026-10-14"]
SLOTS_PER_DAY = 13  # 09:00-12:00 (6) and 13:30-17:00 (7) in 30-minute slots


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


def local(day: str, hhmm: str = "00:00", second: int = 0) -> dt.datetime:
    """A Shanghai wall-clock time as the UTC instant the fake clock holds."""
    hours, minutes = map(int, hhmm.split(":"))
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hours, minutes, second), SHANGHAI)
    return moment.astimezone(dt.UTC)


def sid(day: str, hhmm: str, hall: str = "main", section: str = "commercial") -> str:
    """A slot id, e.g. main.commercial.20261008.0900."""
    return f"{hall}.{section}.{day.replace('-', '')}.{hhmm.replace(':', '')}"


def idem(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or uuid.uuid4().hex}


def error(resp) -> dict[str, Any]:
    return resp.json["error"]


class Person:
    """A citizen whose tokens can be renewed after the fake clock moved (access tokens live 15 min)."""

    def __init__(self, make_citizen, phone: str) -> None:
        self._make = make_citizen
        self.phone = phone
        self.id = ""
        self.headers: dict[str, str] = {}

    async def login(self) -> Person:
        citizen, self.headers = await self._make(phone=self.phone)
        self.id = str(citizen.id)
        return self


@pytest.fixture
def person(make_citizen):
    async def make() -> Person:
        return await Person(make_citizen, "139" + f"{uuid.uuid4().int % 10**8:08d}").login()

    return make


async def book(client, who: Person, slot_id: str, matter: str = MATTER, key: str | None = None):
    _, resp = await client.post(
        "/api/v1/bookings", json={"matter_code": matter, "slot_id": slot_id}, headers={**who.headers, **idem(key)}
    )
    return resp


async def booked(client, who: Person, slot_id: str, matter: str = MATTER) -> dict[str, Any]:
    resp = await book(client, who, slot_id, matter)
    assert resp.status == 201, resp.text
    return resp.json


async def slot_map(client, who: Person, matter: str = MATTER, **params: str) -> dict[str, dict[str, Any]]:
    _, resp = await client.get(f"/api/v1/matters/{matter}/slots", params=params, headers=who.headers)
    assert resp.status == 200, resp.text
    return {s["slot_id"]: s for s in resp.json["items"]}


async def detail(client, who: Person, booking_id: str) -> dict[str, Any]:
    _, resp = await client.get(f"/api/v1/bookings/{booking_id}", headers=who.headers)
    assert resp.status == 200, resp.text
    return resp.json


async def notifications(client, admin: dict[str, str], **params: str) -> list[dict[str, Any]]:
    _, resp = await client.get("/api/v1/admin/notifications", params=params, headers=admin)
    assert resp.status == 200, resp.text
    return resp.json["items"]


async def my_bookings(client, who: Person, **params: str):
    _, resp = await client.get("/api/v1/bookings", params=params, headers=who.headers)
    return resp


# -- slots -------------------------------------------------------------------------------------


async def test_slots_window_skips_national_day_and_opens_the_makeup_saturday(client, seeded, fake_clock, person):
    alice = await person()
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=alice.headers)
    assert resp.status == 200, resp.text
    body = resp.json
    assert resp.headers["cache-control"] == "private, no-store"
    assert body["matter_code"] == MATTER
    assert body["hall"] == {"code": "main", "name": "张家界市政务服务中心"}
    assert body["section"] == "commercial" and body["slot_minutes"] == 30
    assert body["window"] == {"from": "2026-09-30", "to": "2026-10-14"}
    dates = [s["date"] for s in body["items"]]
    assert sorted(set(dates)) == WINDOW
    for holiday in ("2026-10-01", "2026-10-04", "2026-10-07", "2026-10-11"):
        assert holiday not in dates
    by_day: dict[str, list[dict[str, Any]]] = {}
    for item in body["items"]:
        by_day.setdefault(item["date"], []).append(item)
    # today: 10:00 has started; 10:30 is listed but within the 30-minute cutoff
    today = by_day["2026-09-30"]
    assert today[0]["slot_id"] == sid("2026-09-30", "10:30") and today[0]["bookable"] is False
    assert today[1]["slot_id"] == sid("2026-09-30", "11:00") and today[1]["bookable"] is True
    assert len(today) == SLOTS_PER_DAY - 3
    # the 调休 Saturday has a weekday's slots
    saturday = by_day["2026-10-10"]
    assert len(saturday) == SLOTS_PER_DAY
    assert saturday[0] == {
        "slot_id": "main.commercial.20261010.0900",
        "date": "2026-10-10",
        "starts_at": "2026-10-10T09:00:00+08:00",
        "ends_at": "2026-10-10T09:30:00+08:00",
        "capacity": 2,
        "available": 2,
        "bookable": True,
    }
    assert [s["starts_at"][11:16] for s in saturday][5:7] == ["11:30", "13:30"]  # lunch break
    assert saturday[-1]["ends_at"] == "2026-10-10T17:00:00+08:00"
    for day in WINDOW[1:]:
        assert len(by_day[day]) == SLOTS_PER_DAY


async def test_slots_window_follows_the_shanghai_date(client, seeded, fake_clock, person):
    fake_clock.current = local("2026-10-08", "07:00")  # still 10-07 in UTC
    alice = await person()
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=alice.headers)
    assert resp.status == 200, resp.text
    assert resp.json["window"] == {"from": "2026-10-08", "to": "2026-10-15"}
    first = resp.json["items"][0]
    assert first["slot_id"] == sid("2026-10-08", "09:00") and first["bookable"] is True
    made = await booked(client, alice, first["slot_id"])
    assert made["date"] == "2026-10-08"
    assert (await detail(client, alice, made["id"]))["reminder"] is None  # the day before has passed


async def test_slots_from_to_filter(client, seeded, fake_clock, person):
    alice = await person()
    two = await slot_map(client, alice, **{"from": "2026-10-09", "to": "2026-10-10"})
    assert {s["date"] for s in two.values()} == {"2026-10-09", "2026-10-10"}
    assert len(two) == 2 * SLOTS_PER_DAY
    tail = await slot_map(client, alice, **{"from": "2026-10-12"})
    assert sorted({s["date"] for s in tail.values()}) == ["2026-10-12", "2026-10-13", "2026-10-14"]
    head = await slot_map(client, alice, to="2026-10-08")
    assert sorted({s["date"] for s in head.values()}) == ["2026-09-30", "2026-10-08"]
    holiday = await slot_map(client, alice, **{"from": "2026-10-01", "to": "2026-10-07"})
    assert holiday == {}
    beyond = await slot_map(client, alice, **{"from": "2026-10-15", "to": "2026-10-20"})
    assert beyond == {}  # outside the booking window: nothing listed
    exact = await slot_map(client, alice, **{"from": "2026-09-30", "to": "2026-12-01"})  # 62 days
    assert sorted({s["date"] for s in exact.values()}) == WINDOW


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"from": "2026-10-10", "to": "2026-10-09"}, {"from": "2026-10-10", "to": "2026-10-09", "max_days": 62}),
        ({"from": "2026-09-30", "to": "2026-12-02"}, {"from": "2026-09-30", "to": "2026-12-02", "max_days": 62}),
        ({"to": "2026-09-29"}, {"from": "2026-09-30", "to": "2026-09-29", "max_days": 62}),
    ],
)
async def test_slots_range_invalid(client, seeded, fake_clock, person, params, details):
    alice = await person()
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", params=params, headers=alice.headers)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "RANGE_INVALID"
    assert error(resp)["details"] == details


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "2026-13-01"}, "from"), ({"to": "tomorrow"}, "to"), ({"from": "2026-02-30"}, "from")],
)
async def test_slots_bad_date_is_422(client, seeded, fake_clock, person, params, field):
    alice = await person()
    _, resp = await client.get(f"/api/v1/matters/{MATTER}/slots", params=params, headers=alice.headers)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "INVALID_INPUT"
    assert field in error(resp)["details"]["fields"]


async def test_slots_unknown_matter_is_404(client, seeded, fake_clock, person):
    alice = await person()
    _, resp = await client.get("/api/v1/matters/4308-XX-XX-999/slots", headers=alice.headers)
    assert resp.status == 404 and error(resp)["code"] == "MATTER_NOT_FOUND"


async def test_slots_other_hall_and_unknown_hall(client, seeded, fake_clock, person):
    alice = await person()
    _, other = await client.get(f"/api/v1/matters/{MATTER}/slots", params={"hall": "gongjijin"}, headers=alice.headers)
    assert other.status == 422 and error(other)["code"] == "SLOT_NOT_FOR_MATTER"
    assert error(other)["details"] == {"hall": "gongjijin", "matter_hall": "main"}
    _, unknown = await client.get(f"/api/v1/matters/{MATTER}/slots", params={"hall": "nohall"}, headers=alice.headers)
    assert unknown.status == 404 and error(unknown)["code"] == "HALL_NOT_FOUND"
    assert error(unknown)["details"] == {"hall": "nohall"}
    own = await slot_map(client, alice, hall="main")
    assert len(own) == SLOTS_PER_DAY * 7 - 3
    gjj = await slot_map(client, alice, matter=GJJ_MATTER)
    assert next(iter(gjj)).startswith("gongjijin.social_security.")


async def test_matter_without_booking_is_not_offered(client, fake_clock, person):
    data = factories.small_catalogue()
    data["matters"].append(factories.entry(NO_BOOKING_MATTER, name="仅网办事项", booking=False))
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=data)
    alice = await person()
    _, resp = await client.get(f"/api/v1/matters/{NO_BOOKING_MATTER}/slots", headers=alice.headers)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "BOOKING_NOT_OFFERED"
    assert error(resp)["details"] == {"matter_code": NO_BOOKING_MATTER}
    attempt = await book(client, alice, sid("2026-10-08", "09:00"), matter=NO_BOOKING_MATTER)
    assert attempt.status == 422 and error(attempt)["code"] == "BOOKING_NOT_OFFERED"


async def test_loa1_citizen_gets_assurance_too_low(client, seeded, fake_clock, auth_deps):
    citizen = await Citizen.create(id=uuid.uuid4(), loa=1)
    pair = await logins.issue_for_citizen(auth_deps, citizen=citizen, audience="miniprogram")
    headers = {"Authorization": f"Bearer {pair.access_token}"}
    expected = {"required_loa": 2, "current_loa": 1}
    _, slots = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=headers)
    assert slots.status == 403 and error(slots)["code"] == "ASSURANCE_TOO_LOW"
    assert error(slots)["details"] == expected
    _, post = await client.post(
        "/api/v1/bookings",
        json={"matter_code": MATTER, "slot_id": sid("2026-10-08", "09:00")},
        headers={**headers, **idem()},
    )
    assert post.status == 403 and error(post)["code"] == "ASSURANCE_TOO_LOW"
    _, mine = await client.get("/api/v1/bookings", headers=headers)
    assert mine.status == 403 and error(mine)["details"] == expected


async def test_no_token_is_401(client, seeded, fake_clock):
    _, slots = await client.get(f"/api/v1/matters/{MATTER}/slots")
    assert slots.status == 401 and error(slots)["code"] == "TOKEN_MISSING"
    _, post = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": sid("2026-10-08", "09:00")}, headers=idem()
    )
    assert post.status == 401 and error(post)["code"] == "TOKEN_MISSING"
    _, mine = await client.get("/api/v1/bookings")
    assert mine.status == 401 and error(mine)["code"] == "TOKEN_MISSING"


# -- book --------------------------------------------------------------------------------------


async def test_book_without_idempotency_key_is_400(client, seeded, fake_clock, person):
    alice = await person()
    body = {"matter_code": MATTER, "slot_id": sid("2026-10-08", "09:00")}
    _, resp = await client.post("/api/v1/bookings", json=body, headers=alice.headers)
    assert resp.status == 400 and error(resp)["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    _, empty = await client.post("/api/v1/bookings", json=body, headers={**alice.headers, "Idempotency-Key": ""})
    assert empty.status == 400 and error(empty)["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert (await my_bookings(client, alice)).json["total"] == 0


@pytest.mark.parametrize("key", ["has space", "k" * 200, "k" * 129, "tab\tkey", "ключ"])
async def test_book_with_malformed_idempotency_key_is_400(client, seeded, fake_clock, person, key):
    alice = await person()
    body = {"matter_code": MATTER, "slot_id": sid("2026-10-08", "09:00")}
    headers = {**alice.headers, "Idempotency-Key": key.encode()}
    _, resp = await client.post("/api/v1/bookings", json=body, headers=headers)
    assert resp.status == 400, resp.text
    assert error(resp)["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert (await my_bookings(client, alice)).json["total"] == 0


async def test_book_with_longest_valid_key(client, seeded, fake_clock, person):
    alice = await person()
    resp = await book(client, alice, sid("2026-10-08", "09:00"), key="k" * 128)
    assert resp.status == 201, resp.text


@pytest.mark.parametrize(
    "slot_id",
    [
        "garbage",
        "main.commercial.20261008",
        "../main.commercial.20261008.0900",
        "main.commercial.20261001.0930",  # National Day
        "main.commercial.20261011.0900",  # an ordinary Sunday
        "main.commercial.20261008.0915",  # not on the 30-minute grid
        "main.commercial.20261008.1200",  # lunch break
        "main.commercial.20261008.1700",  # closing time
        "main.commercial.20261008.0830",  # before opening
        "main.commercial.20261332.0900",  # no such date
        "main.commercial.20261008.2460",  # no such time
        "MAIN.COMMERCIAL.20261008.0900",
    ],
)
async def test_book_unknown_slot_is_404(client, seeded, fake_clock, person, slot_id):
    alice = await person()
    resp = await book(client, alice, slot_id)
    assert resp.status == 404, resp.text
    assert error(resp)["code"] == "SLOT_NOT_FOUND"
    assert (await my_bookings(client, alice)).json["total"] == 0


@pytest.mark.parametrize(
    "slot_id", [sid("2026-09-30", "09:00"), sid("2026-09-30", "10:00"), sid("2026-09-29", "14:00")]
)
async def test_book_slot_in_the_past_is_422(client, seeded, fake_clock, person, slot_id):
    alice = await person()
    resp = await book(client, alice, slot_id)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "SLOT_IN_PAST" and error(resp)["details"] == {"slot_id": slot_id}


async def test_book_beyond_the_window_is_422(client, seeded, fake_clock, person):
    alice, bob = await person(), await person()
    beyond = sid("2026-10-15", "09:00")  # the 8th open day
    resp = await book(client, alice, beyond)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "SLOT_OUTSIDE_WINDOW"
    assert error(resp)["details"] == {"slot_id": beyond, "window_days": 7}
    far = await book(client, alice, sid("2027-03-01", "09:00"))
    assert far.status == 422 and error(far)["code"] == "SLOT_OUTSIDE_WINDOW"
    await booked(client, bob, sid("2026-10-14", "16:30"))  # the window's last slot


async def test_book_within_the_cutoff_is_422(client, seeded, fake_clock, person):
    alice = await person()
    late = sid("2026-09-30", "10:30")  # starts in exactly 30 minutes
    resp = await book(client, alice, late)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "SLOT_OUTSIDE_WINDOW"
    assert error(resp)["details"] == {"slot_id": late, "cutoff_minutes": 30}
    ok = await booked(client, alice, sid("2026-09-30", "11:00"))
    assert ok["date"] == "2026-09-30" and ok["cancel_until"] == "2026-09-30T10:30:00+08:00"


@pytest.mark.parametrize(
    ("matter", "slot_id"),
    [
        (MATTER, sid("2026-10-08", "09:00", hall="gongjijin", section="social_security")),
        (MATTER, sid("2026-10-08", "09:00", section="social_security")),
        (MATTER, sid("2026-10-08", "09:00", hall="nohall")),
        (GJJ_MATTER, sid("2026-10-08", "09:00")),
    ],
)
async def test_book_slot_of_another_hall_or_section_is_422(client, seeded, fake_clock, person, matter, slot_id):
    alice = await person()
    resp = await book(client, alice, slot_id, matter=matter)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "SLOT_NOT_FOR_MATTER" and error(resp)["details"] == {"slot_id": slot_id}


async def test_book_unknown_matter_is_404(client, seeded, fake_clock, person):
    alice = await person()
    resp = await book(client, alice, sid("2026-10-08", "09:00"), matter="4308-XX-XX-999")
    assert resp.status == 404 and error(resp)["code"] == "MATTER_NOT_FOUND"


async def test_book_invalid_body_is_422(client, seeded, fake_clock, person):
    alice = await person()
    _, resp = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": "", "extra": 1}, headers={**alice.headers, **idem()}
    )
    assert resp.status == 422 and error(resp)["code"] == "INVALID_INPUT"
    assert set(error(resp)["details"]["fields"]) == {"slot_id", "extra"}


async def test_book_answers_the_booking_with_its_ticket(client, seeded, fake_clock, person):
    alice = await person()
    slot = sid("2026-10-08", "09:00")
    body = await booked(client, alice, slot)
    assert body["status"] == "booked" and body["status_name"] == "已预约"
    assert body["matter"] == {"code": MATTER, "name": "营业执照设立登记"}
    assert body["hall"]["code"] == "main" and body["section"] == "commercial"
    assert body["slot_id"] == slot and body["date"] == "2026-10-08" and body["version"] == 1
    assert body["starts_at"] == "2026-10-08T09:00:00+08:00" and body["ends_at"] == "2026-10-08T09:30:00+08:00"
    assert body["cancel_until"] == "2026-10-08T08:30:00+08:00"
    assert body["ticket"].startswith("ZT1")
    assert body["links"]["self"].endswith(f"/api/v1/bookings/{body['id']}")


@pytest.mark.parametrize(
    ("slot_id", "code"),
    [
        ("main.commercial.00010101.0700", "SLOT_IN_PAST"),  # year 1: no slot is computed for it
        ("main.commercial.99991231.2330", "SLOT_OUTSIDE_WINDOW"),
        ("main.commercial.20260929.0900", "SLOT_IN_PAST"),  # yesterday
    ],
)
async def test_far_dates_are_refused_by_the_window(client, seeded, fake_clock, person, slot_id, code):
    alice = await person()
    resp = await book(client, alice, slot_id)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == code


async def test_capacity_third_citizen_gets_slot_full(client, seeded, fake_clock, person):
    alice, bob, carol = await person(), await person(), await person()
    slot = sid("2026-10-08", "09:00")
    await booked(client, alice, slot)
    assert (await slot_map(client, alice))[slot]["available"] == 1
    await booked(client, bob, slot)
    resp = await book(client, carol, slot)
    assert resp.status == 409, resp.text
    assert error(resp)["code"] == "SLOT_FULL" and error(resp)["details"] == {"slot_id": slot}
    listed = (await slot_map(client, carol))[slot]
    assert listed["capacity"] == 2 and listed["available"] == 0 and listed["bookable"] is False
    assert (await my_bookings(client, carol)).json["total"] == 0
    # another matter of the same section shares the seats
    other = await book(client, carol, slot, matter=MATTER2)
    assert other.status == 409 and error(other)["code"] == "SLOT_FULL"


async def test_one_booking_per_matter_and_day(client, seeded, fake_clock, person):
    alice = await person()
    first = await booked(client, alice, sid("2026-10-08", "09:00"))
    again = await book(client, alice, sid("2026-10-08", "14:00"))
    assert again.status == 409, again.text
    assert error(again)["code"] == "BOOKING_EXISTS"
    assert error(again)["details"] == {"matter_code": MATTER, "date": "2026-10-08"}
    same_slot = await book(client, alice, sid("2026-10-08", "09:00"))
    assert same_slot.status == 409 and error(same_slot)["code"] == "BOOKING_EXISTS"
    await booked(client, alice, sid("2026-10-09", "09:00"))  # another day
    await booked(client, alice, sid("2026-10-08", "14:00"), matter=MATTER2)  # another matter
    _, cancel = await client.post(f"/api/v1/bookings/{first['id']}/cancel", headers=alice.headers)
    assert cancel.status == 200, cancel.text
    after = await booked(client, alice, sid("2026-10-08", "14:00"))
    assert after["id"] != first["id"]
    lowercase = await book(client, alice, sid("2026-10-08", "15:00"), matter=MATTER.lower())
    assert lowercase.status == 409 and error(lowercase)["code"] == "BOOKING_EXISTS"


class TestActiveLimit:
    @pytest.fixture
    def settings(self, base_settings):
        return base_settings.replace(booking_max_active=2)

    async def test_cap_on_active_bookings(self, client, seeded, fake_clock, person):
        alice = await person()
        first = await booked(client, alice, sid("2026-10-08", "09:00"))
        await booked(client, alice, sid("2026-10-09", "09:00"))
        resp = await book(client, alice, sid("2026-10-10", "09:00"))
        assert resp.status == 409, resp.text
        assert error(resp)["code"] == "BOOKING_LIMIT_REACHED" and error(resp)["details"] == {"max_active": 2}
        assert (await slot_map(client, alice))[sid("2026-10-10", "09:00")]["available"] == 2
        _, cancel = await client.post(f"/api/v1/bookings/{first['id']}/cancel", headers=alice.headers)
        assert cancel.status == 200
        await booked(client, alice, sid("2026-10-10", "09:00"))


async def test_no_shows_restrict_booking_until_allowed_from(client, app, seeded, fake_clock, person, make_staff):
    alice = await person()
    for day in ("2026-10-08", "2026-10-09", "2026-10-10"):
        await booked(client, alice, sid(day, "09:00"))
    fake_clock.current = local("2026-10-12", "10:00")
    await app.ctx.scheduler.run_once("booking-no-shows")
    await alice.login()
    mine = await my_bookings(client, alice, status="no_show")
    assert mine.json["total"] == 3
    resp = await book(client, alice, sid("2026-10-12", "14:00"))
    assert resp.status == 403, resp.text
    assert error(resp)["code"] == "BOOKING_RESTRICTED"
    assert error(resp)["details"] == {"until": "2026-11-08", "allowed_from": "2026-11-09", "no_shows": 3}
    assert "2026-11-08" in error(resp)["message"]
    fake_clock.current = local("2026-11-08", "10:00")  # the last restricted day
    await alice.login()
    still = await book(client, alice, sid("2026-11-09", "09:00"))
    assert still.status == 403 and error(still)["code"] == "BOOKING_RESTRICTED"
    fake_clock.current = local("2026-11-09", "08:00")
    await alice.login()
    ok = await booked(client, alice, sid("2026-11-09", "09:00"))
    assert ok["status"] == "booked"


async def test_two_no_shows_do_not_restrict(client, seeded, fake_clock, person):
    alice = await person()
    for day in ("2026-10-08", "2026-10-09"):
        await booked(client, alice, sid(day, "09:00"))
    fake_clock.current = local("2026-10-12", "10:00")
    assert await booking_jobs.mark_no_shows(client.sanic_app.ctx.booking) == 2
    await alice.login()
    await booked(client, alice, sid("2026-10-12", "14:00"))


async def test_idempotent_replay_and_key_reuse(client, seeded, fake_clock, person):
    alice, bob = await person(), await person()
    slot = sid("2026-10-08", "09:00")
    key = "order-123"
    first = await book(client, alice, slot, key=key)
    assert first.status == 201 and "idempotent-replayed" not in first.headers
    again = await book(client, alice, slot, key=key)
    assert again.status == 201, again.text
    assert again.json == first.json and again.headers["idempotent-replayed"] == "true"
    assert (await my_bookings(client, alice)).json["total"] == 1
    assert (await slot_map(client, alice))[slot]["available"] == 1
    reused = await book(client, alice, sid("2026-10-09", "09:00"), key=key)
    assert reused.status == 422, reused.text
    assert error(reused)["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await my_bookings(client, alice)).json["total"] == 1
    # keys belong to their owner: the same key is fresh for another citizen
    theirs = await book(client, bob, slot, key=key)
    assert theirs.status == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json["id"] != first.json["id"]


async def test_replay_after_the_slot_filled_is_the_first_answer(client, seeded, fake_clock, person):
    """A full slot is refused before the key is claimed only for new keys: a retry of a success replays it."""
    alice, bob = await person(), await person()
    slot = sid("2026-10-08", "09:00")
    first = await book(client, alice, slot, key="alice-1")
    assert first.status == 201, first.text
    await booked(client, bob, slot)  # the last seat: the slot is full now
    again = await book(client, alice, slot, key="alice-1")
    assert again.status == 201, again.text
    assert again.text == first.text and again.headers["idempotent-replayed"] == "true"
    other_body = await book(client, alice, sid("2026-10-08", "09:30"), key="alice-1")
    assert other_body.status == 422 and error(other_body)["code"] == "IDEMPOTENCY_KEY_REUSED"
    # the same key on the full slot with another body is still 422, not SLOT_FULL
    reused_full = await book(client, alice, slot, key="alice-1", matter=MATTER2)
    assert reused_full.status == 422 and error(reused_full)["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_failed_attempt_releases_its_key(client, seeded, fake_clock, person):
    alice, bob, carol = await person(), await person(), await person()
    slot = sid("2026-10-08", "09:00")
    first = await booked(client, alice, slot)
    await booked(client, bob, slot)
    key = "carol-retry-1"
    full = await book(client, carol, slot, key=key)
    assert full.status == 409 and error(full)["code"] == "SLOT_FULL"
    _, cancel = await client.post(f"/api/v1/bookings/{first['id']}/cancel", headers=alice.headers)
    assert cancel.status == 200
    retry = await book(client, carol, slot, key=key)
    assert retry.status == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    replay = await book(client, carol, slot, key=key)
    assert replay.json == retry.json and replay.headers["idempotent-replayed"] == "true"
    # a key whose request failed validation may carry another body afterwards
    past = await book(client, carol, sid("2026-09-30", "09:00"), key="carol-retry-2")
    assert past.status == 422 and error(past)["code"] == "SLOT_IN_PAST"
    other = await book(client, carol, sid("2026-10-09", "09:00"), key="carol-retry-2")
    assert other.status == 201, other.text


# -- list and detail ---------------------------------------------------------------------------


async def test_list_only_mine_with_pagination_and_status(client, seeded, fake_clock, person):
    alice, bob = await person(), await person()
    made = [await booked(client, alice, sid(day, "09:00")) for day in ("2026-10-08", "2026-10-09", "2026-10-10")]
    theirs = await booked(client, bob, sid("2026-10-08", "09:00"))
    _, cancel = await client.post(f"/api/v1/bookings/{made[1]['id']}/cancel", headers=alice.headers)
    assert cancel.status == 200
    resp = await my_bookings(client, alice)
    assert resp.status == 200 and resp.headers["cache-control"] == "private, no-store"
    body = resp.json
    assert set(body) == {"items", "total", "page", "page_size"}
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 20)
    assert [i["id"] for i in body["items"]] == [made[2]["id"], made[1]["id"], made[0]["id"]]
    assert theirs["id"] not in {i["id"] for i in body["items"]}
    page1 = (await my_bookings(client, alice, page_size="2")).json
    page2 = (await my_bookings(client, alice, page="2", page_size="2")).json
    assert [len(page1["items"]), len(page2["items"])] == [2, 1]
    assert page1["total"] == page2["total"] == 3 and page2["page"] == 2 and page2["page_size"] == 2
    assert page2["items"][0]["id"] == made[0]["id"]
    cancelled = (await my_bookings(client, alice, status="cancelled")).json
    assert [i["id"] for i in cancelled["items"]] == [made[1]["id"]] and cancelled["total"] == 1
    assert cancelled["items"][0]["ticket"] is None
    active = (await my_bookings(client, alice, status="booked")).json
    assert {i["id"] for i in active["items"]} == {made[0]["id"], made[2]["id"]}
    assert (await my_bookings(client, bob)).json["total"] == 1
    for bad in ({"status": "nope"}, {"page": "0"}, {"page_size": "101"}):
        wrong = await my_bookings(client, alice, **bad)
        assert wrong.status == 422 and error(wrong)["code"] == "INVALID_INPUT"


async def test_detail_reminder_pending_for_a_later_day(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    body = await detail(client, alice, made["id"])
    assert body["reminder"] == {"send_after": "2026-10-07T10:00:00+08:00", "status": "pending"}
    assert {k: v for k, v in body.items() if k != "reminder"} == made


async def test_detail_no_reminder_for_a_same_day_booking(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-09-30", "14:00"))
    assert (await detail(client, alice, made["id"]))["reminder"] is None


async def test_other_citizens_booking_is_404(client, seeded, fake_clock, person):
    alice, mallory = await person(), await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    base = f"/api/v1/bookings/{made['id']}"
    _, resp = await client.get(base, headers=mallory.headers)
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    _, resp = await client.post(f"{base}/cancel", headers=mallory.headers)
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    _, resp = await client.post(
        f"{base}/reschedule", json={"slot_id": sid("2026-10-09", "09:00")}, headers=mallory.headers
    )
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    for image in ("ticket.png", "ticket.svg"):
        _, resp = await client.get(f"{base}/{image}", headers=mallory.headers)
        assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    still = await detail(client, alice, made["id"])
    assert still["status"] == "booked" and still["slot_id"] == made["slot_id"] and still["version"] == 1


@pytest.mark.parametrize("booking_id", ["not-a-uuid", "123", str(uuid.UUID(int=0))])
async def test_unknown_or_malformed_booking_id_is_404(client, seeded, fake_clock, person, booking_id):
    alice = await person()
    base = f"/api/v1/bookings/{booking_id}"
    _, resp = await client.get(base, headers=alice.headers)
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    _, resp = await client.post(f"{base}/cancel", headers=alice.headers)
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    _, resp = await client.post(
        f"{base}/reschedule", json={"slot_id": sid("2026-10-09", "09:00")}, headers=alice.headers
    )
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"
    _, resp = await client.get(f"{base}/ticket.png", headers=alice.headers)
    assert resp.status == 404 and error(resp)["code"] == "BOOKING_NOT_FOUND"


async def test_ticket_images(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    _, png = await client.get(f"/api/v1/bookings/{made['id']}/ticket.png", headers=alice.headers)
    assert png.status == 200 and png.body[:4] == b"\x89PNG"
    assert png.headers["cache-control"] == "private, no-store"
    _, svg = await client.get(f"/api/v1/bookings/{made['id']}/ticket.svg", headers=alice.headers)
    assert svg.status == 200 and b"<svg" in svg.body
    _, gif = await client.get(f"/api/v1/bookings/{made['id']}/ticket.gif", headers=alice.headers)
    assert gif.status == 404 and error(gif)["code"] == "BOOKING_NOT_FOUND"


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_releases_seat_revokes_ticket_and_cancels_reminder(
    client, seeded, fake_clock, person, make_staff, admin_headers
):
    alice = await person()
    slot = sid("2026-10-08", "09:00")
    made = await booked(client, alice, slot)
    assert (await slot_map(client, alice))[slot]["available"] == 1
    _, resp = await client.post(f"/api/v1/bookings/{made['id']}/cancel", headers=alice.headers)
    assert resp.status == 200, resp.text
    body = resp.json
    assert body["status"] == "cancelled" and body["status_name"] == "已取消"
    assert body["cancelled_at"] == "2026-09-30T10:00:00+08:00" and body["ticket"] is None
    assert (await slot_map(client, alice))[slot]["available"] == 2
    _, clerk = await make_staff("clerk", hall="main")
    _, rev = await client.get("/api/v1/desk/revocations", headers=clerk)
    assert rev.status == 200, rev.text
    assert [(i["booking_id"], i["version"], i["reason"]) for i in rev.json["items"]] == [(made["id"], 1, "cancelled")]
    _, other_clerk = await make_staff("clerk", hall="gongjijin")
    _, other_rev = await client.get("/api/v1/desk/revocations", headers=other_clerk)
    assert other_rev.status == 200 and other_rev.json["hall"] == "gongjijin" and other_rev.json["items"] == []
    reminders = await notifications(client, admin_headers, subject_id=made["id"])
    assert [(n["kind"], n["status"]) for n in reminders] == [("booking_reminder", "cancelled")]
    assert (await detail(client, alice, made["id"]))["reminder"]["status"] == "cancelled"
    _, again = await client.post(f"/api/v1/bookings/{made['id']}/cancel", headers=alice.headers)
    assert again.status == 200 and again.json == body
    assert (await slot_map(client, alice))[slot]["available"] == 2  # the seat came back only once
    _, rev2 = await client.get("/api/v1/desk/revocations", headers=clerk)
    assert len(rev2.json["items"]) == 1
    _, png = await client.get(f"/api/v1/bookings/{made['id']}/ticket.png", headers=alice.headers)
    assert png.status == 409 and error(png)["code"] == "BOOKING_NOT_ACTIVE"


async def test_cancel_after_the_cutoff_is_409(client, seeded, fake_clock, person):
    alice = await person()
    soon = await booked(client, alice, sid("2026-09-30", "11:00"))
    later = await booked(client, alice, sid("2026-09-30", "11:30"), matter=MATTER2)
    fake_clock.current = local("2026-09-30", "10:30")
    await alice.login()
    _, resp = await client.post(f"/api/v1/bookings/{soon['id']}/cancel", headers=alice.headers)
    assert resp.status == 409, resp.text
    assert error(resp)["code"] == "BOOKING_CUTOFF_PASSED" and error(resp)["details"] == {"cutoff_minutes": 30}
    assert (await detail(client, alice, soon["id"]))["status"] == "booked"
    assert (await slot_map(client, alice))[soon["slot_id"]]["available"] == 1
    _, ok = await client.post(f"/api/v1/bookings/{later['id']}/cancel", headers=alice.headers)
    assert ok.status == 200 and ok.json["status"] == "cancelled"


# -- reschedule --------------------------------------------------------------------------------


async def test_reschedule_moves_seat_ticket_and_reminder(client, seeded, fake_clock, person, make_staff, admin_headers):
    alice = await person()
    old, new = sid("2026-10-08", "09:00"), sid("2026-10-09", "14:00")
    made = await booked(client, alice, old)
    _, resp = await client.post(
        f"/api/v1/bookings/{made['id']}/reschedule", json={"slot_id": new}, headers=alice.headers
    )
    assert resp.status == 200, resp.text
    moved = resp.json
    assert moved["id"] == made["id"] and moved["version"] == 2 and moved["status"] == "booked"
    assert moved["slot_id"] == new and moved["date"] == "2026-10-09"
    assert moved["starts_at"] == "2026-10-09T14:00:00+08:00"
    assert moved["ticket"].startswith("ZT1") and moved["ticket"] != made["ticket"]
    listed = await slot_map(client, alice)
    assert listed[old]["available"] == 2 and listed[new]["available"] == 1
    items = await notifications(client, admin_headers, subject_id=made["id"])
    by_after = {n["send_after"]: n["status"] for n in items if n["kind"] == "booking_reminder"}
    assert by_after == {"2026-10-07T10:00:00+08:00": "cancelled", "2026-10-08T10:00:00+08:00": "pending"}
    assert (await detail(client, alice, made["id"]))["reminder"] == {
        "send_after": "2026-10-08T10:00:00+08:00",
        "status": "pending",
    }
    _, clerk = await make_staff("clerk", hall="main")
    _, rev = await client.get("/api/v1/desk/revocations", headers=clerk)
    assert [(i["booking_id"], i["version"], i["reason"]) for i in rev.json["items"]] == [(made["id"], 1, "rescheduled")]


async def test_reschedule_into_a_full_slot_changes_nothing(client, seeded, fake_clock, person, admin_headers):
    alice, bob, carol = await person(), await person(), await person()
    old, full = sid("2026-10-08", "09:00"), sid("2026-10-09", "09:00")
    made = await booked(client, alice, old)
    await booked(client, bob, full)
    await booked(client, carol, full)
    _, resp = await client.post(
        f"/api/v1/bookings/{made['id']}/reschedule", json={"slot_id": full}, headers=alice.headers
    )
    assert resp.status == 409, resp.text
    assert error(resp)["code"] == "SLOT_FULL" and error(resp)["details"] == {"slot_id": full}
    now = await detail(client, alice, made["id"])
    assert now["slot_id"] == old and now["version"] == 1 and now["ticket"] == made["ticket"]
    assert now["reminder"] == {"send_after": "2026-10-07T10:00:00+08:00", "status": "pending"}
    listed = await slot_map(client, alice)
    assert listed[old]["available"] == 1 and listed[full]["available"] == 0
    items = await notifications(client, admin_headers, subject_id=made["id"])
    assert [n["status"] for n in items] == ["pending"]


async def test_reschedule_to_the_same_slot_changes_nothing(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    _, resp = await client.post(
        f"/api/v1/bookings/{made['id']}/reschedule", json={"slot_id": made["slot_id"]}, headers=alice.headers
    )
    assert resp.status == 200, resp.text
    assert resp.json == made
    assert (await slot_map(client, alice))[made["slot_id"]]["available"] == 1


async def test_reschedule_of_a_cancelled_booking_is_409(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    _, cancel = await client.post(f"/api/v1/bookings/{made['id']}/cancel", headers=alice.headers)
    assert cancel.status == 200
    _, resp = await client.post(
        f"/api/v1/bookings/{made['id']}/reschedule", json={"slot_id": sid("2026-10-09", "09:00")}, headers=alice.headers
    )
    assert resp.status == 409, resp.text
    assert error(resp)["code"] == "BOOKING_NOT_ACTIVE" and error(resp)["details"] == {"status": "cancelled"}
    assert (await slot_map(client, alice))[sid("2026-10-09", "09:00")]["available"] == 2


async def test_reschedule_rules(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    await booked(client, alice, sid("2026-10-09", "09:00"))
    url = f"/api/v1/bookings/{made['id']}/reschedule"
    cases = [
        (sid("2026-10-09", "14:00"), 409, "BOOKING_EXISTS"),  # already booked that matter that day
        (sid("2026-10-01", "09:00"), 404, "SLOT_NOT_FOUND"),
        (sid("2026-09-30", "09:00"), 422, "SLOT_IN_PAST"),
        (sid("2026-10-15", "09:00"), 422, "SLOT_OUTSIDE_WINDOW"),
        (sid("2026-10-09", "09:00", hall="gongjijin", section="social_security"), 422, "SLOT_NOT_FOR_MATTER"),
    ]
    for slot_id, status, code in cases:
        _, resp = await client.post(url, json={"slot_id": slot_id}, headers=alice.headers)
        assert (resp.status, error(resp)["code"]) == (status, code), (slot_id, resp.text)
    assert (await detail(client, alice, made["id"]))["version"] == 1
    moved_same_day = await client.post(url, json={"slot_id": sid("2026-10-08", "15:00")}, headers=alice.headers)
    assert moved_same_day[1].status == 200 and moved_same_day[1].json["version"] == 2


async def test_reschedule_after_the_cutoff_is_409(client, seeded, fake_clock, person):
    alice = await person()
    made = await booked(client, alice, sid("2026-09-30", "11:00"))
    fake_clock.current = local("2026-09-30", "10:45")
    await alice.login()
    _, resp = await client.post(
        f"/api/v1/bookings/{made['id']}/reschedule", json={"slot_id": sid("2026-10-08", "09:00")}, headers=alice.headers
    )
    assert resp.status == 409, resp.text
    assert error(resp)["code"] == "BOOKING_CUTOFF_PASSED"
    assert (await slot_map(client, alice))[sid("2026-10-08", "09:00")]["available"] == 2


# -- admin calendar ----------------------------------------------------------------------------


async def test_admin_capacity_changes_listed_capacity(client, seeded, fake_clock, person, admin_headers):
    alice = await person()
    taken = sid("2026-10-08", "09:00")
    await booked(client, alice, taken)
    _, resp = await client.put(
        "/api/v1/admin/halls/main/schedule", json={"capacity": {"commercial": 5}}, headers=admin_headers
    )
    assert resp.status == 200, resp.text
    assert resp.json["hall"] == "main" and resp.json["configured"] is True
    assert resp.json["config"]["capacity"] == {"commercial": 5} and resp.json["config"]["slot_minutes"] == 30
    listed = await slot_map(client, alice)
    assert listed[taken]["capacity"] == 5 and listed[taken]["available"] == 4
    fresh = listed[sid("2026-10-09", "09:00")]
    assert fresh["capacity"] == 5 and fresh["available"] == 5
    gjj = await slot_map(client, alice, matter=GJJ_MATTER)
    assert all(s["capacity"] == 2 for s in gjj.values())  # another hall keeps its defaults
    _, got = await client.get("/api/v1/admin/halls/main/schedule", headers=admin_headers)
    assert got.status == 200 and got.json == resp.json


async def test_admin_capacity_cut_never_below_seats_booked(client, seeded, fake_clock, person, admin_headers):
    """admin.put_schedule: "future slots take the new capacities (never below seats booked)"."""
    alice, bob = await person(), await person()
    taken = sid("2026-10-08", "09:00")
    await booked(client, alice, taken)
    await booked(client, bob, taken)
    _, resp = await client.put(
        "/api/v1/admin/halls/main/schedule", json={"capacity": {"commercial": 1}}, headers=admin_headers
    )
    assert resp.status == 200, resp.text
    listed = await slot_map(client, alice)
    assert listed[sid("2026-10-09", "09:00")]["capacity"] == 1
    assert listed[taken]["available"] == 0
    assert listed[taken]["capacity"] == 2  # the two seats already booked


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"slot_minutes": 1}, "slot_minutes"),
        ({"window_days": 0}, "window_days"),
        ({"hours": {"8": [["09:00", "12:00"]]}}, "hours"),
        ({"hours": {"1": [["12:00", "09:00"]]}}, "hours"),
        ({"hours": {"1": [["09:00", "12:00"], ["11:00", "14:00"]]}}, "hours"),
        ({"hours": {"1": [["9:00", "12:00"]]}}, "hours.1.0.0"),
        ({"hours": {}}, "__root__"),
        ({"capacity": {"commercial": -1}}, "capacity"),
        ({"capacity": {"nope": 1}}, "capacity.nope.[key]"),
        ({"bogus": 1}, "bogus"),
        ([], "__root__"),
    ],
)
async def test_admin_invalid_schedule_is_422(client, seeded, fake_clock, admin_headers, config, field):
    _, resp = await client.put("/api/v1/admin/halls/main/schedule", json=config, headers=admin_headers)
    assert resp.status == 422, resp.text
    assert error(resp)["code"] == "SCHEDULE_INVALID"
    fields = error(resp)["details"]["fields"]
    assert any(name == field or name.startswith(field) for name in fields), fields
    _, got = await client.get("/api/v1/admin/halls/main/schedule", headers=admin_headers)
    assert got.json["configured"] is False


async def test_admin_closure_removes_and_restores_a_day(client, seeded, fake_clock, person, admin_headers):
    alice = await person()
    made = await booked(client, alice, sid("2026-10-08", "09:00"))
    _, resp = await client.post(
        "/api/v1/admin/halls/main/closures", json={"date": "2026-10-08", "reason": "停电检修"}, headers=admin_headers
    )
    assert resp.status == 201, resp.text
    assert resp.json == {"date": "2026-10-08", "reason": "停电检修", "slots_with_bookings": 1}
    _, body = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=alice.headers)
    dates = {s["date"] for s in body.json["items"]}
    assert "2026-10-08" not in dates and "2026-10-15" in dates
    assert body.json["window"] == {"from": "2026-09-30", "to": "2026-10-15"}
    closed = await book(client, alice, sid("2026-10-08", "14:00"), matter=MATTER2)
    assert closed.status == 404 and error(closed)["code"] == "SLOT_NOT_FOUND"
    assert (await detail(client, alice, made["id"]))["status"] == "booked"  # existing bookings stay
    _, listed = await client.get("/api/v1/admin/halls/main/closures", headers=admin_headers)
    assert listed.json == {"items": [{"date": "2026-10-08", "reason": "停电检修"}]}
    _, dup = await client.post("/api/v1/admin/halls/main/closures", json={"date": "2026-10-08"}, headers=admin_headers)
    assert dup.status == 409 and error(dup)["code"] == "CLOSURE_EXISTS"
    _, gone = await client.delete("/api/v1/admin/halls/main/closures/2026-10-08", headers=admin_headers)
    assert gone.status == 200, gone.text
    assert gone.json == {"date": "2026-10-08", "removed": True}
    back = await slot_map(client, alice)
    assert sid("2026-10-08", "14:00") in back and sid("2026-10-15", "09:00") not in back
    _, again = await client.delete("/api/v1/admin/halls/main/closures/2026-10-08", headers=admin_headers)
    assert again.status == 404 and error(again)["code"] == "CLOSURE_NOT_FOUND"


async def test_admin_closure_bad_and_past_dates(client, seeded, fake_clock, admin_headers):
    _, bad = await client.delete("/api/v1/admin/halls/main/closures/2026-13-45", headers=admin_headers)
    assert bad.status == 422 and error(bad)["code"] == "DATE_INVALID"
    _, word = await client.delete("/api/v1/admin/halls/main/closures/tomorrow", headers=admin_headers)
    assert word.status == 422 and error(word)["code"] == "DATE_INVALID"
    _, post_bad = await client.post(
        "/api/v1/admin/halls/main/closures", json={"date": "2026-10-32"}, headers=admin_headers
    )
    assert post_bad.status == 422 and error(post_bad)["code"] == "INVALID_INPUT"
    assert "date" in error(post_bad)["details"]["fields"]
    _, past = await client.post("/api/v1/admin/halls/main/closures", json={"date": "2026-09-29"}, headers=admin_headers)
    assert past.status == 422 and error(past)["code"] == "CLOSURE_IN_PAST"
    _, today = await client.post(
        "/api/v1/admin/halls/main/closures", json={"date": "2026-09-30"}, headers=admin_headers
    )
    assert today.status == 201, today.text


async def test_admin_calendar_unknown_hall_is_404(client, seeded, fake_clock, admin_headers):
    calls = [
        ("GET", "/api/v1/admin/halls/nohall/schedule", None),
        ("PUT", "/api/v1/admin/halls/nohall/schedule", {"capacity": {"commercial": 5}}),
        ("GET", "/api/v1/admin/halls/nohall/closures", None),
        ("POST", "/api/v1/admin/halls/nohall/closures", {"date": "2026-10-08"}),
        ("DELETE", "/api/v1/admin/halls/nohall/closures/2026-10-08", None),
    ]
    for method, url, body in calls:
        _, resp = await client.request(method, url, json=body, headers=admin_headers)
        assert resp.status == 404, (method, url, resp.text)
        assert error(resp)["code"] == "HALL_NOT_FOUND" and error(resp)["details"] == {"hall": "nohall"}


async def test_admin_calendar_refuses_clerks(client, seeded, fake_clock, make_staff, person):
    _, clerk = await make_staff("clerk", hall="main")
    alice = await person()
    calls = [
        ("GET", "/api/v1/admin/halls/main/schedule", None),
        ("PUT", "/api/v1/admin/halls/main/schedule", {"capacity": {"commercial": 5}}),
        ("GET", "/api/v1/admin/halls/main/closures", None),
        ("POST", "/api/v1/admin/halls/main/closures", {"date": "2026-10-08"}),
        ("DELETE", "/api/v1/admin/halls/main/closures/2026-10-08", None),
        ("GET", "/api/v1/admin/notifications", None),
    ]
    for method, url, body in calls:
        _, resp = await client.request(method, url, json=body, headers=clerk)
        assert resp.status == 403, (method, url, resp.text)
        assert error(resp)["code"] == "INSUFFICIENT_ROLE"
        _, anon = await client.request(method, url, json=body)
        assert anon.status == 401 and error(anon)["code"] == "TOKEN_MISSING"
    assert (await slot_map(client, alice))[sid("2026-10-08", "09:00")]["capacity"] == 2


# -- no-show job -------------------------------------------------------------------------------


async def test_no_show_job_marks_unchecked_bookings_only(client, app, seeded, fake_clock, person, make_staff):
    alice, bob = await person(), await person()
    slot = sid("2026-10-08", "09:00")
    missed = await booked(client, alice, slot)
    kept = await booked(client, bob, slot)
    fake_clock.current = local("2026-10-08", "08:50")
    _, clerk = await make_staff("clerk", hall="main")
    _, scan = await client.post(
        "/api/v1/desk/checkins", json={"ticket": kept["ticket"], "nonce": "nonce-noshow-1"}, headers=clerk
    )
    assert scan.status == 200 and scan.json["result"] == "checked_in", scan.text
    fake_clock.current = local("2026-10-08", "09:45")  # slot end + grace: not yet a no-show
    await app.ctx.scheduler.run_once("booking-no-shows")
    _, admin = await make_staff("admin")
    assert await notifications(client, admin, kind="booking_no_show") == []
    fake_clock.current = local("2026-10-08", "09:45", second=1)
    await app.ctx.scheduler.run_once("booking-no-shows")
    await alice.login()
    await bob.login()
    gone = await detail(client, alice, missed["id"])
    assert gone["status"] == "no_show" and gone["status_name"] == "已爽约" and gone["ticket"] is None
    assert (await detail(client, bob, kept["id"]))["status"] == "checked_in"
    _, admin = await make_staff("admin")
    notices = await notifications(client, admin, kind="booking_no_show")
    assert [(n["subject_id"], n["status"]) for n in notices] == [(missed["id"], "pending")]
    assert notices[0]["payload"]["limit"] == 3 and notices[0]["payload"]["days"] == 90
    assert notices[0]["payload"]["starts_at"] == "2026-10-08T09:00:00+08:00"
    reminder = await notifications(client, admin, kind="booking_reminder", subject_id=missed["id"])
    assert [n["status"] for n in reminder] == ["cancelled"]
    await app.ctx.scheduler.run_once("booking-no-shows")  # a second run changes nothing
    assert len(await notifications(client, admin, kind="booking_no_show")) == 1
    _, cancel = await client.post(f"/api/v1/bookings/{missed['id']}/cancel", headers=alice.headers)
    assert cancel.status == 409 and error(cancel)["code"] == "BOOKING_NOT_ACTIVE"
    assert error(cancel)["details"] == {"status": "no_show"}
