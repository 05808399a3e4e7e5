"""Enumerations of the codes that channels use too (kept out of models.py, so channels load no ORM model)."""

from __future__ import annotations

import enum


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
