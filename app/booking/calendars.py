"""Hall calendars as cached values: schedule, closures and counters, with their slots and windows.

app/booking/calendar.py computes slots and windows from a schedule; this module loads a hall's
calendar once per worker and drops it on every change (`schedules_changed`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app import clock
from app.booking import calendar as cal
from app.booking.deps import BookingDeps
from app.booking.errors import HallNotFound
from app.booking.models import Counter, HallClosure, HallSchedule
from app.matters.models import Hall

SCHEDULES = "schedules"


@dataclass
class HallCalendar:
    """A hall's schedule, closures and counters as one cached value, with slots and windows derived from it.

    The derived values are memoised on the entry itself, so a calendar change (a new entry) drops them too.
    """

    hall: str
    config: cal.ScheduleConfig
    closed: frozenset[dt.date]
    counters: frozenset[str]
    known_slots: set[str] = field(default_factory=set)  # slot rows this worker knows exist
    full_slots: set[str] = field(default_factory=set)  # slots this worker last found full (service.check_seat)
    _days: dict[dt.date, dict[str, cal.SlotTime]] = field(default_factory=dict)
    _windows: dict[dt.date, tuple[dt.date, ...]] = field(default_factory=dict)

    def slots(self, day: dt.date) -> dict[str, cal.SlotTime]:
        """The day's slots by "HH:MM", in order."""
        hit = self._days.get(day)
        if hit is None:
            if len(self._days) > 400:
                self._days.clear()
            hit = self._days[day] = {s.hhmm: s for s in cal.day_slots(self.config, day, self.closed)}
        return hit

    def window(self, today: dt.date) -> tuple[dt.date, ...]:
        """The open days a citizen may book on `today`."""
        hit = self._windows.get(today)
        if hit is None:
            self._windows.clear()  # one "today" at a time
            hit = self._windows[today] = tuple(cal.window(self.config, today, self.closed))
        return hit


async def calendar_of(deps: BookingDeps, hall_code: str) -> HallCalendar:
    """A hall's calendar (cached per worker, dropped on every change)."""
    hit = deps.cache.get(SCHEDULES, hall_code)
    if hit is not None:
        return hit
    epoch = deps.cache.epoch(SCHEDULES)
    if not await Hall.exists(code=hall_code):
        raise HallNotFound(details={"hall": hall_code[:40]})
    row = await HallSchedule.get_or_none(hall_code=hall_code)
    config = cal.ScheduleConfig.model_validate(row.config) if row else cal.ScheduleConfig()
    since = clock.today() - dt.timedelta(days=1)
    closed = frozenset(await HallClosure.filter(hall_code=hall_code, day__gte=since).values_list("day", flat=True))
    counters = frozenset(await Counter.filter(hall_code=hall_code, active=True).values_list("code", flat=True))
    entry = HallCalendar(hall=hall_code, config=config, closed=closed, counters=counters)
    deps.cache.put(SCHEDULES, hall_code, entry, epoch=epoch)
    return entry


async def schedules_changed(deps: BookingDeps) -> None:
    """Every worker reloads hall calendars."""
    await deps.cache.invalidate(SCHEDULES)


async def hours_text(deps: BookingDeps, hall_code: str) -> str | None:
    """The hall's opening hours as a guide states them, from its booking schedule (None for an unknown hall)."""
    try:
        hall_cal = await calendar_of(deps, hall_code)
    except HallNotFound:
        return None
    return cal.hours_text(hall_cal.config)
