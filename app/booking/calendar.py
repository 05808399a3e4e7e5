"""A hall's booking calendar: which days it opens, its slots, the booking window (pure functions)."""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import workdays
from app.clock import SHANGHAI
from app.matters.schemas import Section

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
SLOT_ID_RE = re.compile(r"([a-z0-9][a-z0-9_]{1,31})\.([a-z_]{2,20})\.([0-9]{8})\.([0-9]{4})", re.ASCII)
WEEKDAY_HOURS = [("09:00", "12:00"), ("13:30", "17:00")]
HORIZON_DAYS = 120  # never look further ahead than this for open days


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class ScheduleConfig(BaseModel):
    """A hall's booking rules (administrators edit them; defaults serve halls nobody configured)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hours: dict[str, tuple[tuple[HHMM, HHMM], ...]] = Field(
        default_factory=lambda: {str(d): tuple(WEEKDAY_HOURS) for d in range(1, 6)},
        description='按星期（1=周一 … 7=周日）的办公时段，如 {"1": [["09:00","12:00"],["13:30","17:00"]]}；'
        "调休上班的周末按周一时段；周末列出时段表示周末正常开放（法定节假日除外）",
    )
    slot_minutes: int = Field(default=30, ge=5, le=240, description="每个时段的分钟数")
    capacity: dict[Section, int] = Field(default_factory=dict, description="各业务板块每个时段的可预约号数")
    default_capacity: int = Field(default=2, ge=0, le=1000, description="未单独配置的板块每个时段的号数")
    window_days: int = Field(default=7, ge=1, le=60, description="可预约今后多少个开放日")
    same_day: bool = Field(default=True, description="是否可预约当天")
    cutoff_minutes: int = Field(default=30, ge=0, le=1440, description="时段开始前多少分钟停止预约、取消和改约")
    early_minutes: int = Field(default=30, ge=0, le=240, description="时段开始前多少分钟起可签到")
    grace_minutes: int = Field(default=15, ge=0, le=240, description="时段结束后多少分钟内仍可签到，过后记为爽约")

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, tuple[tuple[str, str], ...]]) -> dict[str, tuple[tuple[str, str], ...]]:
        for day, periods in value.items():
            if day not in {"1", "2", "3", "4", "5", "6", "7"}:
                raise ValueError(f"星期应为 1–7，收到 {day!r}")
            last_end = -1
            for start, end in periods:
                if _minutes(start) >= _minutes(end):
                    raise ValueError(f"星期 {day} 的时段 {start}-{end} 开始应早于结束")
                if _minutes(start) < last_end:
                    raise ValueError(f"星期 {day} 的时段重叠或未按时间排序")
                last_end = _minutes(end)
        return value

    @field_validator("capacity")
    @classmethod
    def _valid_capacity(cls, value: dict[Section, int]) -> dict[Section, int]:
        for section, seats in value.items():
            if not 0 <= seats <= 1000:
                raise ValueError(f"{section} 的号数应在 0–1000 之间")
        return value

    @model_validator(mode="after")
    def _some_hours(self) -> ScheduleConfig:
        if not any(self.hours.values()):
            raise ValueError("至少需要一个办公时段")
        return self

    def seats(self, section: str) -> int:
        """Seats per slot for a section."""
        return self.capacity.get(section, self.default_capacity)  # type: ignore[call-overload]


# Slotted: a hall calendar memoises every slot of its window (HallCalendar.slots), ~50 a day for 60 days.
@dataclass(frozen=True, slots=True)
class SlotTime:
    """One slot of a day, in local time and UTC."""

    day: dt.date
    hhmm: str
    starts_at: dt.datetime
    ends_at: dt.datetime


def slot_id(hall: str, section: str, day: dt.date, hhmm: str) -> str:
    """A slot's id, e.g. `main.commercial.20261127.0930` (readable, derived from what it is)."""
    return f"{hall}.{section}.{day:%Y%m%d}.{hhmm.replace(':', '')}"


def parse_slot_id(value: str) -> tuple[str, str, dt.date, str] | None:
    """(hall, section, day, "HH:MM") of a slot id, or None when it cannot be one."""
    match = SLOT_ID_RE.fullmatch(value or "")
    if not match:
        return None
    hall, section, day_raw, hm = match.groups()
    try:
        day = dt.date(int(day_raw[:4]), int(day_raw[4:6]), int(day_raw[6:]))
    except ValueError:
        return None
    hhmm = f"{hm[:2]}:{hm[2:]}"
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", hhmm):
        return None
    return hall, section, day, hhmm


def periods(config: ScheduleConfig, day: dt.date, closed: frozenset[dt.date]) -> tuple[tuple[str, str], ...]:
    """Opening periods of a day: none on statutory holidays and closures, Monday's on 调休 workdays."""
    if day in closed:
        return ()
    kind = workdays.day_kind(day)
    weekday = str(day.isoweekday())
    if kind == "holiday":
        return ()
    if kind == "makeup":
        # A 调休 weekend is a full working day: it keeps Monday's hours, not the weekend's own.
        return config.hours.get("1") or next(p for p in config.hours.values() if p)
    return config.hours.get(weekday, ())


def day_slots(config: ScheduleConfig, day: dt.date, closed: frozenset[dt.date]) -> list[SlotTime]:
    """Every slot of a day, in order."""
    out: list[SlotTime] = []
    step = config.slot_minutes
    midnight = dt.datetime.combine(day, dt.time(), SHANGHAI)
    for start, end in periods(config, day, closed):
        minute, last = _minutes(start), _minutes(end)
        while minute + step <= last:
            begins = midnight + dt.timedelta(minutes=minute)
            out.append(
                SlotTime(
                    day=day,
                    hhmm=sys.intern(f"{minute // 60:02d}:{minute % 60:02d}"),  # one string per time of day
                    starts_at=begins.astimezone(dt.UTC),
                    ends_at=(begins + dt.timedelta(minutes=step)).astimezone(dt.UTC),
                )
            )
            minute += step
    return out


WEEKDAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def _days_label(days: list[int]) -> str:
    """ISO weekdays as Chinese: runs of three or more as 周一至周五, the rest listed (周六、周日)."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{WEEKDAY_NAMES[run[0] - 1]}至{WEEKDAY_NAMES[run[-1] - 1]}")
        else:
            parts.extend(WEEKDAY_NAMES[d - 1] for d in run)
    return "、".join(parts)


def hours_text(config: ScheduleConfig) -> str:
    """The opening hours a guide states, written from the schedule the slots come from (one source for both).

    e.g. "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公".
    """
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for day in range(1, 8):
        periods_of_day = tuple(tuple(p) for p in config.hours.get(str(day), ()))
        if periods_of_day:
            groups.setdefault(periods_of_day, []).append(day)  # type: ignore[arg-type]
    lines = [
        f"{_days_label(days)} {'、'.join(f'{start}-{end}' for start, end in spans)}"
        for spans, days in sorted(groups.items(), key=lambda item: item[1][0])
    ]
    return "；".join(lines) + "；法定节假日休息，调休上班日照常办公"


def window(config: ScheduleConfig, today: dt.date, closed: frozenset[dt.date]) -> list[dt.date]:
    """The open days a citizen may book now: the next `window_days` open days (today too if allowed)."""
    days: list[dt.date] = []
    day = today if config.same_day else today + dt.timedelta(days=1)
    limit = today + dt.timedelta(days=HORIZON_DAYS)
    while len(days) < config.window_days and day <= limit:
        if periods(config, day, closed):
            days.append(day)
        day += dt.timedelta(days=1)
    return days
