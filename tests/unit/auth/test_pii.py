"""PiiCipher: AES-GCM tokens, key rotation, blind indexes; masking and phone normalisation."""

from __future__ import annotations

import base64
import os
import re

import pytest

from app.errors import DomainError, InvalidInput
from app.settings import Settings
from auth.pii import (
    InvalidPhone,
    PiiCipher,
    PiiDecryptError,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_phone,
)

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
INDEX_KEY = bytes(range(200, 232))
AAD = "citizen:0b5c7a4e-2f43-4d7a-9b0f-8f0f6a4c1d2e:phone"
TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


def cipher(active: str = "k2", **keys: bytes) -> PiiCipher:
    return PiiCipher(keys or {"k1": OLD_KEY, "k2": NEW_KEY}, active, INDEX_KEY)


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- encryption --------------------------------------------------------------------------------


@pytest.mark.parametrize("plain", ["13812345678", "430802199001011234", "张三", "阿卜杜拉·买买提", "", "x" * 5000])
def test_round_trip(plain):
    c = cipher()
    token = c.encrypt(plain, aad=AAD)
    assert c.decrypt(token, aad=AAD) == plain


def test_token_is_self_describing_text():
    token = cipher().encrypt("13812345678", aad=AAD)
    m = TOKEN.fullmatch(token)
    assert m, token
    assert m.group(1) == "k2"
    raw = b64d(m.group(2))
    assert len(raw) == 12 + len("13812345678") + 16  # nonce || ciphertext || tag
    assert "13812345678" not in token


def test_nonce_is_random():
    c = cipher()
    a, b = c.encrypt("13812345678", aad=AAD), c.encrypt("13812345678", aad=AAD)
    assert a != b
    assert b64d(a.split(".")[2])[:12] != b64d(b.split(".")[2])[:12]


def test_wrong_aad_fails():
    c = cipher()
    token = c.encrypt("13812345678", aad=AAD)
    with pytest.raises(PiiDecryptError):
        c.decrypt(token, aad=AAD.replace(":phone", ":id_number"))
    with pytest.raises(PiiDecryptError):
        c.decrypt(token, aad="citizen:another:phone")


@pytest.mark.parametrize("position", [0, 5, 11, 12, 20, -16, -1])
def test_tampered_byte_fails(position):
    c = cipher()
    version, kid, payload = c.encrypt("430802199001011234", aad=AAD).split(".")
    raw = bytearray(b64d(payload))
    raw[position] ^= 0x01
    with pytest.raises(PiiDecryptError):
        c.decrypt(f"{version}.{kid}.{b64e(bytes(raw))}", aad=AAD)


def test_token_relabelled_with_another_kid_fails():
    c = cipher()
    _, _, payload = c.encrypt("13812345678", aad=AAD).split(".")
    with pytest.raises(PiiDecryptError):
        c.decrypt(f"v1.k1.{payload}", aad=AAD)


def test_unknown_kid_fails():
    token = cipher("k9", k9=bytes(32)).encrypt("13812345678", aad=AAD)
    with pytest.raises(PiiDecryptError, match="unknown"):
        cipher().decrypt(token, aad=AAD)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.k2",
        "v1.k2.",
        "v2.k2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k2.AAAA",  # shorter than nonce + tag
        "v1.k2.not*base64!",
        "v1.k2.AAAA.BBBB",
        "v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.k2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # 41 chars: not a valid base64 length
        "v1.k2." + "A" * 100_000,
        "13812345678",
        None,
        b"v1.k2.AAAA",
    ],
)
def test_malformed_tokens_fail_typed(token):
    with pytest.raises(PiiDecryptError):
        cipher().decrypt(token, aad=AAD)


def test_decrypt_error_is_internal_not_domain():
    assert not issubclass(PiiDecryptError, DomainError)


def test_rotation():
    old = cipher("k1", k1=OLD_KEY)
    token = old.encrypt("430802199001011234", aad=AAD)
    assert token.startswith("v1.k1.")
    assert not old.needs_rotation(token)

    new = cipher("k2", k1=OLD_KEY, k2=NEW_KEY)
    assert new.needs_rotation(token)
    assert new.decrypt(token, aad=AAD) == "430802199001011234"
    rotated = new.encrypt(new.decrypt(token, aad=AAD), aad=AAD)
    assert rotated.startswith("v1.k2.")
    assert not new.needs_rotation(rotated)
    # Once k1 is retired, un-rotated rows no longer decrypt; rotated ones do.
    retired = cipher("k2", k2=NEW_KEY)
    assert retired.decrypt(rotated, aad=AAD) == "430802199001011234"
    with pytest.raises(PiiDecryptError):
        retired.decrypt(token, aad=AAD)


def test_needs_rotation_rejects_malformed():
    with pytest.raises(PiiDecryptError):
        cipher().needs_rotation("garbage")


def test_from_settings():
    settings = Settings(pii_keys={"a": OLD_KEY, "b": NEW_KEY}, pii_active_kid="a", pii_index_key=INDEX_KEY)
    c = PiiCipher.from_settings(settings)
    assert c.active_kid == "a"
    assert c.kids == ("a", "b")
    assert c.encrypt("x", aad=AAD).startswith("v1.a.")


def test_from_default_settings_works():
    c = PiiCipher.from_settings(Settings())
    assert c.decrypt(c.encrypt("13812345678", aad=AAD), aad=AAD) == "13812345678"


@pytest.mark.parametrize(
    ("keys", "active", "index"),
    [
        ({}, "k1", INDEX_KEY),
        ({"k1": b"short"}, "k1", INDEX_KEY),
        ({"k1": OLD_KEY}, "k2", INDEX_KEY),
        ({"k.1": OLD_KEY}, "k.1", INDEX_KEY),  # "." would break the token format
        ({"k1": OLD_KEY}, "k1", b"short"),
        ({"k1": OLD_KEY}, "k1", OLD_KEY),  # index key must be separate from encryption keys
    ],
)
def test_bad_key_material_rejected(keys, active, index):
    with pytest.raises(ValueError):
        PiiCipher(keys, active, index)


def test_encrypt_requires_aad():
    with pytest.raises(ValueError):
        cipher().encrypt("13812345678", aad="")


# --- blind index -------------------------------------------------------------------------------


def test_blind_index_deterministic_hex():
    c = cipher()
    a = c.blind_index("13812345678", kind="phone")
    assert a == c.blind_index("13812345678", kind="phone")
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    # Independent of the encryption keys (rotation does not change indexes) ...
    assert a == cipher("k1", k1=os.urandom(32)).blind_index("13812345678", kind="phone")
    # ... but bound to the index key.
    assert a != PiiCipher({"k1": OLD_KEY}, "k1", bytes(32)).blind_index("13812345678", kind="phone")


@pytest.mark.parametrize(
    "variant", ["13812345678", " 13812345678 ", "138-1234-5678", "+86 138 1234 5678", "8613812345678"]
)
def test_blind_index_phone_normalised(variant):
    c = cipher()
    assert c.blind_index(variant, kind="phone") == c.blind_index("13812345678", kind="phone")


@pytest.mark.parametrize("variant", ["43080219900101123X", "43080219900101123x", "  43080219900101123x\n"])
def test_blind_index_id_number_normalised(variant):
    c = cipher()
    assert c.blind_index(variant, kind="id_number") == c.blind_index("43080219900101123X", kind="id_number")


def test_blind_index_separates_kinds_and_values():
    c = cipher()
    assert c.blind_index("13812345678", kind="phone") != c.blind_index("13812345678", kind="id_number")
    assert c.blind_index("13812345678", kind="phone") != c.blind_index("13812345679", kind="phone")


@pytest.mark.parametrize("kind", ["", "Phone", "phone\x00", "a" * 40])
def test_blind_index_rejects_bad_kind(kind):
    with pytest.raises(ValueError):
        cipher().blind_index("13812345678", kind=kind)


# --- masking -----------------------------------------------------------------------------------


def test_mask_exact():
    assert mask_id_number("430802199001011234") == "430***********1234"
    assert mask_id_number("43080219900101123X") == "430***********123X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("阿卜杜拉·买买提") == "阿*******"


def test_mask_keeps_length_and_never_reveals_short_values():
    assert len(mask_id_number("430802199001011234")) == 18
    assert mask_name("张") == "*"
    assert mask_name("") == ""
    assert mask_phone("1234567") == "*******"
    assert mask_id_number("123") == "***"


# --- phone numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "+86 138-1234-5678",
        "8613812345678",
        "+8613812345678",
        "008613812345678",
        " 138 1234 5678 ",
        "(+86) 138 1234 5678",
    ],
)
def test_normalize_phone(raw):
    assert normalize_phone(raw) == "13812345678"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12812345678",  # second digit 2
        "10012345678",
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "+1 138 1234 5678",
        "+86 12812345678",
        "8612812345678",
        "86138123456789",
        "abcdefghijk",
        "１３８１２３４５６７８",  # full-width digits
        "138.1234.5678",
        "1" * 10_000,
        None,
        13812345678,
    ],
)
def test_normalize_phone_rejects(raw):
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(raw)
    err = info.value
    assert isinstance(err, InvalidInput)
    assert (err.code, err.status, err.message) == ("INVALID_PHONE", 422, "手机号码格式不正确")
