"""The case domain's hand-written SQL (the rest goes through the ORM)."""

from __future__ import annotations

import datetime as dt

from tortoise import connections

from app import sql


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
