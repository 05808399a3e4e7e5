"""Enumerations of the codes that channels use too (kept out of models.py, so channels load no ORM model)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass


class CodeAction(enum.StrEnum):
    """What a code opens for its matter."""

    guide = "guide"
    book = "book"
    apply = "apply"
    progress = "progress"
    consult = "consult"
    rate = "rate"


class CodeStatus(enum.StrEnum):
    """Whether a code resolves."""

    active = "active"
    disabled = "disabled"


class ScanChannel(enum.StrEnum):
    """Where a scan came from."""

    wechat = "wechat"
    miniprogram = "miniprogram"
    browser = "browser"
    app = "app"


@dataclass(frozen=True)
class DayScans:
    """One day's scans of a code by channel, and its unique visitors."""

    day: dt.date
    scans: int
    by_channel: Mapping[str, int]  # channel -> scans, in the order the rows were read
    visitors: int


@dataclass(frozen=True)
class CodeStats:
    """A code's scans per day and channel over a period (days without scans or visitors left out)."""

    slug: str
    date_from: dt.date
    date_to: dt.date
    days: tuple[DayScans, ...]
    total_scans: int
    by_channel: Mapping[str, int]


@dataclass(frozen=True)
class InvalidScans:
    """Scans that did not resolve, on one day, for one reason."""

    day: dt.date
    reason: str
    scans: int
