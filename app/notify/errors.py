"""The outbox's business errors."""

from __future__ import annotations

from app.errors import Conflict, NotFound


class NotificationNotFound(NotFound):
    code, message = "NOTIFICATION_NOT_FOUND", "未找到该通知"


class NotificationNotRetryable(Conflict):
    code, message = "NOTIFICATION_NOT_RETRYABLE", "只有发送失败的通知可以重试"
