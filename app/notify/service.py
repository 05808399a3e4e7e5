"""Write to and read the notification outbox (delivery is the worker's job)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.notify.errors import NotificationNotFound, NotificationNotRetryable
from app.notify.models import Notification, NotificationStatus
from app.notify.types import NotificationPage, NotificationView


async def enqueue(
    *,
    kind: str,
    citizen_id: uuid.UUID | str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
    dedupe_key: str,
    send_after: dt.datetime | None = None,
    fresh: bool = False,
) -> Notification | None:
    """Queue a notification (call inside the transaction of the change); None when already queued.

    `fresh=True` when the dedupe key names something this transaction just created (nothing to look up).
    """
    if not fresh and await Notification.exists(dedupe_key=dedupe_key):
        return None
    return await Notification.create(
        id=uuid.uuid4(),
        kind=kind,
        citizen_id=citizen_id,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload,
        dedupe_key=dedupe_key,
        send_after=send_after or clock.now(),
    )


async def cancel_pending(*, subject_type: str, subject_id: str, kind: str | None = None) -> int:
    """Cancel what has not been sent yet about a subject (e.g. the reminder of a cancelled booking)."""
    query = Notification.filter(subject_type=subject_type, subject_id=subject_id, status=NotificationStatus.pending)
    if kind:
        query = query.filter(kind=kind)
    return await query.update(status=NotificationStatus.cancelled, updated_at=clock.now())


def notification_view(row: Notification) -> NotificationView:
    """A notification row as a typed value."""
    return NotificationView(
        id=row.id,
        kind=row.kind,
        status=str(row.status),
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        send_after=row.send_after,
        attempts=row.attempts,
        channel=row.channel,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        payload=row.payload,
    )


async def list_notifications(
    *, status: str | None, kind: str | None, subject_id: str | None, page: int, page_size: int
) -> NotificationPage:
    """A page of the outbox for staff, newest first."""
    query = Notification.all()
    if status:
        query = query.filter(status=status)
    if kind:
        query = query.filter(kind=kind)
    if subject_id:
        query = query.filter(subject_id=subject_id)
    total = await query.count()
    rows = await query.order_by("-created_at", "-id").offset((page - 1) * page_size).limit(page_size)
    return NotificationPage(tuple(notification_view(r) for r in rows), total, page, page_size)


async def retry_failed(notification_id: uuid.UUID | str) -> NotificationView:
    """Put a failed notification back to pending, due now, with a fresh count of attempts.

    It keeps its id and once-only (dedupe) key, so it is still sent at most once; only `failed` may be
    retried (a sent one never is: the citizen has it). The update is conditional on the status, so two
    administrators retrying at once, or the worker, cannot race it.
    """
    try:
        key = uuid.UUID(str(notification_id))
    except ValueError:
        raise NotificationNotFound() from None
    async with in_transaction():
        changed = await Notification.filter(id=key, status=NotificationStatus.failed).update(
            status=NotificationStatus.pending,
            attempts=0,
            send_after=clock.now(),
            claim_token=None,
            claimed_until=None,
            updated_at=clock.now(),
        )
        if changed:
            await audit.record(action="notification.retry", object_type="notification", object_id=str(key),
                               summary="失败的通知重新排队发送", changes={})  # fmt: skip
    row = await Notification.get_or_none(id=key)
    if row is None:
        raise NotificationNotFound()
    if not changed:
        raise NotificationNotRetryable(details={"status": str(row.status)})
    return notification_view(row)
