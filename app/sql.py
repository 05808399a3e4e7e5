"""Raw SQL on PostgreSQL for the few hot paths where building queries costs more than running them.

The ORM stays the reference (and SQLite's path). The booking storm and desk check-ins spend most of
their CPU in query building (bench/, booking phase); there the same writes go to asyncpg as a
handful of fixed statements, which asyncpg prepares once per connection. Tests run both paths.

Statements are written with named parameters (`:slot_id`) and numbered once, at import, by `named`;
a statement that runs on both backends gets its markers from `placeholders`, the one place where
PostgreSQL's `$1` and SQLite's `?` differ.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


# `:name`, but not the second colon of a `::type` cast nor a colon inside a word.
_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    """A PostgreSQL statement written with named parameters, numbered `$1…$n` once (`args` orders the values)."""

    text: str
    names: tuple[str, ...]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The values in the statement's parameter order (a KeyError names a value not given)."""
        return [values[name] for name in self.names]


def named(template: str) -> Statement:
    """Number a statement's `:name` parameters in order of first use (one number per name)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_NAME.sub(number, template), tuple(names))
