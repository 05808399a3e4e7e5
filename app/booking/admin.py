"""Administration of hall calendars: schedules, one-off closures and counters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.booking import calendar as cal
from app.booking.calendars import schedules_changed
from app.booking.deps import BookingDeps
from app.booking.errors import HallNotFound
from app.booking.models import Counter, HallClosure, HallSchedule, Slot
from app.booking.types import Closure, ClosureAdded, CounterView, HallScheduleView
from app.errors import Conflict, InvalidInput, NotFound, pydantic_details
from app.matters.models import Hall


class ScheduleInvalid(InvalidInput):
    code, message = "SCHEDULE_INVALID", "预约日历配置不合法"


class ClosureExists(Conflict):
    code, message = "CLOSURE_EXISTS", "该日期已设为闭厅"


class ClosureNotFound(NotFound):
    code, message = "CLOSURE_NOT_FOUND", "该日期没有闭厅安排"


async def _hall(code: str) -> Hall:
    hall = await Hall.get_or_none(code=code)
    if hall is None:
        raise HallNotFound(details={"hall": code[:40]})
    return hall


async def get_schedule(*, hall: str) -> HallScheduleView:
    """A hall's booking calendar (defaults when never configured)."""
    await _hall(hall)
    row = await HallSchedule.get_or_none(hall_code=hall)
    config = cal.ScheduleConfig.model_validate(row.config) if row else cal.ScheduleConfig()
    return HallScheduleView(hall=hall, configured=row is not None, config=config)


async def put_schedule(deps: BookingDeps, *, hall: str, config: Any) -> HallScheduleView:
    """Replace a hall's calendar; future slots take the new capacities (never below seats booked)."""
    await _hall(hall)
    try:
        parsed = cal.ScheduleConfig.model_validate(config)
    except ValidationError as exc:
        raise ScheduleInvalid(details=pydantic_details(exc)) from None
    data = parsed.model_dump(mode="json")
    now = clock.now()
    async with in_transaction():
        # The hall's row lock serialises its calendar writes: two first saves would both create the row.
        await Hall.select_for_update().filter(code=hall).only("id").first()
        if await HallSchedule.filter(hall_code=hall).update(config=data, updated_at=now) == 0:
            await HallSchedule.create(hall_code=hall, config=data)
        sections = await Slot.filter(hall_code=hall, starts_at__gt=now).distinct().values_list("section", flat=True)
        for section in sections:
            seats = parsed.seats(section)
            future = Slot.filter(hall_code=hall, section=section, starts_at__gt=now)
            await future.filter(booked__lte=seats).update(capacity=seats)
            # A cut below what is already booked keeps those bookings: the slot is simply full.
            await future.filter(booked__gt=seats).update(capacity=F("booked"))
        await audit.record(
            action="hall.schedule",
            object_type="hall",
            object_id=hall,
            summary=f"修改大厅 {hall} 预约日历",
            changes=data,
        )
    await schedules_changed(deps)
    return HallScheduleView(hall=hall, configured=True, config=parsed)


async def list_closures(*, hall: str) -> tuple[Closure, ...]:
    """A hall's closures from today on."""
    await _hall(hall)
    rows = await HallClosure.filter(hall_code=hall, day__gte=clock.today()).order_by("day")
    return tuple(Closure(day=r.day, reason=r.reason) for r in rows)


async def add_closure(deps: BookingDeps, *, hall: str, day: dt.date, reason: str) -> ClosureAdded:
    """Close a hall on a date (existing bookings stay; the desk and citizens see the notice)."""
    await _hall(hall)
    if day < clock.today():
        raise InvalidInput("不能为过去的日期设置闭厅", code="CLOSURE_IN_PAST")
    try:
        async with in_transaction():
            await HallClosure.create(hall_code=hall, day=day, reason=reason)
            await audit.record(
                action="hall.close",
                object_type="hall",
                object_id=hall,
                summary=f"大厅 {hall} {day.isoformat()} 闭厅",
                changes={"date": day, "reason": reason},
            )
    except IntegrityError:
        raise ClosureExists(details={"date": day.isoformat()}) from None
    await schedules_changed(deps)
    booked = await Slot.filter(hall_code=hall, day=day, booked__gt=0).count()
    return ClosureAdded(day=day, reason=reason, slots_with_bookings=booked)


async def remove_closure(deps: BookingDeps, *, hall: str, day: dt.date) -> None:
    """Reopen a hall on a date."""
    await _hall(hall)
    async with in_transaction():
        if not await HallClosure.filter(hall_code=hall, day=day).delete():
            raise ClosureNotFound(details={"date": day.isoformat()})
        await audit.record(
            action="hall.reopen",
            object_type="hall",
            object_id=hall,
            summary=f"大厅 {hall} {day.isoformat()} 取消闭厅",
            changes={"date": day},
        )
    await schedules_changed(deps)


async def get_counters(*, hall: str) -> tuple[CounterView, ...]:
    """A hall's counters."""
    await _hall(hall)
    rows = await Counter.filter(hall_code=hall).order_by("code")
    return tuple(CounterView(code=r.code, section=r.section, name=r.name, active=r.active) for r in rows)


async def put_counters(deps: BookingDeps, *, hall: str, counters: list[dict[str, Any]]) -> tuple[CounterView, ...]:
    """Replace a hall's counters."""
    await _hall(hall)
    codes = [c["code"] for c in counters]
    if len(codes) != len(set(codes)):
        raise InvalidInput("窗口编号重复", code="COUNTER_DUPLICATE")
    async with in_transaction():
        await Counter.filter(hall_code=hall).delete()
        for c in counters:
            await Counter.create(hall_code=hall, **c)
        await audit.record(
            action="hall.counters",
            object_type="hall",
            object_id=hall,
            summary=f"修改大厅 {hall} 窗口（{len(counters)} 个）",
            changes={"counters": counters},
        )
    await schedules_changed(deps)  # desks check counters against the cached hall calendar
    return await get_counters(hall=hall)
