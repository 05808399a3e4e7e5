"""Working-day arithmetic on the Chinese calendar: statutory holidays, 调休 makeup workdays, weekends,
the Monday–Friday fallback for years chinese-calendar does not know, and adding/counting working days."""

from __future__ import annotations

import datetime as dt
import logging

import chinese_calendar
import pytest

from app import workdays
from app.workdays import add_workdays, day_kind, is_workday, workdays_between

D = dt.date


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure date arithmetic: override the suite-wide database reset, these tests touch no database."""


# --- day_kind / is_workday on known 2026 dates ---------------------------------------------------


@pytest.mark.parametrize("day", [D(2026, 10, n) for n in range(1, 8)])
def test_national_day_week_is_holiday(day: dt.date):
    assert day_kind(day) == "holiday"
    assert not is_workday(day)


@pytest.mark.parametrize(
    ("day", "kind"),
    [
        (D(2026, 9, 28), "workday"),  # Monday
        (D(2026, 9, 30), "workday"),  # Wednesday, the last day before National Day
        (D(2026, 10, 8), "workday"),  # Thursday after the holiday
        (D(2026, 10, 9), "workday"),
        (D(2026, 10, 10), "makeup"),  # Saturday, 调休 working day for National Day
        (D(2026, 9, 20), "makeup"),  # Sunday, 调休 working day
        (D(2026, 10, 11), "weekend"),  # Sunday right after the makeup Saturday
        (D(2026, 10, 17), "weekend"),  # ordinary Saturday
        (D(2026, 10, 18), "weekend"),  # ordinary Sunday
        (D(2026, 9, 25), "holiday"),  # Mid-Autumn Festival, a Friday
        (D(2026, 5, 1), "holiday"),  # Labour Day
        (D(2026, 1, 1), "holiday"),  # New Year's Day
    ],
)
def test_day_kind_2026(day: dt.date, kind: str):
    assert day_kind(day) == kind
    assert is_workday(day) is (kind in {"workday", "makeup"})


def test_makeup_days_are_weekends_and_weekend_days_are_weekends():
    day = D(2026, 1, 1)
    seen = set()
    while day.year == 2026:
        kind = day_kind(day)
        seen.add(kind)
        if kind in {"makeup", "weekend"}:
            assert day.isoweekday() >= 6, day
        if kind == "workday":
            assert day.isoweekday() <= 5, day
        day += dt.timedelta(days=1)
    assert seen == {"workday", "makeup", "weekend", "holiday"}


# --- add_workdays ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (D(2026, 9, 30), 0, D(2026, 9, 30)),
        (D(2026, 9, 30), 1, D(2026, 10, 8)),  # the whole National Day week is skipped
        (D(2026, 9, 30), 2, D(2026, 10, 9)),
        (D(2026, 9, 30), 3, D(2026, 10, 10)),  # the 调休 Saturday counts
        (D(2026, 9, 30), 4, D(2026, 10, 12)),  # the Sunday after it does not
        (D(2026, 10, 3), 1, D(2026, 10, 8)),  # starting on a holiday
        (D(2026, 9, 24), 1, D(2026, 9, 28)),  # over Mid-Autumn (25th–27th)
        (D(2026, 9, 18), 1, D(2026, 9, 20)),  # Friday + 1: the makeup Sunday, not Monday
        (D(2026, 10, 12), 5, D(2026, 10, 19)),  # an ordinary week
    ],
)
def test_add_workdays(start: dt.date, days: int, expected: dt.date):
    assert add_workdays(start, days) == expected


def test_add_zero_workdays_from_a_holiday_is_the_start_itself():
    assert add_workdays(D(2026, 10, 1), 0) == D(2026, 10, 1)


@pytest.mark.parametrize("days", [-1, -10])
def test_add_negative_workdays_raises(days: int):
    with pytest.raises(ValueError, match="days must be >= 0"):
        add_workdays(D(2026, 9, 30), days)


def test_add_workdays_result_is_always_a_workday():
    start = D(2026, 9, 1)
    for n in range(1, 40):
        assert is_workday(add_workdays(start, n)), n


# --- workdays_between -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D(2026, 9, 30), D(2026, 10, 10), 3),
        (D(2026, 9, 30), D(2026, 10, 11), 3),  # the Sunday adds nothing
        (D(2026, 9, 30), D(2026, 10, 7), 0),  # only holidays in (start, end]
        (D(2026, 9, 29), D(2026, 9, 30), 1),  # end is counted
        (D(2026, 9, 30), D(2026, 9, 30), 0),
        (D(2026, 10, 10), D(2026, 9, 30), 0),  # end before start
        (D(2026, 10, 11), D(2026, 10, 18), 5),
    ],
)
def test_workdays_between(start: dt.date, end: dt.date, expected: int):
    assert workdays_between(start, end) == expected


@pytest.mark.parametrize("start", [D(2026, 9, 18), D(2026, 9, 30), D(2026, 10, 3), D(2026, 12, 20)])
def test_workdays_between_inverts_add_workdays(start: dt.date):
    for n in range(0, 25):
        assert workdays_between(start, add_workdays(start, n)) == n, n


# --- years chinese-calendar does not know ---------------------------------------------------------


@pytest.mark.parametrize("year", [2099, 2003])
def test_library_raises_not_implemented_for_unknown_years(year: int):
    # The precondition of the fallback: this is what the library does for years it has no data for.
    with pytest.raises(NotImplementedError):
        chinese_calendar.get_holiday_detail(D(year, 10, 1))


def test_unknown_year_falls_back_to_monday_to_friday():
    monday = D(2099, 10, 5)
    assert monday.isoweekday() == 1
    kinds = [day_kind(monday + dt.timedelta(days=n)) for n in range(7)]
    assert kinds == ["workday"] * 5 + ["weekend"] * 2
    # No holidays known: 1 October 2099 (a Thursday) is an ordinary workday under the fallback.
    assert day_kind(D(2099, 10, 1)) == "workday"
    assert is_workday(D(2099, 10, 1))


def test_unknown_year_fallback_logs_one_warning_per_year(caplog: pytest.LogCaptureFixture):
    workdays.day_kind.cache_clear()
    workdays._warned.discard(2098)
    with caplog.at_level(logging.WARNING, logger="app.workdays"):
        for n in range(40):
            day_kind(D(2098, 3, 1) + dt.timedelta(days=n))
    warnings = [r for r in caplog.records if r.name == "app.workdays" and "2098" in r.getMessage()]
    assert len(warnings) == 1


def test_arithmetic_in_an_unknown_year():
    friday = D(2099, 10, 2)
    assert friday.isoweekday() == 5
    assert add_workdays(friday, 1) == D(2099, 10, 5)  # Monday
    assert add_workdays(friday, 6) == D(2099, 10, 12)
    assert workdays_between(friday, D(2099, 10, 12)) == 6
