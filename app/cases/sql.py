"""The case domain's hand-written SQL (the rest goes through the ORM).

On PostgreSQL the anonymous progress query reads the case and its timeline in one statement
(asyncpg prepares it once per connection); the ORM path stays the reference and SQLite's path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tortoise import connections

from app import sql
from app.cases import lifecycle
from app.cases.models import Case


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
