"""Working-day arithmetic on the Chinese calendar: statutory holidays closed, 调休 weekend workdays open."""

from __future__ import annotations

import datetime as dt
import functools
import logging

import chinese_calendar

log = logging.getLogger("app.workdays")
_warned: set[int] = set()


@functools.lru_cache(maxsize=4096)
def day_kind(day: dt.date) -> str:
    """`workday`, `makeup` (a weekend made a workday, 调休), `weekend` or `holiday` (statutory)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        # Years the library does not know yet: Monday to Friday work, as the State Council's
        # notice for that year has not been published either.
        if day.year not in _warned:
            _warned.add(day.year)
            log.warning(
                "chinese-calendar has no data for %s: Monday-Friday are taken as working days "
                "(close halls on that year's holidays with one-off closures until the library knows them)",
                day.year,
            )
        return "workday" if day.isoweekday() <= 5 else "weekend"
    if on_holiday:
        return "holiday" if name is not None else "weekend"
    return "makeup" if day.isoweekday() >= 6 else "workday"


def is_workday(day: dt.date) -> bool:
    """True on an official working day (including 调休 weekend workdays)."""
    return day_kind(day) in {"workday", "makeup"}


def add_workdays(start: dt.date, days: int) -> dt.date:
    """The date `days` working days after `start` (`start` itself not counted), e.g. a time limit's end."""
    if days < 0:
        raise ValueError("days must be >= 0")
    current = start
    remaining = days
    while remaining:
        current += dt.timedelta(days=1)
        if is_workday(current):
            remaining -= 1
    return current


def workdays_between(start: dt.date, end: dt.date) -> int:
    """Working days in (start, end]: how many of a time limit's days have been used by `end`."""
    if end <= start:
        return 0
    return sum(1 for n in range(1, (end - start).days + 1) if is_workday(start + dt.timedelta(days=n)))
