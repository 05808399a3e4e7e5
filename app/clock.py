"""The one clock: every "now" in the service comes from here, so tests can move time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from time import time as _time
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _real() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_now: Callable[[], dt.datetime] = _real


def now() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return _now()


def timestamp() -> float:
    """Current time as seconds since the epoch (the real clock without making a datetime: hot paths)."""
    return _time() if _now is _real else _now().timestamp()


def today() -> dt.date:
    """Current date in Asia/Shanghai."""
    return now().astimezone(SHANGHAI).date()


def local_date(at: dt.datetime) -> dt.date:
    """The Asia/Shanghai date of an instant."""
    return at.astimezone(SHANGHAI).date()


def day_start(day: dt.date) -> dt.datetime:
    """Midnight of a Shanghai date, as UTC: SQLite compares stored UTC text, so query bounds must be UTC too."""
    return dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)


def set_clock(func: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (tests); `None` restores the real one."""
    global _now
    _now = func or _real


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in Asia/Shanghai with the +08:00 offset (the API's time format)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds")
