"""What the notify services answer, as typed values (no ORM, so channels and other domains' views may hold them)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.paging import Page


class NotificationStatus(enum.StrEnum):
    """pending -> sent | failed, or cancelled before sending."""

    pending = "pending"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"


class DeliveryChannel(enum.StrEnum):
    """How a notification reached the citizen: a WeChat message, or a text to their verified phone."""

    official_account = "official_account"  # template message of the official account
    miniprogram = "miniprogram"  # mini-program subscribe message
    sms = "sms"  # for citizens WeChat cannot reach


@dataclass(frozen=True)
class NotificationView:
    """A notification of the outbox and how its delivery went."""

    id: uuid.UUID
    kind: str
    status: str
    subject_type: str
    subject_id: str
    send_after: dt.datetime
    attempts: int
    channel: str | None  # a DeliveryChannel once a send was tried, None before
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    payload: Mapping[str, Any]


NotificationPage = Page[NotificationView]
