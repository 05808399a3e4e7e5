"""The notification outbox table."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.notify.types import NotificationStatus


class Notification(Model):
    """A message to a citizen, written with the change it announces and sent by the delivery worker."""

    id = fields.UUIDField(primary_key=True)
    kind = fields.CharField(max_length=40)
    citizen_id = fields.UUIDField(db_index=True)
    subject_type = fields.CharField(max_length=20)
    subject_id = fields.CharField(max_length=64)
    payload = fields.JSONField()
    dedupe_key = fields.CharField(max_length=128, unique=True)
    status = fields.CharEnumField(NotificationStatus, default=NotificationStatus.pending, max_length=10)
    send_after = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    claim_token = fields.UUIDField(null=True)
    claimed_until = fields.DatetimeField(null=True)
    channel = fields.CharField(max_length=20, null=True)
    msgid = fields.CharField(max_length=40, null=True)
    last_error = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification"
        indexes = (("status", "send_after"), ("subject_type", "subject_id"))
