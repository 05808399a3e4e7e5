"""PostgreSQL's booking path in round trips: one statement per attempt (bench/, booking phase).

An attempt on a slot this worker has not found full goes straight to TRY_BOOK (no read first, no
statement creating the slot's row); once the slot is found full its attempts take one read (SEEN).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.backends.asyncpg.client import AsyncpgDBClient

from app import sql
from app.booking import admin, service
from app.booking.errors import SlotFull
from app.booking.models import Booking, Slot
from app.idempotency import Pending, fingerprint
from app.matters import service as catalogue
from tests import factories

pytestmark = pytest.mark.postgres

M1 = "4308-XK-SS-001"
S1, S2 = "main.commercial.20261008.0900", "main.commercial.20261008.0930"


@pytest.fixture
async def deps(services: Any) -> Any:
    """The booking services with one seat per slot."""
    await catalogue.import_catalogue(services.catalogue, data=factories.small_catalogue())
    await admin.put_schedule(services.booking, hall="main", config={"capacity": {"commercial": 1}})
    return services.booking


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement sent, by the hand-written SQL (app/sql.py) or by the ORM."""
    sent: list[str] = []
    original = sql.connection

    @contextlib.asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        async with original() as conn:
            sent.append("sql")
            yield conn

    async def orm(self: Any, query: str, values: Any = None) -> Any:
        sent.append(f"orm: {query[:60]}")
        return await orm_original(self, query, values)

    orm_original = AsyncpgDBClient.execute_query
    monkeypatch.setattr(sql, "connection", counted)
    monkeypatch.setattr(AsyncpgDBClient, "execute_query", orm)
    return sent


async def _attempt(deps: Any, who: str, slot: str) -> None:
    owner, key = f"citizen:{who}", uuid.uuid4().hex
    args = {"citizen_id": who, "matter_code": M1, "slot_id": slot}
    checked = await service.check_seat(deps, owner=owner, key=key, **args)
    digest = fingerprint("POST /api/v1/bookings", {"matter_code": M1, "slot_id": slot})
    await service.book(deps, claim=Pending(owner, key, digest, checked.seen), **args)


async def test_an_attempt_is_one_statement(deps, make_citizen, fake_clock, trips):
    fake_clock.current = dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC)
    alice, bob, carol, dave = [str((await make_citizen())[0].id) for _ in range(4)]
    await _attempt(deps, alice, S2)  # warms the worker's caches (guide, calendar)
    trips.clear()

    await _attempt(deps, bob, S1)  # a fresh slot: its row is made by this booking
    assert trips == ["sql"]
    assert (await Slot.get(id=S1)).booked == 1
    trips.clear()
    with pytest.raises(SlotFull):  # not yet known to be full: the one statement finds it full
        await _attempt(deps, carol, S1)
    assert trips == ["sql"]
    trips.clear()
    with pytest.raises(SlotFull):  # known to be full: one read, outside the slot's gate
        await _attempt(deps, dave, S1)
    assert trips == ["sql"]
    assert await Booking.filter(slot_id=S1).count() == 1
    assert (await Slot.get(id=S1)).booked == 1
