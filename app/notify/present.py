"""The API's JSON of the outbox (app.notify.types): times in ISO 8601 with +08:00."""

from __future__ import annotations

from typing import Any

from app import clock
from app.notify.types import NotificationPage, NotificationView
from app.paging import envelope


def notification_json(n: NotificationView) -> dict[str, Any]:
    """The public shape of a notification."""
    return {
        "id": str(n.id),
        "kind": n.kind,
        "status": n.status,
        "subject_type": n.subject_type,
        "subject_id": n.subject_id,
        "send_after": clock.iso(n.send_after),
        "attempts": n.attempts,
        "channel": n.channel,
        "last_error": n.last_error,
        "created_at": clock.iso(n.created_at),
        "sent_at": clock.iso(n.sent_at),
        "payload": n.payload,
    }


def notification_page_json(p: NotificationPage) -> dict[str, Any]:
    """A page of the outbox."""
    return envelope(p, notification_json)
