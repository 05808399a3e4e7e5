"""The benchmark's stores: its own PostgreSQL database (reset before the first phase, read by the checks with asyncpg)
and its Redis db (flushed with redis-py). Every SQL statement of the harness is here."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import redis

from .harness import EXIT_SERVER, BenchError, Deadline

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_DB = os.environ.get("BENCH_PG_DB", "zuiduo_bench")  # the database the run drops and recreates
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CONNECT_TIMEOUT = 5.0  # seconds to reach either store
QUERY_TIMEOUT = 60.0  # the most one read of a check may take
T = TypeVar("T")


def database_url() -> str:
    """The benchmark database's URL, as the server and the CLI get it (DATABASE_URL)."""
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"


def redis_url(db: int) -> str:
    """The URL of the benchmark's Redis db, as the server and the CLI get it (REDIS_URL)."""
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def _run(
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    deadline: Deadline,
    what: str,
    *,
    timeout: float = QUERY_TIMEOUT,
    database: str = PG_DB,
) -> T:
    """Run `work` on a connection of its own to `database` (the harness is synchronous: one event loop per call);
    a store that cannot be reached, refuses or does not answer in time stops the run."""

    async def go() -> T:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=CONNECT_TIMEOUT
        )
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(asyncio.wait_for(go(), deadline.clip(timeout)))
    except TimeoutError:
        raise deadline.timed_out(f"PostgreSQL did not answer within {timeout:.0f} s {what}", EXIT_SERVER) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BenchError(f"PostgreSQL failed on {database} {what}: {exc}", EXIT_SERVER) from None


def reset_database(deadline: Deadline) -> None:
    """Drop and recreate the benchmark's own PostgreSQL database."""

    async def work(conn: asyncpg.Connection) -> None:
        # Two statements: neither may run inside a transaction block, which one multi-statement string would be.
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {PG_DB}")

    _run(work, deadline, f"resetting database {PG_DB}", timeout=30, database="postgres")


def reset_scratch_database(name: str, deadline: Deadline, timeout: float = 30) -> None:
    """Drop and recreate a scratch database of the harness (pgbench's), next to the benchmark's own."""
    if name == PG_DB or not name.replace("_", "").isalnum():
        raise BenchError(f"refusing to reset database {name!r}", EXIT_SERVER)

    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")

    _run(work, deadline, f"resetting database {name}", timeout=timeout, database="postgres")


_ROOM = (
    "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
    "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
)


def connection_room(deadline: Deadline) -> str:
    """PostgreSQL's connection limit and what other sessions hold, for the message of a pgbench that found no room."""

    async def work(conn: asyncpg.Connection) -> str:
        limit, reserved, used = await conn.fetchrow(_ROOM)
        return f"max_connections {limit}, {reserved} reserved, {used} client sessions open"

    try:
        return _run(work, deadline, "reading its connection count", timeout=10, database="postgres")
    except BenchError as exc:
        return str(exc)


def flush_redis(db: int) -> None:
    """Empty the benchmark's Redis db."""
    client = redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    try:
        client.flushdb()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise BenchError(f"cannot reach Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}", EXIT_SERVER) from None
    except redis.exceptions.RedisError as exc:
        raise BenchError(f"Redis refused to flush db {db}: {exc}", EXIT_SERVER) from None
    finally:
        client.close()


# ---------------------------------------------------------------- the booking phase's reads


@dataclass(frozen=True)
class SlotCount:
    """A slot's seats against its bookings."""

    slot_id: str
    capacity: int
    booked: int
    bookings: int  # bookings booked or checked in


@dataclass(frozen=True)
class StormRows:
    """What the storm left in the database."""

    seats: dict[str, tuple[int, int]]  # slot id -> (capacity, booked)
    bookings: dict[str, tuple[str, str]]  # booking id -> (slot id, status)
    keys_claimed: int  # Idempotency-Keys of the storm claimed by a request that never stored an answer nor released


_SLOT_VIOLATIONS = (
    "SELECT s.id, s.capacity, s.booked, count(b.id) AS bookings FROM booking_slot s "
    "LEFT JOIN booking b ON b.slot_id = s.id AND b.status IN ('booked', 'checked_in') "
    "GROUP BY s.id, s.capacity, s.booked HAVING s.booked > s.capacity OR s.booked <> count(b.id)"
)
_KEYS_CLAIMED = "SELECT count(*) FROM idempotency_record WHERE status IS NULL AND key LIKE $1"


def slot_invariant_violations(deadline: Deadline) -> list[SlotCount]:
    """Every slot row of the database whose seats are overbooked or disagree with its bookings."""

    async def work(conn: asyncpg.Connection) -> list[SlotCount]:
        rows = await conn.fetch(_SLOT_VIOLATIONS)
        return [SlotCount(str(r["id"]), int(r["capacity"]), int(r["booked"]), int(r["bookings"])) for r in rows]

    return _run(work, deadline, "reading the slots' seats")


def storm_rows(deadline: Deadline, slots: Iterable[str], salt: str) -> StormRows:
    """The seats of the storm's slots, their bookings and the storm's Idempotency-Keys left claimed."""
    ids = list(slots)

    async def work(conn: asyncpg.Connection) -> StormRows:
        seats = await conn.fetch("SELECT id, capacity, booked FROM booking_slot WHERE id = ANY($1::text[])", ids)
        bookings = await conn.fetch("SELECT id, slot_id, status FROM booking WHERE slot_id = ANY($1::text[])", ids)
        claimed = await conn.fetchval(_KEYS_CLAIMED, f"{salt}-%")
        return StormRows(
            seats={str(r["id"]): (int(r["capacity"]), int(r["booked"])) for r in seats},
            bookings={str(r["id"]): (str(r["slot_id"]), str(r["status"])) for r in bookings},
            keys_claimed=int(claimed),
        )

    return _run(work, deadline, "reading the storm's slots and bookings")


def desk_rows(deadline: Deadline, ids: Iterable[str]) -> dict[str, tuple[str, int]]:
    """Booking id -> (status, check-in rows) of these bookings."""
    wanted = [uuid.UUID(i) for i in ids]

    async def work(conn: asyncpg.Connection) -> dict[str, tuple[str, int]]:
        rows = await conn.fetch(
            "SELECT b.id, b.status, count(c.id) AS checkins FROM booking b LEFT JOIN checkin c ON c.booking_id = b.id "
            "WHERE b.id = ANY($1::uuid[]) GROUP BY b.id, b.status",
            wanted,
        )
        return {str(r["id"]): (str(r["status"]), int(r["checkins"])) for r in rows}

    return _run(work, deadline, "reading the desk's bookings and check-ins")


# ---------------------------------------------------------------- the cases phase's reads


@dataclass(frozen=True)
class CaseRows:
    """What case_submit's runs left in the database (its cases: the bench matter, the run's salt and `case_submit`
    in the form), and the whole case_record table's case numbers."""

    total: int
    distinct: int  # distinct case numbers among them
    not_submitted: int  # cases in a status other than submitted
    case_nos: set[str]
    events: int  # their timeline events
    with_event: int  # cases with at least one event
    other_events: int  # events other than `submit`
    all_rows: int  # rows of the whole table
    all_distinct: int  # distinct case numbers of the whole table
    keys_claimed: int  # Idempotency-Keys of the run claimed by a request that never stored an answer nor released


_RUN_CASES = "c.matter_code = $1 AND c.form->>'run' = $2 AND c.form->>'bench' = 'case_submit'"


def case_rows(deadline: Deadline, matter: str, salt: str) -> CaseRows:
    """The cases case_submit created in this run (matter, salt), their events, and the whole table's case numbers."""

    async def work(conn: asyncpg.Connection) -> CaseRows:
        # One snapshot for all five reads: submissions whose clients gave up may still be committing.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await read(conn)

    async def read(conn: asyncpg.Connection) -> CaseRows:
        n = await conn.fetchrow(
            "SELECT count(*) AS total, count(DISTINCT case_no) AS distinct_nos, "
            "count(*) FILTER (WHERE status <> 'submitted') AS not_submitted "
            f"FROM case_record c WHERE {_RUN_CASES}",
            matter, salt,
        )  # fmt: skip
        nos = await conn.fetch(f"SELECT case_no FROM case_record c WHERE {_RUN_CASES}", matter, salt)
        e = await conn.fetchrow(
            "SELECT count(*) AS events, count(DISTINCT e.case_id) AS with_event, "
            "count(*) FILTER (WHERE e.action <> 'submit') AS other_events "
            f"FROM case_event e JOIN case_record c ON c.id = e.case_id WHERE {_RUN_CASES}",
            matter, salt,
        )  # fmt: skip
        a = await conn.fetchrow("SELECT count(*) AS total, count(DISTINCT case_no) AS distinct_nos FROM case_record")
        claimed = await conn.fetchval(_KEYS_CLAIMED, f"{salt}-%")
        assert n is not None and e is not None and a is not None  # aggregates always answer one row
        return CaseRows(
            total=int(n["total"]), distinct=int(n["distinct_nos"]), not_submitted=int(n["not_submitted"]),
            case_nos={str(r["case_no"]) for r in nos}, events=int(e["events"]), with_event=int(e["with_event"]),
            other_events=int(e["other_events"]), all_rows=int(a["total"]), all_distinct=int(a["distinct_nos"]),
            keys_claimed=int(claimed),
        )  # fmt: skip

    return _run(work, deadline, "reading case_submit's cases")


# ---------------------------------------------------------------- the wechat phase's reads


def wechat_scans(deadline: Deadline, slug: str) -> int:
    """The scans of the code counted in qr_scan_daily from the WeChat channel, over all days."""

    async def work(conn: asyncpg.Connection) -> int:
        scans = await conn.fetchval(
            "SELECT coalesce(sum(scans), 0) FROM qr_scan_daily WHERE slug = $1 AND channel = 'wechat'", slug
        )
        return int(scans)

    return _run(work, deadline, "reading qr_scan_daily")
