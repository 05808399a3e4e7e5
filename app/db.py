"""Tortoise ORM configuration and lifecycle; schema changes are Tortoise migrations."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from app.settings import Settings

log = logging.getLogger("app.db")

# pg_advisory_lock key of `migrate` (any constant; ours spells "zdmigrat"): one run at a time per database.
MIGRATION_LOCK_KEY = 0x7A646D6967726174

MODEL_MODULES = [
    "app.matters.models",
    "app.jobs",
    "auth.models",
    "qr.models",
    "app.booking.models",
    "app.notify.models",
    "app.cases.models",
    "app.feedback.models",
    "app.idempotency",
    "app.audit.models",
]


async def _keep_session(connection: Any) -> None:
    """asyncpg pool `reset` hook: nothing to undo (see tortoise_config)."""


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """The Tortoise config dict for these settings (one app, one connection)."""
    url = settings.database_url
    if settings.db_backend == "sqlite":
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection: Any = {
            "engine": "tortoise.backends.sqlite",
            # WAL lets readers go on while a writer commits; a busy timeout queues writers.
            "credentials": {"file_path": path, "journal_mode": "WAL", "journal_size_limit": 16384},
        }
    else:
        # asyncpg's pool defaults to 5 connections a worker: too few when writes wait on row locks.
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("maxsize", str(settings.db_pool_size))
        # libpq's `?host=/var/run/postgresql`: a Unix socket directory (Tortoise's URL parser has no such form).
        socket_dir = query.pop("host", None)
        connection = expand_db_url(urlunsplit(parts._replace(query=urlencode(query))))
        if socket_dir:
            connection["credentials"]["host"] = socket_dir
        # We keep no session state (no LISTEN, advisory locks, cursors or SET), so a connection going
        # back to the pool needs no reset query: one round trip less per statement outside a
        # transaction. asyncpg still rolls back a transaction left open.
        connection["credentials"]["reset"] = _keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "app.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings) -> None:
    """Open the ORM (lazily connecting) for this process."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def migrate(settings: Settings, *, quiet: bool = True) -> None:
    """Apply every pending migration (the same migration files on SQLite and PostgreSQL)."""

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            (log.info if quiet else print)(f"applied migration {app_label}.{name}")

    await tortoise_migrate(config=tortoise_config(settings), progress=progress)


@asynccontextmanager
async def migration_lock(settings: Settings, *, quiet: bool = True) -> AsyncIterator[None]:
    """Hold the database's migration lock: concurrent `migrate` runs (replicas, a one-shot job) apply one at a time.

    PostgreSQL: a session advisory lock on a connection of its own (closing it releases the lock, even when the
    process dies). SQLite: an exclusive file lock beside the database file.
    """
    say = log.info if quiet else print
    if settings.db_backend == "postgres":
        import asyncpg

        credentials = tortoise_config(settings)["connections"]["default"]["credentials"]
        connection = await asyncpg.connect(
            **{k: credentials.get(k) for k in ("host", "port", "user", "password", "database")},
            ssl=credentials.get("ssl"),
            server_settings={"application_name": "zuiduo migrate"},
        )
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
                say("another migration run holds the lock: waiting for it to finish")
                await connection.execute("SET lock_timeout = 0; SET statement_timeout = 0")
                await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            yield
        finally:
            await connection.close()
        return
    path = settings.database_url[len("sqlite://") :]
    if not path or path == ":memory:":
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(f"{path}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another migration run holds the lock: waiting for it to finish")
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


async def close_db() -> None:
    """Close every connection of this process."""
    await Tortoise.close_connections()


async def ping() -> None:
    """Run one trivial query; raises when the database is unreachable."""
    from tortoise import connections

    await connections.get("default").execute_query("SELECT 1")


def __getattr__(name: str) -> Any:
    """`app.db.TORTOISE_ORM` for Tortoise's own CLI (makemigrations), built from the environment."""
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings.from_env())
    raise AttributeError(name)
