"""Signing keys, access tokens (EdDSA JWTs) and their per-worker verified cache.

Access tokens are JWTs signed with the active Ed25519 key; the algorithm is pinned by our settings,
never taken from the token. Refresh tokens are opaque random strings (see sessions.py), so one can
never pass as an access token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tortoise.transactions import in_transaction

from app import clock
from app.cache import LocalCache
from app.settings import Settings
from auth.errors import TokenExpired, TokenInvalid, TokenRevoked
from auth.models import AuthSession, Citizen, SigningKey, Staff
from auth.pii import PiiCipher

log = logging.getLogger("auth.tokens")

ALGORITHM = "EdDSA"
ACCESS_TYP = "access"
CITIZEN_AUDIENCES = frozenset({"miniprogram", "h5", "app"})
STAFF_AUDIENCE = "staff"
ALL_AUDIENCES = CITIZEN_AUDIENCES | {STAFF_AUDIENCE}
CACHE_NAMESPACE = "tokens"
KEYS_NAMESPACE = "signing-keys"
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
_NO_CODE = "-"  # matches no department or hall code: an empty scope as a filter


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def canonical_jws(token: str) -> bool:
    """Three base64url segments in their one canonical form: no padding, the last character's unused bits zero.

    PyJWT reads `sig==` or another last character as the same bytes; we accept exactly the text we issued.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return False
    for part in parts:
        if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
            return False
        if _b64(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) != part:
            return False
    return True


def cache_key(token: str) -> bytes:
    """The verified-token cache's key: a 128-bit digest of the token, not its ~500 characters."""
    return hashlib.blake2b(token.encode(), digest_size=16).digest()


def public_jwk(kid: str, public: Ed25519PublicKey) -> dict[str, str]:
    """The public JWK of an Ed25519 key (public fields only)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid, "use": "sig", "alg": ALGORITHM}


# Slotted and without the decoded claims: each worker caches up to TOKEN_CACHE_SIZE of these (bench/README.md).
@dataclass(slots=True)
class Principal:
    """Who is calling: a citizen or a staff member, as the verified token says."""

    kind: str  # "citizen" | "staff"
    id: str
    audience: str
    session_id: str
    loa: int = 0
    role: str | None = None
    hall: str | None = None
    departments: tuple[str, ...] = ()
    expires_at: int = 0
    issued_at: int = 0
    name: str = ""  # a staff member's display name (the `name` claim): what the audit log records

    @property
    def subject(self) -> str:
        """The `sub` claim."""
        return f"{self.kind}:{self.id}"

    # The staff-scope rule, in its two forms: `covers` for one record, `scope_filter` for a query.
    # Admins see all, reviewers their departments, clerks their hall; nothing else is in scope.

    def covers(self, *, department: str | None, hall: str | None) -> bool:
        """Whether a staff member's scope holds this: admins all, reviewers their departments, clerks their hall."""
        if self.role == "admin":
            return True
        if self.role == "reviewer":
            return department is not None and department in self.departments
        return self.role == "clerk" and hall is not None and hall == self.hall

    def scope_filter(
        self, *, department: str | None = "department_code", hall: str | None = "hall_code"
    ) -> dict[str, Any]:
        """`covers` as ORM filter arguments over the named fields (None: the records have no such field)."""
        if self.role == "admin":
            return {}
        if self.role == "reviewer" and department:
            return {f"{department}__in": sorted(self.departments) or [_NO_CODE]}
        if self.role == "clerk" and hall:
            return {hall: self.hall or _NO_CODE}
        return {f"{department or hall}__in": [_NO_CODE]}


class TokenAuthority:
    """Issues and verifies access tokens with the key ring; caches verified tokens per worker."""

    def __init__(self, settings: Settings, cipher: PiiCipher, cache: LocalCache) -> None:
        self.settings = settings
        self.cipher = cipher
        self.cache = cache
        if settings.token_cache_size:
            cache.limit(CACHE_NAMESPACE, settings.token_cache_size)
        self._signer: tuple[str, Ed25519PrivateKey] | None = None
        self._public: dict[str, Ed25519PublicKey] = {}
        self._last_reload = 0.0

    async def create_key(self, *, activate: bool) -> str:
        """Generate a key; when `activate`, it becomes the only signer (older keys keep verifying)."""
        private = Ed25519PrivateKey.generate()
        kid = clock.now().strftime("%Y%m%d") + "-" + secrets.token_hex(4)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        async with in_transaction():
            if activate:
                await SigningKey.filter(active=True).update(active=False)
            await SigningKey.create(
                kid=kid,
                private_enc=self.cipher.encrypt(pem, aad=f"signing-key:{kid}"),
                public_jwk=public_jwk(kid, private.public_key()),
                active=activate,
            )
        await self._keys_changed()
        return kid

    async def ensure_key(self) -> None:
        """Create the first signing key when there is none."""
        if not await SigningKey.filter(retired_at__isnull=True, active=True).exists():
            await self.create_key(activate=True)

    async def retire_key(self, kid: str) -> bool:
        """Stop verifying with a key (it can no longer be the active one)."""
        retired = bool(
            await SigningKey.filter(kid=kid, active=False, retired_at__isnull=True).update(retired_at=clock.now())
        )
        if retired:
            await self._keys_changed()
        return retired

    async def _keys_changed(self) -> None:
        """Every worker reloads its key ring and re-verifies cached tokens."""
        await self.cache.invalidate(KEYS_NAMESPACE)
        await self.cache.invalidate(CACHE_NAMESPACE)

    async def _keys(self) -> None:
        if self._signer is not None and self.cache.get(KEYS_NAMESPACE, "loaded"):
            return
        rows = await SigningKey.filter(retired_at__isnull=True)
        self._public = {}
        self._signer = None
        for row in rows:
            jwk = jwt.PyJWK(row.public_jwk)
            self._public[row.kid] = jwk.key  # type: ignore[assignment]
            if row.active:
                pem = self.cipher.decrypt(row.private_enc, aad=f"signing-key:{row.kid}")
                key = serialization.load_pem_private_key(pem.encode(), password=None)
                assert isinstance(key, Ed25519PrivateKey)
                self._signer = (row.kid, key)
        if self._signer is None:
            await self.ensure_key()
            return await self._keys()
        self.cache.put(KEYS_NAMESPACE, "loaded", True)

    async def jwks(self) -> dict[str, Any]:
        """The public key set (every key that still verifies)."""
        await self._keys()
        rows = await SigningKey.filter(retired_at__isnull=True).order_by("-created_at")
        return {"keys": [dict(row.public_jwk) for row in rows]}

    async def issue(self, *, subject: str, audience: str, session_id: str, extra: dict[str, Any]) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        await self._keys()
        assert self._signer is not None
        kid, key = self._signer
        now = int(clock.now().timestamp())
        ttl = self.settings.access_token_seconds
        claims = {
            "iss": self.settings.jwt_issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "sid": session_id,
            "typ": ACCESS_TYP,
            **extra,
        }
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "at+jwt"})
        return token, ttl

    async def verify(self, token: str, *, audiences: frozenset[str]) -> Principal:
        """Verify signature, claims and revocation; cached per exact token until revoked or expired."""
        if not isinstance(token, str) or not token:
            raise TokenInvalid(details={"reason": "malformed"})
        if self.settings.token_cache_size == 0:  # cache disabled (benchmarks of the uncached cost)
            return await self._verify_uncached(token, audiences=audiences)
        key = cache_key(token)
        hit = self.cache.get(CACHE_NAMESPACE, key)
        if hit is not None and hit.expires_at > clock.timestamp():  # no datetime made per request
            if hit.audience not in audiences:
                raise TokenInvalid(details={"reason": "audience"})
            return hit
        epoch = self.cache.epoch(CACHE_NAMESPACE)
        principal = await self._verify_uncached(token, audiences=audiences)
        self.cache.put(CACHE_NAMESPACE, key, principal, epoch=epoch)
        return principal

    async def _verify_uncached(self, token: str, *, audiences: frozenset[str]) -> Principal:
        if len(token) > 4096 or not canonical_jws(token):
            raise TokenInvalid(details={"reason": "malformed"})
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid(details={"reason": "malformed"}) from None
        if header.get("alg") != ALGORITHM or _FORBIDDEN_HEADERS & set(header):
            raise TokenInvalid(details={"reason": "header"})
        await self._keys()
        key = self._public.get(str(header.get("kid")))
        if key is None:
            # A key created by another worker since we loaded ours: reload, at most every few
            # seconds, so tokens with made-up kids cannot make us reload on every request.
            now = time.monotonic()
            if now - self._last_reload > 5:
                self._last_reload = now
                self.cache.clear(KEYS_NAMESPACE)
                await self._keys()
                key = self._public.get(str(header.get("kid")))
            if key is None:
                raise TokenInvalid(details={"reason": "kid"})
        try:
            claims = self._decode_at(token, key, audiences)
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(details={"reason": type(exc).__name__}) from None
        if claims.get("typ") != ACCESS_TYP:
            raise TokenInvalid(details={"reason": "typ"})
        kind, _, ident = str(claims["sub"]).partition(":")
        if kind not in {"citizen", "staff"} or not ident:
            raise TokenInvalid(details={"reason": "sub"})
        await self._check_revocation(kind, ident, str(claims["sid"]), str(claims["aud"]))
        return Principal(
            kind=kind,
            id=ident,
            audience=str(claims["aud"]),
            session_id=str(claims["sid"]),
            loa=int(claims.get("loa", 0)),
            role=claims.get("role"),
            hall=claims.get("hall"),
            departments=tuple(claims.get("departments") or ()),
            expires_at=int(claims["exp"]),
            issued_at=int(claims["iat"]),
            name=str(claims.get("name") or ""),
        )

    def _decode_at(self, token: str, key: Ed25519PublicKey, audiences: frozenset[str]) -> dict[str, Any]:
        """Decode with time checks against our (possibly moved) clock."""
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=list(audiences),
            issuer=self.settings.jwt_issuer,
            options={
                "require": ["exp", "iat", "nbf", "sub", "aud", "iss", "jti", "sid"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        for name in ("exp", "nbf", "iat"):
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise jwt.InvalidTokenError(f"{name} must be a number")
        now = clock.now().timestamp()
        if now >= claims["exp"]:
            raise jwt.ExpiredSignatureError("expired")
        if now < claims["nbf"]:
            raise jwt.ImmatureSignatureError("not yet valid")
        return claims

    async def _check_revocation(self, kind: str, ident: str, sid: str, audience: str) -> None:
        try:
            session_uuid = uuid.UUID(sid)
            subject_uuid = uuid.UUID(ident)
        except ValueError:
            raise TokenInvalid(details={"reason": "sid"}) from None
        session = await AuthSession.get_or_none(id=session_uuid)
        if session is None or session.revoked_at is not None or session.subject != f"{kind}:{ident}":
            raise TokenRevoked()
        if session.audience != audience:  # a token is only good for the client its session was opened on
            raise TokenInvalid(details={"reason": "audience"})
        model = Citizen if kind == "citizen" else Staff
        account = await model.get_or_none(id=subject_uuid).only("id", "disabled")
        if account is None or account.disabled:
            raise TokenRevoked()

    async def sign(self, build: Callable[[str], bytes]) -> tuple[bytes, bytes]:
        """Build bytes that name the active key id, and sign them with that key (personal codes)."""
        await self._keys()
        assert self._signer is not None
        kid, key = self._signer
        data = build(kid)
        return data, key.sign(data)

    async def signed(self, kid: str, data: bytes, signature: bytes) -> bool | None:
        """Whether `signature` is our signature of `data` with key `kid`; None when that key verifies nothing.

        With the active key we sign again and compare rather than verify: Ed25519 signing is
        deterministic (RFC 8032) and only the key's holder can make a valid signature, so the two
        answers agree, and signing costs a third of verifying (the desk checks a ticket per scan).
        """
        await self._keys()
        if self._signer is not None and self._signer[0] == kid:
            return hmac.compare_digest(self._signer[1].sign(data), signature)
        key = await self.public_key(kid)
        if key is None:
            return None
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key that verifies this kid, if it still verifies anything."""
        await self._keys()
        key = self._public.get(kid)
        if key is None:
            now = time.monotonic()
            if now - self._last_reload > 5:  # a key another worker just created
                self._last_reload = now
                self.cache.clear(KEYS_NAMESPACE)
                await self._keys()
                key = self._public.get(kid)
        return key

    async def revoked(self) -> None:
        """A session or account was revoked: every worker drops its verified tokens."""
        await self.cache.invalidate(CACHE_NAMESPACE)


def utc_from_ts(ts: int) -> dt.datetime:
    """A UTC datetime from a unix timestamp."""
    return dt.datetime.fromtimestamp(ts, dt.UTC)
