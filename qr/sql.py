"""The codes' hand-written SQL: scan counters added in one statement (the same SQL on SQLite >= 3.24 and
PostgreSQL, with the one placeholder helper of app.sql)."""

from __future__ import annotations

from typing import Any

from tortoise import connections

from app.sql import placeholders


async def add_scans(table: str, keys: tuple[str, ...], values: tuple[Any, ...], count: int) -> None:
    """INSERT ... ON CONFLICT DO UPDATE scans = scans + n (same SQL on SQLite >= 3.24 and PostgreSQL)."""
    cols = (*keys, "scans")
    marks = placeholders(len(cols))
    # Table and column names are our constants, never input; values are bound parameters.
    insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(marks)}) "  # noqa: S608
    sql = insert + f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET scans = {table}.scans + excluded.scans"
    await connections.get("default").execute_query(sql, [*values, count])


async def insert_ignore(table: str, cols: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (a row another worker wrote first is left as it is)."""
    marks = placeholders(len(cols))
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(marks)}) ON CONFLICT DO NOTHING"  # noqa: S608
    await connections.get("default").execute_query(sql, list(values))
