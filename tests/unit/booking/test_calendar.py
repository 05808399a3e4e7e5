"""A hall's booking calendar: ScheduleConfig validation, slots of a day (holidays, closures, 调休 days,
weekend hours), the booking window, and slot ids."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from app.booking import calendar as cal
from app.booking.calendar import ScheduleConfig, day_slots, parse_slot_id, periods, slot_id, window
from app.matters.schemas import Section

D = dt.date
NONE: frozenset[dt.date] = frozenset()
WEEKDAY_HHMM = [
    *("09:00", "09:30", "10:00", "10:30", "11:00", "11:30"),
    *("13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30"),
]
WEDNESDAY = D(2026, 10, 14)
MAKEUP_SATURDAY = D(2026, 10, 10)
MAKEUP_SUNDAY = D(2026, 9, 20)
HOLIDAY_SATURDAY = D(2026, 10, 3)
ORDINARY_SATURDAY = D(2026, 10, 17)
ORDINARY_SUNDAY = D(2026, 10, 18)


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure calendar functions: override the suite-wide database reset, these tests touch no database."""


def weekday_hours(**extra: Any) -> dict[str, Any]:
    hours: dict[str, Any] = {str(d): [["09:00", "12:00"], ["13:30", "17:00"]] for d in range(1, 6)}
    hours.update(extra)
    return hours


def hhmms(config: ScheduleConfig, day: dt.date, closed: frozenset[dt.date] = NONE) -> list[str]:
    return [s.hhmm for s in day_slots(config, day, closed)]


# --- ScheduleConfig validation --------------------------------------------------------------------


def test_defaults():
    config = ScheduleConfig()
    assert set(config.hours) == {"1", "2", "3", "4", "5"}
    assert config.hours["1"] == (("09:00", "12:00"), ("13:30", "17:00"))
    assert config.slot_minutes == 30
    assert config.default_capacity == 2
    assert config.window_days == 7
    assert config.same_day is True
    assert (config.cutoff_minutes, config.early_minutes, config.grace_minutes) == (30, 30, 15)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"hours": {"0": [["09:00", "12:00"]]}}, id="weekday-0"),
        pytest.param({"hours": {"8": [["09:00", "12:00"]]}}, id="weekday-8"),
        pytest.param({"hours": {"mon": [["09:00", "12:00"]]}}, id="weekday-name"),
        pytest.param({"hours": {"01": [["09:00", "12:00"]]}}, id="weekday-zero-padded"),
        pytest.param({"hours": {"1": [["12:00", "12:00"]]}}, id="start-equals-end"),
        pytest.param({"hours": {"1": [["13:00", "12:00"]]}}, id="start-after-end"),
        pytest.param({"hours": {"1": [["09:00", "12:00"], ["11:30", "14:00"]]}}, id="overlap"),
        pytest.param({"hours": {"1": [["13:30", "17:00"], ["09:00", "12:00"]]}}, id="unsorted"),
        pytest.param({"hours": {"1": [["09:00", "12:00"], ["09:00", "12:00"]]}}, id="duplicate"),
        pytest.param({"hours": {}}, id="no-days"),
        pytest.param({"hours": {"1": [], "2": []}}, id="days-without-periods"),
        pytest.param({"hours": {"1": [["24:00", "24:30"]]}}, id="hour-24"),
        pytest.param({"hours": {"1": [["9:00", "12:00"]]}}, id="one-digit-hour"),
        pytest.param({"hours": {"1": [["09:60", "12:00"]]}}, id="minute-60"),
        pytest.param({"hours": {"1": [["09:00", "12:00", "13:00"]]}}, id="three-times"),
        pytest.param({"capacity": {"commercial": 1001}}, id="capacity-too-high"),
        pytest.param({"capacity": {"commercial": -1}}, id="capacity-negative"),
        pytest.param({"capacity": {"bakery": 2}}, id="capacity-unknown-section"),
        pytest.param({"default_capacity": 1001}, id="default-capacity-too-high"),
        pytest.param({"default_capacity": -1}, id="default-capacity-negative"),
        pytest.param({"slot_minutes": 4}, id="slot-too-short"),
        pytest.param({"slot_minutes": 241}, id="slot-too-long"),
        pytest.param({"window_days": 0}, id="window-0"),
        pytest.param({"window_days": 61}, id="window-61"),
        pytest.param({"cutoff_minutes": 1441}, id="cutoff-too-long"),
        pytest.param({"early_minutes": -1}, id="early-negative"),
        pytest.param({"grace_minutes": 241}, id="grace-too-long"),
        pytest.param({"colour": "red"}, id="unknown-field"),
    ],
)
def test_invalid_config_is_rejected(data: dict[str, Any]):
    with pytest.raises(ValidationError):
        ScheduleConfig.model_validate(data)


def test_validation_messages_name_the_problem():
    with pytest.raises(ValidationError, match="星期应为 1–7"):
        ScheduleConfig(hours={"9": (("09:00", "12:00"),)})
    with pytest.raises(ValidationError, match="开始应早于结束"):
        ScheduleConfig(hours={"1": (("12:00", "09:00"),)})
    with pytest.raises(ValidationError, match="重叠"):
        ScheduleConfig(hours={"1": (("09:00", "12:00"), ("11:00", "13:00"))})
    with pytest.raises(ValidationError, match="至少需要一个办公时段"):
        ScheduleConfig(hours={"1": ()})
    with pytest.raises(ValidationError, match="号数应在 0–1000"):
        ScheduleConfig.model_validate({"capacity": {"tax": 5000}})


@pytest.mark.parametrize(
    "data",
    [
        {"hours": {"1": [["09:00", "12:00"], ["12:00", "13:00"]]}},  # adjacent, not overlapping
        {"hours": {"7": [["00:00", "23:59"]]}},
        {"hours": {"1": [["09:00", "12:00"]], "2": []}},  # a day listed without periods
        {"capacity": {"commercial": 0, "tax": 1000}, "default_capacity": 0},
        {"slot_minutes": 5, "window_days": 60, "cutoff_minutes": 1440, "early_minutes": 240, "grace_minutes": 0},
    ],
)
def test_valid_edge_configs_are_accepted(data: dict[str, Any]):
    ScheduleConfig.model_validate(data)


def test_config_is_frozen():
    config = ScheduleConfig()
    with pytest.raises(ValidationError):
        config.slot_minutes = 10  # type: ignore[misc]


def test_seats_per_section():
    config = ScheduleConfig.model_validate({"capacity": {"commercial": 5, "tax": 0}, "default_capacity": 3})
    assert config.seats("commercial") == 5
    assert config.seats(Section.commercial) == 5
    assert config.seats("tax") == 0
    assert config.seats("real_estate") == 3
    assert ScheduleConfig().seats("general") == 2


# --- day_slots ------------------------------------------------------------------------------------


def test_weekday_slots_with_default_config():
    slots = day_slots(ScheduleConfig(), WEDNESDAY, NONE)
    assert len(slots) == 13
    assert [s.hhmm for s in slots] == WEEKDAY_HHMM
    assert all(s.day == WEDNESDAY for s in slots)
    for s in slots:
        hours, minutes = map(int, s.hhmm.split(":"))
        local = dt.datetime(2026, 10, 14, hours, minutes)
        assert s.starts_at.utcoffset() == dt.timedelta(0)
        assert s.starts_at.replace(tzinfo=None) == local - dt.timedelta(hours=8)
        assert s.ends_at - s.starts_at == dt.timedelta(minutes=30)
    assert slots[0].starts_at == dt.datetime(2026, 10, 14, 1, 0, tzinfo=dt.UTC)
    assert slots[5].ends_at == dt.datetime(2026, 10, 14, 4, 0, tzinfo=dt.UTC)  # 12:00 local
    assert slots[6].starts_at == dt.datetime(2026, 10, 14, 5, 30, tzinfo=dt.UTC)  # 13:30 local
    assert slots[-1].ends_at == dt.datetime(2026, 10, 14, 9, 0, tzinfo=dt.UTC)  # 17:00 local


def test_slots_never_overrun_a_period():
    config = ScheduleConfig(slot_minutes=45)
    assert hhmms(config, WEDNESDAY) == ["09:00", "09:45", "10:30", "11:15", "13:30", "14:15", "15:00", "15:45"]
    assert day_slots(config, WEDNESDAY, NONE)[-1].ends_at == dt.datetime(2026, 10, 14, 8, 30, tzinfo=dt.UTC)


def test_slot_longer_than_a_period_gives_no_slot_in_it():
    config = ScheduleConfig(hours={"3": (("09:00", "09:20"), ("10:00", "11:00"))}, slot_minutes=30)
    assert hhmms(config, WEDNESDAY) == ["10:00", "10:30"]


def test_early_morning_slot_falls_on_the_previous_utc_day():
    config = ScheduleConfig(hours={"3": (("07:00", "08:00"),)}, slot_minutes=60)
    (slot,) = day_slots(config, WEDNESDAY, NONE)
    assert slot.day == WEDNESDAY
    assert slot.starts_at == dt.datetime(2026, 10, 13, 23, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("day", [D(2026, 10, n) for n in range(1, 8)] + [D(2026, 9, 25), D(2026, 5, 1)])
def test_no_slots_on_statutory_holidays(day: dt.date):
    assert day_slots(ScheduleConfig(), day, NONE) == []
    assert periods(ScheduleConfig(), day, NONE) == ()


def test_no_slots_on_a_closure_date():
    assert day_slots(ScheduleConfig(), WEDNESDAY, frozenset({WEDNESDAY})) == []
    # Closing another day does not affect this one.
    assert len(day_slots(ScheduleConfig(), WEDNESDAY, frozenset({WEDNESDAY + dt.timedelta(days=1)}))) == 13


def test_closure_also_closes_a_makeup_day():
    assert day_slots(ScheduleConfig(), MAKEUP_SATURDAY, frozenset({MAKEUP_SATURDAY})) == []


@pytest.mark.parametrize("day", [ORDINARY_SATURDAY, ORDINARY_SUNDAY, D(2026, 10, 11)])
def test_no_slots_on_ordinary_weekends_by_default(day: dt.date):
    assert day_slots(ScheduleConfig(), day, NONE) == []


@pytest.mark.parametrize("day", [MAKEUP_SATURDAY, MAKEUP_SUNDAY])
def test_makeup_weekend_day_opens_with_default_hours(day: dt.date):
    slots = day_slots(ScheduleConfig(), day, NONE)
    assert [s.hhmm for s in slots] == WEEKDAY_HHMM
    assert all(s.day == day for s in slots)


def test_makeup_day_uses_mondays_hours():
    config = ScheduleConfig.model_validate(
        {"hours": weekday_hours(**{"1": [["08:00", "10:00"]], "6": [], "7": []})},
    )
    assert hhmms(config, MAKEUP_SATURDAY) == ["08:00", "08:30", "09:00", "09:30"]
    assert hhmms(config, MAKEUP_SUNDAY) == ["08:00", "08:30", "09:00", "09:30"]
    assert hhmms(config, D(2026, 10, 12)) == ["08:00", "08:30", "09:00", "09:30"]  # that Monday


def test_makeup_day_without_monday_hours_uses_the_first_configured_day():
    config = ScheduleConfig.model_validate({"hours": {"3": [["10:00", "11:00"]], "4": [["14:00", "15:00"]]}})
    assert hhmms(config, MAKEUP_SATURDAY) == ["10:00", "10:30"]


def test_makeup_saturday_uses_mondays_hours_even_when_saturday_has_hours():
    # ScheduleConfig.hours documents "调休上班的周末按周一时段" and periods() "Monday's on 调休 workdays":
    # a 调休 Saturday is a full working day, so a hall with short Saturday hours should open Monday's.
    config = ScheduleConfig.model_validate({"hours": weekday_hours(**{"6": [["09:00", "10:00"]]})})
    assert hhmms(config, MAKEUP_SATURDAY) == WEEKDAY_HHMM


def test_saturday_hours_open_ordinary_saturdays_but_not_holiday_saturdays():
    config = ScheduleConfig.model_validate({"hours": weekday_hours(**{"6": [["09:00", "12:00"]]})})
    saturday_hhmm = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert hhmms(config, ORDINARY_SATURDAY) == saturday_hhmm
    assert hhmms(config, D(2026, 10, 24)) == saturday_hhmm
    assert hhmms(config, HOLIDAY_SATURDAY) == []
    assert hhmms(config, D(2026, 9, 26)) == []  # Mid-Autumn Saturday
    assert hhmms(config, ORDINARY_SUNDAY) == []  # Sunday still closed
    assert hhmms(config, ORDINARY_SATURDAY, frozenset({ORDINARY_SATURDAY})) == []


def test_hall_closed_on_a_weekday_it_has_no_hours_for():
    config = ScheduleConfig.model_validate({"hours": {"1": [["09:00", "12:00"]], "2": [["09:00", "12:00"]]}})
    assert hhmms(config, WEDNESDAY) == []


# --- window ---------------------------------------------------------------------------------------


def test_window_skips_holidays_and_weekends_and_counts_the_makeup_day():
    today = D(2026, 9, 28)  # Monday before National Day
    assert window(ScheduleConfig(), today, NONE) == [
        D(2026, 9, 28),
        D(2026, 9, 29),
        D(2026, 9, 30),
        D(2026, 10, 8),
        D(2026, 10, 9),
        D(2026, 10, 10),
        D(2026, 10, 12),
    ]


def test_window_without_same_day_starts_tomorrow():
    today = D(2026, 9, 28)
    days = window(ScheduleConfig(same_day=False), today, NONE)
    assert days == [
        D(2026, 9, 29),
        D(2026, 9, 30),
        D(2026, 10, 8),
        D(2026, 10, 9),
        D(2026, 10, 10),
        D(2026, 10, 12),
        D(2026, 10, 13),
    ]


def test_window_from_a_closed_day_with_same_day():
    assert window(ScheduleConfig(window_days=2), ORDINARY_SUNDAY, NONE) == [D(2026, 10, 19), D(2026, 10, 20)]


@pytest.mark.parametrize("n", [1, 3, 10, 60])
def test_window_days_is_the_number_of_open_days(n: int):
    days = window(ScheduleConfig(window_days=n), D(2026, 9, 28), NONE)
    assert len(days) == n
    assert days == sorted(set(days))
    assert all(day_slots(ScheduleConfig(), d, NONE) for d in days)


def test_window_skips_closures():
    today = D(2026, 9, 28)
    closed = frozenset({D(2026, 9, 29), D(2026, 10, 10)})
    assert window(ScheduleConfig(window_days=5), today, closed) == [
        D(2026, 9, 28),
        D(2026, 9, 30),
        D(2026, 10, 8),
        D(2026, 10, 9),
        D(2026, 10, 12),
    ]


def test_window_never_looks_past_the_horizon():
    # Only Sundays open: 60 open days do not exist within HORIZON_DAYS, so the window stops short.
    config = ScheduleConfig.model_validate({"hours": {"7": [["09:00", "12:00"]]}, "window_days": 60})
    today = D(2026, 6, 1)
    days = window(config, today, NONE)
    limit = today + dt.timedelta(days=cal.HORIZON_DAYS)
    expected = [
        today + dt.timedelta(days=n)
        for n in range(cal.HORIZON_DAYS + 1)
        if periods(config, today + dt.timedelta(days=n), NONE)
    ]
    assert days == expected
    assert 0 < len(days) < 60
    assert days[-1] <= limit
    # Makeup days open even in a Sunday-only hall (2026-09-20 is a makeup Sunday); ordinary Sundays too.
    assert D(2026, 9, 20) in days
    assert D(2026, 6, 7) in days
    assert D(2026, 6, 21) not in days  # Dragon Boat Festival Sunday


def test_window_is_empty_when_everything_is_closed():
    today = D(2026, 9, 28)
    closed = frozenset(today + dt.timedelta(days=n) for n in range(cal.HORIZON_DAYS + 1))
    assert window(ScheduleConfig(), today, closed) == []


# --- slot ids -------------------------------------------------------------------------------------


def test_slot_id_format():
    assert slot_id("main", "commercial", D(2026, 11, 27), "09:30") == "main.commercial.20261127.0930"


@pytest.mark.parametrize(
    ("hall", "section"),
    [("main", "commercial"), ("ab", "tax"), ("h" * 32, "social_security"), ("9_hall_2", "real_estate")],
)
def test_slot_id_round_trip(hall: str, section: str):
    for day in (WEDNESDAY, MAKEUP_SATURDAY, D(2026, 1, 1), D(2099, 12, 31)):
        for hhmm in ("00:00", "09:30", "13:45", "23:59"):
            sid = slot_id(hall, section, day, hhmm)
            assert parse_slot_id(sid) == (hall, section, day, hhmm)


def test_every_slot_of_a_day_round_trips():
    for slot in day_slots(ScheduleConfig(), WEDNESDAY, NONE):
        sid = slot_id("main", "tax", slot.day, slot.hhmm)
        assert parse_slot_id(sid) == ("main", "tax", WEDNESDAY, slot.hhmm)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("main.commercial.20260230.0930", id="feb-30"),
        pytest.param("main.commercial.20261301.0930", id="month-13"),
        pytest.param("main.commercial.20261100.0930", id="day-0"),
        pytest.param("main.commercial.00001127.0930", id="year-0"),
        pytest.param("main.commercial.20261127.2460", id="time-2460"),
        pytest.param("main.commercial.20261127.2400", id="time-2400"),
        pytest.param("main.commercial.20261127.0960", id="minute-60"),
        pytest.param("main.commercial.20261127.9999", id="time-9999"),
        pytest.param("main.commercial.20261127", id="no-time"),
        pytest.param("main.commercial.20261127.0930.x", id="extra-part"),
        pytest.param("commercial.20261127.0930", id="no-hall"),
        pytest.param("main..20261127.0930", id="empty-section"),
        pytest.param("main.commercial.2026-11-27.09:30", id="iso-date-time"),
        pytest.param("main.commercial.2026112.0930", id="7-digit-date"),
        pytest.param("main.commercial.202611270.0930", id="9-digit-date"),
        pytest.param("main.commercial.20261127.930", id="3-digit-time"),
        pytest.param("main.commercial.20261127.09300", id="5-digit-time"),
        pytest.param("MAIN.commercial.20261127.0930", id="uppercase-hall"),
        pytest.param("main.Commercial.20261127.0930", id="uppercase-section"),
        pytest.param("MAIN.COMMERCIAL.20261127.0930", id="all-uppercase"),
        pytest.param("m.commercial.20261127.0930", id="hall-too-short"),
        pytest.param("h" * 33 + ".commercial.20261127.0930", id="hall-too-long"),
        pytest.param("_main.commercial.20261127.0930", id="hall-leading-underscore"),
        pytest.param("ma-in.commercial.20261127.0930", id="hall-dash"),
        pytest.param("main.c.20261127.0930", id="section-too-short"),
        pytest.param("main." + "s" * 21 + ".20261127.0930", id="section-too-long"),
        pytest.param("main.tax2.20261127.0930", id="section-digit"),
        pytest.param(" main.commercial.20261127.0930", id="leading-space"),
        pytest.param("main.commercial.20261127.0930 ", id="trailing-space"),
        pytest.param("main.commercial.20261127.0930\n", id="trailing-newline"),
        pytest.param("主厅.commercial.20261127.0930", id="chinese-hall"),
        pytest.param("", id="empty"),
        pytest.param("None", id="None-string"),
        pytest.param("null", id="null-string"),
        pytest.param("undefined", id="undefined-string"),
        pytest.param("....", id="dots"),
    ],
)
def test_malformed_slot_ids_are_rejected(value: str):
    assert parse_slot_id(value) is None


def test_none_slot_id_is_rejected():
    assert parse_slot_id(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("main.commercial.２０２６１１２７.0930", id="fullwidth-date-digits"),
        pytest.param("main.commercial.٢٠٢٦١١٢٧.0930", id="arabic-indic-date-digits"),
        pytest.param("main.commercial.20261127.0٩30", id="arabic-indic-hour-digit"),
    ],
)
def test_non_ascii_digits_are_rejected(value: str):
    # `\d` in SLOT_ID_RE matches any Unicode digit and int() accepts them, so an alias of the real
    # slot id "main.commercial.20261127.0930" parses to the same slot. The booking service stores the
    # id as given (Slot row id, Booking.slot_id), so each alias gets a fresh row with full capacity.
    assert parse_slot_id(value) is None
