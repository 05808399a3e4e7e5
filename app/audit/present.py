"""The audit log as JSON (the admin API) and its query as service filters."""

from __future__ import annotations

from typing import Any

from app import clock
from app.audit.service import AuditRecord


def entry_json(entry: AuditRecord) -> dict[str, Any]:
    """One entry as the API shows it."""
    return {
        "id": entry.id,
        "at": clock.iso(entry.at),
        "actor": {"subject": entry.actor, "name": entry.actor_name, "role": entry.actor_role},
        "ip": entry.ip,
        "action": entry.action,
        "object": {"type": entry.object_type, "id": entry.object_id},
        "summary": entry.summary,
        "changes": entry.changes,
        "request_id": entry.request_id,
    }
