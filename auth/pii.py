"""Personal data at rest: AES-GCM field encryption, HMAC blind indexes, masking and phone numbers.

Encrypted fields are stored as self-describing text tokens::

    v1.<kid>.<base64url(nonce12 || ciphertext+tag)>      (base64url without "=" padding)

* `kid` names the key in `settings.pii_keys`; new tokens always use `settings.pii_active_kid`, and
  every key still listed decrypts, so keys rotate by adding a new key, making it active and
  re-encrypting rows for which `needs_rotation` is true (then the old key can be removed).
* The associated data (`aad`) binds a token to its row and column, e.g. `"citizen:<uuid>:phone"`:
  a token copied into another row or column does not decrypt.
* Lookups and unique constraints use `blind_index(value, kind=...)`, a keyed HMAC-SHA256 over the
  normalised value (the ciphertext itself is random and cannot be searched).

`PiiDecryptError` is internal (a broken token is our bug or tampering, never the caller's fault)
and deliberately not a `DomainError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.errors import InvalidInput

VERSION = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16
KIND_ID_NUMBER = "id_number"
KIND_PHONE = "phone"

_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PHONE_SEPARATORS = re.compile(r"[\s\-()（）]")
_NON_DIGITS = re.compile(r"[^0-9]")
_MAX_TOKEN_CHARS = 64 * 1024
_MAX_PHONE_CHARS = 32


class PiiDecryptError(Exception):
    """A stored PII token could not be decrypted (unknown key, tampering, wrong aad or malformed)."""


class InvalidPhone(InvalidInput):
    """The phone number is not an 11-digit mainland mobile number."""

    code, message = "INVALID_PHONE", "手机号码格式不正确"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise PiiDecryptError("malformed token: payload is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise PiiDecryptError("malformed token: payload is not base64url") from None


class PiiCipher:
    """Encrypts, decrypts and blind-indexes personal data with the keys from settings."""

    def __init__(self, keys: Mapping[str, bytes], active_kid: str, index_key: bytes) -> None:
        """Check the key material once; keys are 32-byte AES-256 keys named by kid."""
        if not keys:
            raise ValueError("at least one PII key is required")
        for kid, key in keys.items():
            if not _KID.fullmatch(kid):
                raise ValueError(f"PII key id {kid!r} must be 1-32 characters of A-Z a-z 0-9 _ -")
            if not isinstance(key, bytes) or len(key) != 32:
                raise ValueError(f"PII key {kid!r} must be 32 bytes")
        if active_kid not in keys:
            raise ValueError(f"active PII key id {active_kid!r} is not one of the configured keys")
        if not isinstance(index_key, bytes) or len(index_key) != 32:
            raise ValueError("the PII index key must be 32 bytes")
        if any(hmac.compare_digest(index_key, key) for key in keys.values()):
            raise ValueError("the PII index key must differ from every encryption key")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._index_key = index_key
        self.active_kid = active_kid

    @classmethod
    def from_settings(cls, settings: Any) -> PiiCipher:
        """Build from `Settings` (pii_keys, pii_active_kid, pii_index_key)."""
        return cls(settings.pii_keys, settings.pii_active_kid, settings.pii_index_key)

    @property
    def kids(self) -> tuple[str, ...]:
        """The key ids this cipher can decrypt."""
        return tuple(self._aead)

    def encrypt(self, plaintext: str, *, aad: str) -> str:
        """Encrypt with the active key and a fresh random nonce; `aad` binds the token to its row."""
        if not isinstance(plaintext, str):
            raise TypeError("plaintext must be a str")
        if not isinstance(aad, str) or not aad:
            raise ValueError("aad must be a non-empty str naming the row and field")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.active_kid].encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        return f"{VERSION}.{self.active_kid}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: str) -> str:
        """Decrypt a token written by `encrypt` with any configured key; raise `PiiDecryptError` otherwise."""
        kid, payload = self._parse(token)
        aead = self._aead.get(kid)
        if aead is None:
            raise PiiDecryptError(f"unknown PII key id {kid!r}")
        if not isinstance(aad, str):
            raise PiiDecryptError("aad must be a str")
        raw = _b64decode(payload)
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise PiiDecryptError("malformed token: too short")
        try:
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8"))
        except InvalidTag:
            raise PiiDecryptError("token does not authenticate (tampered, wrong key or wrong aad)") from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise PiiDecryptError("decrypted value is not UTF-8") from None

    def needs_rotation(self, token: str) -> bool:
        """True when the token was written with a key other than the active one."""
        kid, _ = self._parse(token)
        return kid != self.active_kid

    def blind_index(self, value: str, *, kind: str) -> str:
        """Hex HMAC-SHA256 of `kind + "\\x00" + normalised value`: deterministic, for lookups and uniqueness."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise ValueError("kind must be a short lower-case name such as 'id_number' or 'phone'")
        if not isinstance(value, str):
            raise TypeError("value must be a str")
        message = f"{kind}\x00{normalize_for_index(value, kind=kind)}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def _parse(token: str) -> tuple[str, str]:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise PiiDecryptError("malformed token")
        parts = token.split(".")
        if len(parts) != 3:
            raise PiiDecryptError("malformed token: expected v1.<kid>.<payload>")
        version, kid, payload = parts
        if version != VERSION:
            raise PiiDecryptError(f"unsupported token version {version[:8]!r}")
        if not _KID.fullmatch(kid):
            raise PiiDecryptError("malformed token: bad key id")
        return kid, payload


def normalize_for_index(value: str, *, kind: str) -> str:
    """The canonical form a blind index hashes: ID numbers stripped and upper-cased, phones as bare digits."""
    if kind == KIND_ID_NUMBER:
        return value.strip().upper()
    if kind == KIND_PHONE:
        digits = _NON_DIGITS.sub("", value)
        # "+86 138…", "0086138…" and "86138…" index like "138…" (the same rule as `normalize_phone`).
        for prefix in ("0086", "86"):
            if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
                return digits[len(prefix) :]
        return digits
    return value.strip()


def normalize_phone(raw: str) -> str:
    """Return the 11-digit mainland mobile number from e.g. "+86 138-1234-5678"; raise `InvalidPhone` otherwise."""
    if not isinstance(raw, str) or len(raw) > _MAX_PHONE_CHARS:
        raise InvalidPhone()
    compact = _PHONE_SEPARATORS.sub("", raw)
    for prefix in ("+86", "0086", "86"):
        if compact.startswith(prefix) and len(compact) == len(prefix) + 11:
            compact = compact[len(prefix) :]
            break
    if not _MOBILE.fullmatch(compact):
        raise InvalidPhone()
    return compact


def _mask(value: str, keep_head: int, keep_tail: int) -> str:
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    return value[:keep_head] + "*" * (len(value) - keep_head - keep_tail) + value[len(value) - keep_tail :]


def mask_id_number(value: str) -> str:
    """Keep the first 3 and last 4 characters: "430802199001011234" -> "430***********1234"."""
    return _mask(value.strip(), 3, 4)


def mask_phone(value: str) -> str:
    """Keep the first 3 and last 4 digits: "13812345678" -> "138****5678"."""
    return _mask(value.strip(), 3, 4)


def mask_name(value: str) -> str:
    """Keep the first character: "张三" -> "张*", "欧阳娜娜" -> "欧***" (a one-character name becomes "*")."""
    name = value.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)
