"""The booking path end to end through HTTP: slots, book, ticket, desk check-in, cancel, reschedule."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from app.booking import tickets
from app.matters import service as catalogue
from tests import factories

pytestmark = pytest.mark.asyncio
MATTER = "4308-XK-SS-001"


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def first_slot(client, headers, matter=MATTER, index=0):
    _, resp = await client.get(f"/api/v1/matters/{matter}/slots", headers=headers)
    assert resp.status == 200, resp.text
    bookable = [s for s in resp.json["items"] if s["bookable"]]
    return bookable[index]


async def test_book_check_in_and_replay(client, seeded, fake_clock, make_citizen, make_staff):
    _, citizen = await make_citizen(loa=2)
    slot = await first_slot(client, citizen)
    # 2026-09-30 10:00: the first bookable slot is later the same day (cutoff 30 min)
    assert slot["date"] == "2026-09-30"
    key = idem()
    _, resp = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": slot["slot_id"]}, headers={**citizen, **key}
    )
    assert resp.status == 201, resp.text
    booking = resp.json
    assert booking["status"] == "booked" and booking["ticket"].startswith("ZT1")
    _, again = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": slot["slot_id"]}, headers={**citizen, **key}
    )
    assert again.status == 201 and again.json == booking and again.headers["idempotent-replayed"] == "true"
    _, other = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": "x"}, headers={**citizen, **key}
    )
    assert other.status == 422 and other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"

    _, jwks = await client.get("/.well-known/jwks.json")
    claims = tickets.verify_offline(booking["ticket"], jwks.json)
    assert str(claims.booking_id) == booking["id"] and claims.hall == "main"

    _, png = await client.get(f"/api/v1/bookings/{booking['id']}/ticket.png", headers=citizen)
    assert png.status == 200 and png.body[:4] == b"\x89PNG"

    starts = dt.datetime.fromisoformat(booking["starts_at"])
    fake_clock.current = starts.astimezone(dt.UTC) - dt.timedelta(minutes=5)
    _, clerk = await make_staff("clerk", hall="main")
    body = {"ticket": booking["ticket"], "nonce": "nonce-0001", "counter": "B01"}
    _, resp = await client.post("/api/v1/desk/checkins", json=body, headers=clerk)
    assert resp.status == 200, resp.text
    assert resp.json["result"] == "checked_in" and resp.json["queue_no"] == "B001"
    assert resp.json["booking"]["citizen"]["phone"].count("*") == 4
    _, same = await client.post("/api/v1/desk/checkins", json=body, headers=clerk)
    assert same.json == resp.json
    _, second = await client.post("/api/v1/desk/checkins", json={**body, "nonce": "nonce-0002"}, headers=clerk)
    assert second.json["result"] == "already_checked_in" and second.json["details"]["counter"] == "B01"
    _, garbage = await client.post(
        "/api/v1/desk/checkins", json={"ticket": "办" * 10_000, "nonce": "nonce-0003"}, headers=clerk
    )
    assert garbage.status == 200 and garbage.json["result"] == "invalid"


async def test_cancel_reschedule_and_revocation(client, seeded, fake_clock, make_citizen, make_staff):
    _, citizen = await make_citizen(loa=2)
    first = await first_slot(client, citizen)
    second = await first_slot(client, citizen, index=1)
    _, resp = await client.post(
        "/api/v1/bookings", json={"matter_code": MATTER, "slot_id": first["slot_id"]}, headers={**citizen, **idem()}
    )
    booking = resp.json
    _, moved = await client.post(
        f"/api/v1/bookings/{booking['id']}/reschedule", json={"slot_id": second["slot_id"]}, headers=citizen
    )
    assert moved.status == 200, moved.text
    assert moved.json["version"] == 2 and moved.json["ticket"] != booking["ticket"]
    _, clerk = await make_staff("clerk", hall="main")
    _, rev = await client.get("/api/v1/desk/revocations", headers=clerk)
    assert [(i["booking_id"], i["version"]) for i in rev.json["items"]] == [(booking["id"], 1)]
    fake_clock.current = dt.datetime.fromisoformat(second["starts_at"]).astimezone(dt.UTC)
    _, clerk = await make_staff("clerk", hall="main")
    _, old = await client.post(
        "/api/v1/desk/checkins", json={"ticket": booking["ticket"], "nonce": "nonce-1001"}, headers=clerk
    )
    assert old.json["result"] == "revoked"
    fake_clock.current = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC)
    _, cancelled = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=citizen)
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    _, slots = await client.get(f"/api/v1/matters/{MATTER}/slots", headers=citizen)
    by_id = {s["slot_id"]: s for s in slots.json["items"]}
    assert by_id[first["slot_id"]]["available"] == by_id[second["slot_id"]]["available"] == 2
