"""Booking tickets: a compact Ed25519-signed token a desk can verify offline with the published JWKS.

Layout (then RFC 4648 base32 without padding, behind the prefix `ZT1`, so the whole ticket is
upper-case letters and digits and a QR code stores it in the dense alphanumeric mode):

    format (1) | booking id (16) | version (2) | slot start, unix minutes (4) | slot length, minutes (2)
    | hall code length (1) + hall code | key id length (1) + key id | Ed25519 signature (64)

The signature covers `zd-ticket-v1\\0` + everything before it; the key is one of the service's
signing keys (`/.well-known/jwks.json`, `kid` as in the JWKS).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import struct
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PREFIX = "ZT1"
FORMAT = 1
CONTEXT = b"zd-ticket-v1\x00"
MAX_LENGTH = 400  # a real ticket is about 190 characters
_HEAD = struct.Struct(">B16sHIH")
_ALPHABET = re.compile(r"[A-Z2-7]*", re.ASCII)  # no padding: one text per ticket


_B32_AS_INT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv")


def _b32decode(data: str) -> bytes:
    """RFC 4648 base32 in its one canonical form: no padding, the unused bits of the last character zero.

    Fast (in C: a desk decodes a ticket per scan): the 32 letters map onto the digits of `int(..., 32)`. A signed
    value has exactly one accepted text; padded text or another last character for the same bytes is refused.
    """
    if "=" in data:
        raise binascii.Error("Padding is not part of a ticket")
    size, extra = divmod(5 * len(data), 8)
    if extra >= 5:  # 1, 3 or 6 characters past a multiple of 8: no byte ends there
        raise binascii.Error("Incorrect padding")
    if not data:
        return b""
    value = int(data.translate(_B32_AS_INT), 32)
    if value & ((1 << extra) - 1):
        raise binascii.Error("Non-canonical base32: unused bits set")
    return (value >> extra).to_bytes(size, "big")


class TicketInvalid(Exception):
    """The text is not a ticket we signed (reason says why, for the scan log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TicketClaims:
    """What a verified ticket says."""

    booking_id: uuid.UUID
    version: int
    hall: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    kid: str


def _short(text: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > 255:
        raise ValueError("field too long")
    return bytes([len(raw)]) + raw


def payload(
    *, booking_id: uuid.UUID, version: int, hall: str, starts_at: dt.datetime, ends_at: dt.datetime, kid: str
) -> bytes:
    """The signed part of a ticket."""
    start = int(starts_at.timestamp()) // 60
    length = int((ends_at - starts_at).total_seconds()) // 60
    return _HEAD.pack(FORMAT, booking_id.bytes, version, start, length) + _short(hall) + _short(kid)


def digest(body: bytes, signature: bytes) -> str:
    """SHA-256 of a ticket's bytes (what `decode` returns), recorded when it is issued."""
    return hashlib.sha256(body + signature).hexdigest()


def encode(body: bytes, signature: bytes) -> str:
    """The ticket text."""
    return PREFIX + base64.b32encode(body + signature).decode().rstrip("=")


async def issue(
    *,
    sign: Callable[[Callable[[str], bytes]], Awaitable[tuple[bytes, bytes]]],
    booking_id: uuid.UUID,
    version: int,
    hall: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> str:
    """A signed ticket; `sign` builds the bytes with the active key id and signs them."""

    def build(kid: str) -> bytes:
        return CONTEXT + payload(
            booking_id=booking_id, version=version, hall=hall, starts_at=starts_at, ends_at=ends_at, kid=kid
        )

    data, signature = await sign(build)
    return encode(data[len(CONTEXT) :], signature)


def decode(text: Any) -> tuple[TicketClaims, bytes, bytes]:
    """Parse a ticket without checking its signature: (claims, signed bytes, signature)."""
    # Case-insensitive: a keyboard-wedge scanner with Caps Lock on types the ticket in lower case.
    if not isinstance(text, str) or len(text) > MAX_LENGTH or text[: len(PREFIX)].upper() != PREFIX:
        raise TicketInvalid("format")
    data = text[len(PREFIX) :].strip()
    # ASCII first: str.upper() maps some non-ASCII letters ('ı', 'ſ') into A-Z.
    if not data.isascii():
        raise TicketInvalid("encoding")
    data = data.upper()
    if not _ALPHABET.fullmatch(data):
        raise TicketInvalid("encoding")
    try:
        raw = _b32decode(data)
    except (binascii.Error, ValueError):
        raise TicketInvalid("encoding") from None
    if len(raw) < _HEAD.size + 2 + 64:
        raise TicketInvalid("length")
    body, signature = raw[:-64], raw[-64:]
    fmt, booking, version, start, length = _HEAD.unpack_from(body)
    if fmt != FORMAT:
        raise TicketInvalid("format")
    pos = _HEAD.size
    fields: list[str] = []
    for _ in range(2):
        if pos >= len(body):
            raise TicketInvalid("length")
        size = body[pos]
        chunk = body[pos + 1 : pos + 1 + size]
        if len(chunk) != size:
            raise TicketInvalid("length")
        try:
            fields.append(chunk.decode("ascii"))
        except UnicodeDecodeError:
            raise TicketInvalid("encoding") from None
        pos += 1 + size
    if pos != len(body):
        raise TicketInvalid("length")
    try:
        starts_at = dt.datetime.fromtimestamp(start * 60, dt.UTC)
        ends_at = starts_at + dt.timedelta(minutes=length)
    except (ValueError, OverflowError):
        raise TicketInvalid("time") from None
    claims = TicketClaims(
        booking_id=uuid.UUID(bytes=booking),
        version=version,
        hall=fields[0],
        starts_at=starts_at,
        ends_at=ends_at,
        kid=fields[1],
    )
    return claims, body, signature


def check_signature(valid: bool | None) -> None:
    """Raise TicketInvalid unless the signature was found valid (None: its key id is unknown)."""
    if valid is None:
        raise TicketInvalid("kid")
    if not valid:
        raise TicketInvalid("signature")


def verify_with(key: Ed25519PublicKey | None, body: bytes, signature: bytes) -> bool | None:
    """Verify a ticket's signature with a public key (None when there is no key)."""
    if key is None:
        return None
    try:
        key.verify(signature, CONTEXT + body)
    except InvalidSignature:
        return False
    return True


def verify_offline(text: str, jwks: dict[str, Any]) -> TicketClaims:
    """Verify a ticket with a downloaded JWKS only (what an offline desk does)."""
    claims, body, signature = decode(text)
    key = None
    for jwk in jwks.get("keys", []):
        if jwk.get("kid") == claims.kid and jwk.get("crv") == "Ed25519":
            candidate = jwt.PyJWK(jwk).key
            if isinstance(candidate, Ed25519PublicKey):
                key = candidate
    check_signature(verify_with(key, body, signature))
    return claims
