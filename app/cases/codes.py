"""The case code on a receipt: a compact Ed25519-signed token naming a case, opened by the progress page.

Layout (base32 without padding behind `ZC1`, so a QR code stores it in alphanumeric mode):
format (1) | case id (16) | key id length (1) + key id | Ed25519 signature (64), signed with the
prefix `zd-case-v1\\0`, by the same keys as tickets and tokens (`/.well-known/jwks.json`).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable

PREFIX = "ZC1"
CONTEXT = b"zd-case-v1\x00"
MAX_LENGTH = 200


class CaseCodeInvalid(Exception):
    """Not a case code we signed."""


async def issue(sign: Callable[[Callable[[str], bytes]], Awaitable[tuple[bytes, bytes]]], case_id: uuid.UUID) -> str:
    """The signed code of a case."""

    def build(kid: str) -> bytes:
        raw = kid.encode("ascii")
        return CONTEXT + bytes([1]) + case_id.bytes + bytes([len(raw)]) + raw

    data, signature = await sign(build)
    return PREFIX + base64.b32encode(data[len(CONTEXT) :] + signature).decode().rstrip("=")


def decode(text: str) -> tuple[uuid.UUID, str, bytes, bytes]:
    """(case id, key id, signed bytes, signature) of a code, unverified."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH or not text.upper().startswith(PREFIX):
        raise CaseCodeInvalid("format")
    data = text[len(PREFIX) :].upper()
    if not data.isascii() or not data.isalnum():
        raise CaseCodeInvalid("encoding")
    try:
        raw = base64.b32decode(data + "=" * (-len(data) % 8))
    except (binascii.Error, ValueError):
        raise CaseCodeInvalid("encoding") from None
    if base64.b32encode(raw).decode().rstrip("=") != data:
        raise CaseCodeInvalid("encoding")  # one text per code: another last character for the same bytes
    if len(raw) < 1 + 16 + 1 + 64 or raw[0] != 1:
        raise CaseCodeInvalid("format")
    body, signature = raw[:-64], raw[-64:]
    size = body[17]
    if len(body) != 18 + size:
        raise CaseCodeInvalid("length")
    try:
        kid = body[18:].decode("ascii")
    except UnicodeDecodeError:
        raise CaseCodeInvalid("kid") from None
    return uuid.UUID(bytes=body[1:17]), kid, body, signature


def check(valid: bool | None) -> None:
    """Raise CaseCodeInvalid unless the signature was found valid (None: its key id is unknown)."""
    if valid is None:
        raise CaseCodeInvalid("kid")
    if not valid:
        raise CaseCodeInvalid("signature")
