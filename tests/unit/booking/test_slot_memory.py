"""What a listing of a whole booking window costs a worker (bench/README.md, "Where the time goes": memory).

The booking and h5 phases list a matter's slots over the full window (~2,800 slots; 2,100 here): the worker's peak
RSS is set by what such a request holds at once, and the hall calendar keeps every slot of the window.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
from typing import Any

import pytest

from app.booking import admin, service
from app.booking import calendar as cal
from app.booking.calendars import calendar_of
from app.booking.models import Slot
from app.matters import service as catalogue
from tests import factories

M1 = "4308-XK-SS-001"
OPEN_ALL_DAY = {
    "hours": {str(day): [["00:00", "23:59"]] for day in range(1, 8)},
    "slot_minutes": 30,
    "window_days": 45,  # from 2 November: no holiday in it, the range stays within MAX_RANGE_DAYS
    "same_day": True,
    "cutoff_minutes": 0,
}
# The listing's peak under tracemalloc, per slot listed (half of them with a row): 607 B (PostgreSQL) and 737 B
# (SQLite) with model instances for the rows and unslotted views; 301 B and 294 B with (capacity, booked) tuples
# and slotted views. The bound sits between them.
PEAK_PER_SLOT = 450


@pytest.fixture
async def deps(services: Any) -> Any:
    """The booking services of a hall open around the clock, half of its slots with a row (seats taken)."""
    await catalogue.import_catalogue(services.catalogue, data=factories.small_catalogue())
    await admin.put_schedule(services.booking, hall="main", config=OPEN_ALL_DAY)
    return services.booking


async def test_listing_the_window_holds_little_per_slot(deps, fake_clock):
    fake_clock.current = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)
    hall_cal = await calendar_of(deps, "main")
    days = hall_cal.window(fake_clock.current.date())
    rows = [
        Slot(id=cal.slot_id("main", "commercial", day, s.hhmm), hall_code="main", section="commercial", day=day,
             starts_at=s.starts_at, ends_at=s.ends_at, capacity=5, booked=2)
        for day in days[::2]
        for s in hall_cal.slots(day).values()
    ]  # fmt: skip
    await Slot.bulk_create(rows, batch_size=500)
    del rows
    await service.list_slots(deps, matter_code=M1, hall=None, date_from=None, date_to=None)  # warm: guide, calendar
    tracemalloc.start()
    try:
        listed = await service.list_slots(deps, matter_code=M1, hall=None, date_from=None, date_to=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(listed.items) > 2000
    assert sum(1 for i in listed.items if i.available == 3) > 1000  # the rows were read
    assert peak / len(listed.items) < PEAK_PER_SLOT, f"{peak / len(listed.items):.0f} B a slot"


async def test_slot_times_are_slotted_and_share_their_times_of_day(deps, fake_clock):
    fake_clock.current = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)
    hall_cal = await calendar_of(deps, "main")
    first, second = hall_cal.window(fake_clock.current.date())[1:3]
    a, b = hall_cal.slots(first)["09:00"], hall_cal.slots(second)["09:00"]
    assert a.hhmm is b.hhmm  # one string per time of day, not one per slot
    assert not hasattr(a, "__dict__")
