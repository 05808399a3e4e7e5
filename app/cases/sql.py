"""The case domain's hand-written SQL (the rest goes through the ORM).

On PostgreSQL the anonymous progress query reads the case and its timeline in one statement, and a
submission is one read (the citizen and the idempotency key: SEEN) and one statement writing the case,
its `submit` event, its notification and the idempotent answer (SUBMIT); asyncpg prepares each once per
connection. The ORM path stays the reference and SQLite's path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tortoise import connections

from app import idempotency, sql
from app.cases import lifecycle
from app.cases.models import Case
from app.idempotency import Claim, Pending
from app.jsontext import dumps
from app.notify import sql as outbox
from auth.models import Citizen


async def next_case_sequence(prefix: str, day: dt.date) -> int:
    """The day's next sequence number for a case-number prefix: one upsert (both backends)."""
    p = sql.placeholders(2)
    rows = await connections.get("default").execute_query_dict(
        "INSERT INTO case_sequence (prefix, day, issued) "  # noqa: S608 - placeholders only
        f"VALUES ({p[0]}, {p[1]}, 1) ON CONFLICT (prefix, day) "
        "DO UPDATE SET issued = case_sequence.issued + 1 RETURNING issued",
        [prefix, day],
    )
    return int(rows[0]["issued"])


# The case by number and, only when the code's hash matches and the case is not a bundle (whose timeline
# gathers its parts': app.cases.bundles), its events in order as (action, to_status, public_text, created_at).
PROGRESS = sql.named(f"""
SELECT c.*, CASE WHEN c.query_code_hash = :hash AND c.kind <> '{lifecycle.BUNDLE}' THEN ARRAY(
    SELECT (e.action, e.to_status, e.public_text, e.created_at) FROM case_event e WHERE e.case_id = c.id ORDER BY e.id
) END AS progress_events
FROM case_record c WHERE c.case_no = :case_no
""")  # noqa: S608 - a constant


async def progress_case(case_no: str, code_hash: str) -> tuple[Case | None, list[Any] | None]:
    """PROGRESS: (the case or None, its events when read with it: see PROGRESS) on PostgreSQL."""
    async with sql.connection() as conn:
        row = await conn.fetchrow(PROGRESS.text, *PROGRESS.args({"case_no": case_no, "hash": code_hash}))
    if row is None:
        return None, None
    values = dict(row)
    events = values.pop("progress_events")
    return Case._init_from_db(**values), [tuple(e) for e in events] if events is not None else None


# What a submission reads before it writes: whether its idempotency key has a record, and the citizen.
SEEN = sql.named(f"""
SELECT {idempotency.KNOWN_SQL} AS idem_known, c.* FROM (SELECT 1) AS one LEFT JOIN citizen c ON c.id = :citizen_id
""")  # noqa: S608 - constant fragments


async def seen(*, citizen_id: Any, owner: str, key: str) -> tuple[bool, Citizen | None]:
    """SEEN: (the key has a record, the citizen or None)."""
    async with sql.connection() as conn:
        values = {"citizen_id": citizen_id, "idem_owner": owner, "idem_key": key}
        row = await conn.fetchrow(SEEN.text, *SEEN.args(values))
    values = dict(row)
    known = bool(values.pop("idem_known"))
    return known, Citizen._init_from_db(**values) if values["id"] is not None else None


_CASE_COLUMNS = (
    "id", "case_no", "matter_code", "matter_name", "guide_version", "department_code", "hall_code", "section", "kind",
    "citizen_id", "agent", "principal_kind", "principal_name_enc", "principal_id_enc", "principal_id_bidx",
    "principal_phone_enc", "form", "delivery", "status", "promised_days", "suspended_days", "query_code_hash",
    "version", "submitted_at", "updated_at",
)  # fmt: skip
# A new key (idempotency.Pending) is recorded with its answer by the statement itself (k); a key claimed before
# (idempotency.Claim, the path of a key seen before) gets its answer (m). Only one of the two applies.
_RECORD_KEY, _COMPLETE_CLAIM = idempotency.answer_sql("c", at=":submitted_at")

# A submission in one statement (its own transaction): the case (c), its first event (e), the applicant's
# notification (n, the outbox's fragment) and the key's answer (k or m). A new key is never claimed on its own:
# an instance that dies mid-request leaves no claim for the client's retry to wait out, and a retry running at
# once waits on the key's row (the unique index), then finds it answered (IntegrityError: KeyTaken, its replay).
SUBMIT = sql.named(f"""
WITH c AS (
    INSERT INTO case_record ({", ".join(_CASE_COLUMNS)})
    VALUES ({", ".join(":" + n for n in _CASE_COLUMNS)})
    RETURNING id
), e AS (
    INSERT INTO case_event (case_id, action, from_status, to_status, actor_kind, actor_id, public_text, internal_note,
        data, created_at)
    SELECT c.id, :event_action, NULL, :status, :event_actor_kind, :event_actor_id, :event_text, '', '{{}}'::jsonb,
        :event_at FROM c
), n AS (
    {outbox.pending_insert("c", at=":submitted_at")}
), k AS (
    {_RECORD_KEY}
), m AS (
    {_COMPLETE_CLAIM}
)
SELECT 1
""")  # noqa: S608 - constant fragments


async def submit(
    case: Case, event: dict[str, Any], notification: dict[str, Any], body: Any, claim: Claim | Pending | None
) -> None:
    """SUBMIT for a case built in memory, its event's values (`event_*`) and notification (notify.enqueue's)."""
    values: dict[str, Any] = {name: getattr(case, name) for name in _CASE_COLUMNS}
    values.update(form=dumps(case.form).decode(), delivery=dumps(case.delivery).decode(), status=case.status.value)
    values.update(event)
    values.update(outbox.pending_values(**notification))
    values.update(idempotency.answer_values(claim, 201, body))
    async with sql.connection() as conn:
        await conn.execute(SUBMIT.text, *SUBMIT.args(values))
