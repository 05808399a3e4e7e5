"""One audit entry per staff or administrator write; rows are never updated or deleted."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["AuditEntry"]


class AuditEntry(Model):
    """Who did what to which object, when, from where (its changes redacted before they are stored)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=80, db_index=True)  # "staff:<uuid>", or "system" for the CLI and jobs
    actor_name = fields.CharField(max_length=100, default="")
    actor_role = fields.CharField(max_length=16, default="")
    ip = fields.CharField(max_length=64, default="")
    action = fields.CharField(max_length=64, db_index=True)
    object_type = fields.CharField(max_length=32, db_index=True)
    object_id = fields.CharField(max_length=100, db_index=True)
    summary = fields.CharField(max_length=500, default="")
    changes = fields.JSONField(default=dict)
    request_id = fields.CharField(max_length=64, default="")

    class Meta:
        table = "audit_log"
