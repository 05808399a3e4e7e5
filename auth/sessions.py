"""Sign-in sessions and rotating refresh tokens with reuse detection.

A refresh token is an opaque random string; only its SHA-256 is stored. Each use rotates it: the
old one is marked used by a conditional UPDATE (so two concurrent uses cannot both win) and a new
one is issued in the same family. Presenting a used token again revokes the whole family.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from app import clock
from auth.errors import RefreshReused, TokenExpired, TokenInvalid, TokenRevoked
from auth.models import AuthSession, RefreshToken


@dataclass(frozen=True)
class Rotation:
    """A fresh refresh token and the session it belongs to."""

    refresh_token: str
    session: AuthSession


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(*, subject: str, audience: str, refresh_days: int) -> Rotation:
    """Start a session with its first refresh token."""
    async with in_transaction():
        session = await AuthSession.create(id=uuid.uuid4(), subject=subject, audience=audience)
        token = await _new_refresh(session, refresh_days)
    return Rotation(token, session)


async def _new_refresh(session: AuthSession, refresh_days: int) -> str:
    token = "rt_" + secrets.token_urlsafe(32)
    now = clock.now()
    await RefreshToken.create(
        session=session, token_hash=_hash(token), issued_at=now, expires_at=now + dt.timedelta(days=refresh_days)
    )
    return token


async def rotate(*, refresh_token: str, refresh_days: int) -> tuple[Rotation, bool]:
    """Use a refresh token once: (new rotation, reused?) — on reuse the family is revoked and we raise."""
    if not refresh_token or len(refresh_token) > 200:
        raise TokenInvalid(details={"reason": "refresh"})
    row = await RefreshToken.get_or_none(token_hash=_hash(refresh_token)).prefetch_related("session")
    if row is None:
        raise TokenInvalid(details={"reason": "refresh"})
    session: AuthSession = row.session
    now = clock.now()
    if session.revoked_at is not None:
        raise TokenRevoked()
    if row.used_at is not None:
        await revoke_session(session.id, reason="refresh_reuse")
        raise RefreshReused()
    if row.expires_at <= now:
        raise TokenExpired(details={"reason": "refresh"})
    async with in_transaction():
        won = await RefreshToken.filter(id=row.id, used_at__isnull=True).update(used_at=now)
        if not won:
            # Someone used it an instant before us: that is a reuse too.
            await AuthSession.filter(id=session.id, revoked_at__isnull=True).update(
                revoked_at=now, revoked_reason="refresh_reuse"
            )
        else:
            token = await _new_refresh(session, refresh_days)
    if not won:
        raise RefreshReused()
    return Rotation(token, session), False


async def revoke_session(session_id: uuid.UUID | str, *, reason: str) -> bool:
    """Revoke one session (logout, reuse)."""
    return bool(
        await AuthSession.filter(id=session_id, revoked_at__isnull=True).update(
            revoked_at=clock.now(), revoked_reason=reason
        )
    )


async def revoke_subject(subject: str, *, reason: str) -> int:
    """Revoke every session of an account (disabled, merged, password changed)."""
    return await AuthSession.filter(subject=subject, revoked_at__isnull=True).update(
        revoked_at=clock.now(), revoked_reason=reason
    )


async def session_count(subject: str) -> int:
    """Open sessions of a subject (tests and admin)."""
    return await AuthSession.filter(subject=subject, revoked_at__isnull=True).count()
