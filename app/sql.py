"""Raw SQL on PostgreSQL for the few hot paths where building queries costs more than running them.

The ORM stays the reference (and SQLite's path). The booking storm and desk check-ins spend most of
their CPU in query building (bench/, booking phase); there the same writes go to asyncpg as a
handful of fixed statements, which asyncpg prepares once per connection. Tests run both paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.exceptions import IntegrityError


def is_postgres() -> bool:
    """True when the default connection is PostgreSQL (asyncpg)."""
    return connections.get("default").capabilities.dialect == "postgres"


@asynccontextmanager
async def connection() -> AsyncIterator[Any]:
    """The asyncpg connection: the current transaction's, else one from the pool for this block.

    A constraint violation comes out as the ORM's IntegrityError, as it would from the ORM.
    """
    try:
        async with connections.get("default").acquire_connection() as conn:
            yield conn
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(exc) from exc


def placeholders(n: int) -> list[str]:
    """`n` parameter markers for the current backend: `$1, $2, …` on PostgreSQL, `?` on SQLite."""
    if is_postgres():
        return [f"${i}" for i in range(1, n + 1)]
    return ["?"] * n
