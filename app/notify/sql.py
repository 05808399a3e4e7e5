"""The outbox's SQL fragments, for statements of other domains that queue a notification with their change.

A fragment is text with named parameters (app/sql.py `named`), all prefixed `notify_`; its values come
from `pending_values`, so the outbox's columns and defaults are written here only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from app.jsontext import dumps


def pending_insert(source: str, *, at: str) -> str:
    """An INSERT of one pending notification per row of CTE `source`, unless `:notify_send_after` is NULL.

    `at` is the SQL expression of the creation time (the composing statement's own parameter).
    """
    return f"""INSERT INTO notification (id, kind, citizen_id, subject_type, subject_id, payload, dedupe_key, status,
        send_after, attempts, created_at, updated_at)
    SELECT :notify_id, :notify_kind, :notify_citizen_id, :notify_subject_type, :notify_subject_id,
        :notify_payload::jsonb, :notify_dedupe_key, 'pending', :notify_send_after::timestamptz, 0, {at}, {at}
    FROM {source} WHERE :notify_send_after::timestamptz IS NOT NULL"""  # noqa: S608 - constant names only


def pending_values(
    *,
    kind: str,
    citizen_id: uuid.UUID,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
    dedupe_key: str,
    send_after: dt.datetime,
) -> dict[str, Any]:
    """`pending_insert`'s values for one notification (notify.enqueue's arguments)."""
    return {
        "notify_id": uuid.uuid4(),
        "notify_kind": kind,
        "notify_citizen_id": citizen_id,
        "notify_subject_type": subject_type,
        "notify_subject_id": subject_id,
        "notify_payload": dumps(payload).decode(),
        "notify_dedupe_key": dedupe_key,
        "notify_send_after": send_after,
    }


NO_NOTIFICATION: dict[str, Any] = dict.fromkeys(
    ("notify_id", "notify_kind", "notify_citizen_id", "notify_subject_type", "notify_subject_id", "notify_payload",
     "notify_dedupe_key", "notify_send_after"),
)  # fmt: skip
"""`pending_insert`'s values when there is nothing to queue."""
