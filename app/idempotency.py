"""Idempotency keys for writes a client may retry (the IETF Idempotency-Key header).

A first request claims its key (a row committed on its own); the service stores the answer in
the same transaction as its change, so a retry replays it. The same key with another body is 422,
a request still in flight is 409; a failed request releases its key so the client may retry.
Where a precheck has seen that the key is new, the write may instead record key and answer in its
own transaction (`Pending`): no claim to commit first, nothing to release when it fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from app import clock, sql
from app.errors import Conflict, DomainError, InvalidInput
from app.jsontext import dumps

KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
IN_FLIGHT_SECONDS = 60  # a claim older than this was abandoned by a crashed worker and may be taken over
KEEP_HOURS = 24


class IdempotencyKeyRequired(DomainError):
    code, message, status = "IDEMPOTENCY_KEY_REQUIRED", "此操作需要 Idempotency-Key 请求头", 400


class IdempotencyKeyInvalid(DomainError):
    code, message, status = "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key 应为 1–128 个可见 ASCII 字符", 400


class IdempotencyKeyReused(InvalidInput):
    code, message = "IDEMPOTENCY_KEY_REUSED", "该 Idempotency-Key 已用于内容不同的请求"


class IdempotencyInFlight(Conflict):
    code, message = "IDEMPOTENCY_IN_FLIGHT", "相同的请求正在处理中，请稍后重试"


class IdempotencyRecord(Model):
    """One claimed key: who, what request (fingerprint), and the answer once there is one."""

    id = fields.IntField(primary_key=True)
    owner = fields.CharField(max_length=80)
    key = fields.CharField(max_length=128)
    fingerprint = fields.CharField(max_length=64)
    status = fields.IntField(null=True)
    response = fields.TextField(null=True)  # the answer's JSON text, so a replay is byte-identical
    claimed_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_record"
        unique_together = (("owner", "key"),)


ERRORS = [IdempotencyKeyRequired, IdempotencyKeyInvalid, IdempotencyKeyReused, IdempotencyInFlight]  # for the docs


def fingerprint(operation: str, body: Any) -> str:
    """A digest of the operation and its canonical JSON body."""
    return hashlib.sha256(operation.encode() + b"\n" + dumps(body, sort_keys=True)).hexdigest()


@dataclass
class Replay:
    """A stored answer to send again (its JSON text)."""

    status: int
    body: str


class Claim:
    """A claimed key; the service calls `complete` inside its own transaction."""

    def __init__(self, record_id: int) -> None:
        self.record_id = record_id

    async def complete(self, status: int, body: Any) -> None:
        """Store the answer (call inside the transaction that makes the change)."""
        await IdempotencyRecord.filter(id=self.record_id).update(status=status, response=dumps(body).decode())

    async def release(self) -> None:
        """Forget the claim (the request failed and changed nothing)."""
        if sql.is_postgres():  # a failed write's every claim comes through here (see app/sql.py)
            async with sql.connection() as conn:
                await conn.execute("DELETE FROM idempotency_record WHERE id = $1 AND status IS NULL", self.record_id)
            return
        await IdempotencyRecord.filter(id=self.record_id, status__isnull=True).delete()


class KeyTaken(Exception):
    """A concurrent request recorded a pending key first: answer through `claim` (replay, 409 or 422)."""


@dataclass(frozen=True)
class Pending:
    """A key with no record yet: the write stores it with its answer, in its own transaction.

    No claim is committed first, so a failed write leaves nothing to release. `seen` carries what
    the precheck read on the way (the service's own data), saving the write a round trip.
    """

    owner: str
    key: str
    digest: str
    seen: Any = None

    async def complete(self, status: int, body: Any) -> None:
        """Record the key with its answer (inside the write's transaction); KeyTaken when it is no longer new."""
        try:
            await IdempotencyRecord.create(
                owner=self.owner, key=self.key, fingerprint=self.digest, status=status,
                response=dumps(body).decode(), claimed_at=clock.now(),
            )  # fmt: skip
        except IntegrityError:
            raise KeyTaken() from None


@dataclass(frozen=True)
class Precheck:
    """What a precheck learnt: whether the key has a record, and what else it read for the write."""

    known: bool
    seen: Any = None


# -- SQL fragments for writes that record their answer in their own statement (PostgreSQL) ---------------
# Named parameters (app/sql.py `named`), all prefixed `idem_`; their values come from `answer_values`.

KNOWN_SQL = "EXISTS (SELECT 1 FROM idempotency_record WHERE owner = :idem_owner AND key = :idem_key)"
"""Whether the key has a record (a boolean expression)."""


_KNOWN = sql.named(f"SELECT {KNOWN_SQL}")


def answer_sql(source: str, *, at: str) -> tuple[str, str]:
    """Two statements storing the answer when CTE `source` has a row: a new key's record, a claimed key's answer.

    Only one applies: the first for a `Pending` key (`:idem_owner` set), the second for a `Claim`
    (`:idem_record_id` set). `at` is the SQL expression of the time the key is recorded.
    """
    record = f"""INSERT INTO idempotency_record (owner, key, fingerprint, status, response, claimed_at)
    SELECT :idem_owner::varchar, :idem_key::varchar, :idem_digest::varchar, :idem_status::int, :idem_response, {at}
    FROM {source} WHERE :idem_owner::varchar IS NOT NULL"""  # noqa: S608 - constant names only
    complete = f"""UPDATE idempotency_record SET status = :idem_status::int, response = :idem_response
    WHERE id = :idem_record_id AND EXISTS (SELECT 1 FROM {source})"""  # noqa: S608 - constant names only
    return record, complete


def answer_values(claim: Claim | Pending | None, status: int, body: Any) -> dict[str, Any]:
    """`answer_sql`'s values: the key (a `Pending`) or the claimed record (a `Claim`), and the answer."""
    pending = claim if isinstance(claim, Pending) else None
    return {
        "idem_owner": pending.owner if pending else None,
        "idem_key": pending.key if pending else None,
        "idem_digest": pending.digest if pending else None,
        "idem_status": status,
        "idem_response": dumps(body).decode(),
        "idem_record_id": claim.record_id if isinstance(claim, Claim) else None,
    }


def check_key(raw: str | None) -> str:
    """The header's key, or 400 when missing or malformed."""
    if raw is None or raw == "":
        raise IdempotencyKeyRequired()
    if not KEY_RE.fullmatch(raw):
        raise IdempotencyKeyInvalid()
    return raw


async def known(*, owner: str, key: str) -> bool:
    """Whether a key has a record (claimed, answered, or not yet swept)."""
    if sql.is_postgres():
        async with sql.connection() as conn:
            return bool(await conn.fetchval(_KNOWN.text, *_KNOWN.args({"idem_owner": owner, "idem_key": key})))
    return await IdempotencyRecord.exists(owner=owner, key=key)


async def _insert(owner: str, key: str, digest: str, now: dt.datetime) -> int | None:
    """A new record's id, or None when the key already has one."""
    if sql.is_postgres():  # one statement that cannot fail on the key (no error for the database to log)
        async with sql.connection() as conn:
            return await conn.fetchval(
                "INSERT INTO idempotency_record (owner, key, fingerprint, claimed_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (owner, key) DO NOTHING RETURNING id",
                owner, key, digest, now,
            )  # fmt: skip
    try:
        return (await IdempotencyRecord.create(owner=owner, key=key, fingerprint=digest, claimed_at=now)).id
    except IntegrityError:
        return None


async def claim(*, owner: str, key: str, digest: str) -> Claim | Replay:
    """Claim a key for this request, or the stored answer of the earlier identical one."""
    now = clock.now()
    for _ in range(3):
        record_id = await _insert(owner, key, digest, now)
        if record_id is not None:
            return Claim(record_id)
        row = await IdempotencyRecord.get_or_none(owner=owner, key=key)
        if row is None:  # released between our insert and this read: try again
            continue
        if row.claimed_at < now - dt.timedelta(hours=KEEP_HOURS):
            await IdempotencyRecord.filter(id=row.id, claimed_at=row.claimed_at).delete()
            continue
        if row.fingerprint != digest:
            raise IdempotencyKeyReused()
        if row.status is not None:
            return Replay(row.status, row.response)
        if row.claimed_at > now - dt.timedelta(seconds=IN_FLIGHT_SECONDS):
            raise IdempotencyInFlight(headers={"Retry-After": "1"})
        # Abandoned by a worker that died mid-request: take it over (one taker wins the update).
        if await IdempotencyRecord.filter(id=row.id, claimed_at=row.claimed_at, status__isnull=True).update(
            claimed_at=now
        ):
            return Claim(row.id)
    raise IdempotencyInFlight(headers={"Retry-After": "1"})


async def sweep() -> int:
    """Forget keys older than a day."""
    return await IdempotencyRecord.filter(claimed_at__lt=clock.now() - dt.timedelta(hours=KEEP_HOURS)).delete()
