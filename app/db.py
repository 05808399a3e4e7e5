"""Tortoise ORM configuration and lifecycle; schema changes are Tortoise migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.base.client import PoolConnectionWrapper, TransactionContextPooled
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connections
from tortoise.exceptions import DBConnectionError
from tortoise.exceptions import OperationalError as TortoiseOperationalError
from tortoise.migrations.api import migrate as tortoise_migrate

from app.errors import DatabaseUnavailable
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


def tortoise_config(settings: Settings, *, bounded: bool = True) -> dict[str, Any]:
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
        # Waits end on the server before the request's own timeout (see Settings.db_lock_timeout_ms);
        # a migration (`bounded=False`) may take as long as it needs.
        connection["credentials"]["server_settings"] = (
            {}
            if not bounded
            else {
                "lock_timeout": f"{settings.db_lock_timeout_ms}ms",
                "statement_timeout": f"{settings.db_statement_timeout_ms}ms",
                "idle_in_transaction_session_timeout": f"{settings.db_idle_in_transaction_timeout_ms}ms",
            }
        )
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
    configure_waits(settings)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


# ---------------------------------------------------------------- bounded waits and lost connections

_limits = {"acquire": 10.0, "hot_row": 4, "hot_wait": 8.0, "lock": 2.0}
_gates: dict[str, asyncio.Semaphore] = {}
_stuck: dict[str, float] = {}  # row key -> until when (loop time) its waits are known to time out


def configure_waits(settings: Settings) -> None:
    """Take the bounds of this process's database waits from the settings."""
    _limits.update(
        acquire=settings.db_acquire_timeout_seconds,
        hot_row=settings.db_hot_row_concurrency,
        hot_wait=settings.db_hot_row_wait_ms / 1000,
        lock=settings.db_lock_timeout_ms / 1000,
    )
    _gates.clear()
    _stuck.clear()


async def _acquire(pool: Any) -> Any:
    """A pooled connection within the bound (asyncpg's `acquire(timeout=)`); SQLite has no pool to wait on."""
    try:
        return await pool.acquire(timeout=_limits["acquire"])
    except TypeError:  # a pool without a timeout parameter
        return await pool.acquire()


async def _transaction_enter(self: TransactionContextPooled) -> Any:
    """Tortoise's pooled `__aenter__`, but a failed BEGIN leaves no trace and a dead pool is renewed.

    Tortoise records the task's transaction before BEGIN; when BEGIN fails (a terminated backend) the
    record stayed and the connection was never released, so every later transaction of that task (a
    background job's loop) ran on the dead connection. Here the record is undone and the connection
    released before the error goes on. When the connection was dead, the pool's other idle connections
    most likely are too (the server restarted, or backends were terminated together): they are expired
    at once, and BEGIN is tried once more on a fresh connection — nothing has run yet, so that is safe —
    instead of each later attempt drawing the next dead connection.
    """
    await self.ensure_connection()
    pool = self.client._parent._pool
    for attempt in (1, 2):
        self.client._connection = await _acquire(pool)
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException as exc:
            get_connections().reset(self.token)
            dead = _connection_broken(exc)
            with contextlib.suppress(Exception):
                if dead:  # terminating returns its holder to the pool (asyncpg's _release_on_close)
                    self.client._connection.terminate()
                else:
                    await pool.release(self.client._connection)
            if not dead:
                raise
            with contextlib.suppress(Exception):
                await pool.expire_connections()
            if attempt == 2:
                raise
            log.warning("a pooled connection was dead at BEGIN (%s); the pool is renewed", type(exc).__name__)
            continue
        return self.client
    raise AssertionError("unreachable")


def _connection_broken(exc: BaseException) -> bool:
    """Whether BEGIN failed because the connection itself is unusable (closed, or its protocol state broken)."""
    import asyncpg
    from asyncpg.exceptions._base import InternalClientError

    dead = (
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError  # "terminating connection due to administrator command"
        | InternalClientError
        | DBConnectionError
        | ConnectionError
    )
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, dead):
            return True
        current = current.__cause__ or current.__context__
    return False


async def _connection_enter(self: PoolConnectionWrapper) -> Any:
    """Tortoise's pooled connection for one statement, acquired within the bound."""
    await self.ensure_connection()
    self.connection = await _acquire(self.client._pool)
    return self.connection


TransactionContextPooled.__aenter__ = _transaction_enter  # type: ignore[method-assign]
PoolConnectionWrapper.__aenter__ = _connection_enter  # type: ignore[method-assign]


def unavailable(exc: BaseException) -> bool:
    """Whether an error means the database could not be reached or did not answer in time (503, retry)."""
    import asyncpg

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.exceptions.LockNotAvailableError
            | asyncpg.exceptions.QueryCanceledError
            | asyncpg.exceptions.OperatorInterventionError
            | asyncpg.exceptions.InsufficientResourcesError
            | asyncpg.exceptions.IdleInTransactionSessionTimeoutError
            | DBConnectionError
            | ConnectionError
            | TimeoutError,
        ):
            return True
        if isinstance(current, sqlite3.OperationalError | TortoiseOperationalError) and "locked" in str(current):
            return True  # SQLite's busy writer lock outlasted its timeout
        current = current.__cause__ or current.__context__
    return False


def _lock_timed_out(exc: BaseException) -> bool:
    """Whether a wait on a row lock ran out (PostgreSQL's lock_timeout), anywhere in the error's chain."""
    import asyncpg

    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, asyncpg.exceptions.LockNotAvailableError):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextlib.asynccontextmanager
async def hot_row(key: str) -> AsyncIterator[None]:
    """At most `db_hot_row_concurrency` requests of this worker wait on one row at a time.

    A row held locked elsewhere would otherwise draw every pooled connection into waiting on it and
    starve unrelated requests: the others wait here, in memory, within `db_hot_row_wait_ms`. Once a
    wait on the row has timed out, the row counts as stuck for one lock timeout: the requests queued
    behind it answer 503 DATABASE_UNAVAILABLE at once instead of each waiting its turn to time out.
    Nothing was written for any of them.
    """
    loop = asyncio.get_running_loop()
    if _stuck.get(key, 0.0) > loop.time():
        raise DatabaseUnavailable(details={"reason": "busy"})
    gate = _gates.get(key)
    if gate is None:
        if len(_gates) >= 4096:  # forget idle gates (no holder, no waiter) rather than keep one per row ever used
            for old in [k for k, g in _gates.items() if not g.locked() and not getattr(g, "_waiters", None)]:
                del _gates[old]
                _stuck.pop(old, None)
        gate = _gates[key] = asyncio.Semaphore(_limits["hot_row"])
    try:
        await asyncio.wait_for(gate.acquire(), timeout=_limits["hot_wait"])
    except TimeoutError:
        raise DatabaseUnavailable(details={"reason": "busy"}) from None
    try:
        if _stuck.get(key, 0.0) > loop.time():
            raise DatabaseUnavailable(details={"reason": "busy"})
        yield
    except Exception as exc:
        if _lock_timed_out(exc):
            _stuck[key] = loop.time() + _limits["lock"]
        raise
    finally:
        gate.release()


async def migrate(settings: Settings, *, quiet: bool = True) -> None:
    """Apply every pending migration (the same migration files on SQLite and PostgreSQL)."""

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            (log.info if quiet else print)(f"applied migration {app_label}.{name}")

    await tortoise_migrate(config=tortoise_config(settings, bounded=False), progress=progress)
    # tortoise's migrate re-initialises the ORM with the config it was given: a process that goes on
    # (tests, a development server migrating at start) gets its bounded connections back.
    await Tortoise.close_connections()
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


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
