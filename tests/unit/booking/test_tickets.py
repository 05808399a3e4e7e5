"""Booking tickets without a database: issuing with a `sign` callback, offline verification against a
JWKS, the ticket's shape, and that every damaged, forged or garbage input raises TicketInvalid."""

from __future__ import annotations

import datetime as dt
import random
import re
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.booking import tickets
from app.booking.tickets import TicketClaims, TicketInvalid, check_signature, decode, verify_offline
from auth.tokens import public_jwk

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
TICKET_RE = re.compile(r"^ZT1[A-Z2-7]+$")
KID = "20260101-abcdef12"
KEY = Ed25519PrivateKey.generate()
JWKS: dict[str, Any] = {"keys": [public_jwk(KID, KEY.public_key())]}
BOOKING = uuid.UUID("0192a7f0-3c4d-7e8f-9a0b-1c2d3e4f5a6b")
STARTS = dt.datetime(2026, 10, 14, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
ENDS = STARTS + dt.timedelta(minutes=30)
LAST_MINUTE_OF_9999 = (int(dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp())) // 60

Sign = Callable[[Callable[[str], bytes]], Awaitable[tuple[bytes, bytes]]]


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure ticket functions: override the suite-wide database reset, these tests touch no database."""


def signer(key: Ed25519PrivateKey = KEY, kid: str = KID) -> Sign:
    async def sign(build: Callable[[str], bytes]) -> tuple[bytes, bytes]:
        data = build(kid)
        return data, key.sign(data)

    return sign


async def issue(key: Ed25519PrivateKey = KEY, kid: str = KID, **changes: Any) -> str:
    fields: dict[str, Any] = {"booking_id": BOOKING, "version": 3, "hall": "main", "starts_at": STARTS, "ends_at": ENDS}
    fields.update(changes)
    return await tickets.issue(sign=signer(key, kid), **fields)


@pytest.fixture
async def ticket() -> str:
    return await issue()


def reason(text: Any, jwks: dict[str, Any] = JWKS) -> str:
    with pytest.raises(TicketInvalid) as info:
        verify_offline(text, jwks)
    return info.value.reason


def outcome(text: Any, jwks: dict[str, Any] = JWKS) -> TicketClaims | TicketInvalid:
    """The claims, or the TicketInvalid raised; any other exception propagates (and fails the test)."""
    try:
        return verify_offline(text, jwks)
    except TicketInvalid as exc:
        return exc


def unsigned(
    *,
    fmt: int = 1,
    start: int = int(STARTS.timestamp()) // 60,
    length: int = 30,
    hall: bytes = b"main",
    kid: bytes = KID.encode(),
    tail: bytes = b"",
    sign_with: Ed25519PrivateKey | None = None,
) -> str:
    """A ticket text built by hand (zero signature unless `sign_with`), to reach decode's checks."""
    body = (
        struct.pack(">B16sHIH", fmt, BOOKING.bytes, 3, start, length)
        + bytes([len(hall)])
        + hall
        + bytes([len(kid)])
        + kid
        + tail
    )
    signature = sign_with.sign(tickets.CONTEXT + body) if sign_with else bytes(64)
    return tickets.encode(body, signature)


# --- issuing and verifying ------------------------------------------------------------------------


async def test_round_trip(ticket: str):
    claims = verify_offline(ticket, JWKS)
    assert claims == TicketClaims(booking_id=BOOKING, version=3, hall="main", starts_at=STARTS, ends_at=ENDS, kid=KID)
    assert claims.starts_at.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 0},
        {"version": 65535},
        {"hall": "ab"},
        {"hall": "h" * 32},
        {"booking_id": uuid.UUID(int=0)},
        {"booking_id": uuid.UUID(int=2**128 - 1)},
        {
            "starts_at": dt.datetime(2026, 10, 10, 8, 15, tzinfo=dt.UTC),
            "ends_at": dt.datetime(2026, 10, 10, 12, 15, tzinfo=dt.UTC),
        },
        {
            "starts_at": dt.datetime(2099, 12, 31, 15, 55, tzinfo=dt.UTC),
            "ends_at": dt.datetime(2099, 12, 31, 16, 0, tzinfo=dt.UTC),
        },
    ],
)
async def test_round_trip_every_claim(changes: dict[str, Any]):
    expected = {"booking_id": BOOKING, "version": 3, "hall": "main", "starts_at": STARTS, "ends_at": ENDS}
    expected.update(changes)
    claims = verify_offline(await issue(**changes), JWKS)
    assert claims == TicketClaims(**expected, kid=KID)


async def test_times_are_kept_to_the_minute():
    shanghai = dt.timezone(dt.timedelta(hours=8))
    starts = dt.datetime(2026, 10, 14, 9, 0, 42, 123456, tzinfo=shanghai)
    claims = verify_offline(await issue(starts_at=starts, ends_at=starts + dt.timedelta(minutes=45)), JWKS)
    assert claims.starts_at == dt.datetime(2026, 10, 14, 1, 0, tzinfo=dt.UTC)
    assert claims.ends_at == dt.datetime(2026, 10, 14, 1, 45, tzinfo=dt.UTC)


async def test_sign_gets_the_bytes_to_sign_for_its_kid():
    seen: list[tuple[str, bytes]] = []

    async def sign(build: Callable[[str], bytes]) -> tuple[bytes, bytes]:
        data = build("k-other")
        seen.append(("k-other", data))
        data = build(KID)
        seen.append((KID, data))
        return data, KEY.sign(data)

    text = await tickets.issue(sign=sign, booking_id=BOOKING, version=3, hall="main", starts_at=STARTS, ends_at=ENDS)
    expected = tickets.payload(booking_id=BOOKING, version=3, hall="main", starts_at=STARTS, ends_at=ENDS, kid=KID)
    assert seen[1] == (KID, tickets.CONTEXT + expected)
    assert seen[0][1] != seen[1][1]
    claims, body, signature = decode(text)
    assert body == expected
    assert claims.kid == KID
    check_signature(tickets.verify_with(KEY.public_key(), body, signature))  # does not raise


@pytest.mark.parametrize(("hall", "kid"), [("main", KID), ("h" * 32, KID), ("zz", "k1")])
async def test_ticket_text_shape(hall: str, kid: str):
    text = await issue(hall=hall, kid=kid)
    assert TICKET_RE.fullmatch(text)
    assert len(text) < 260
    assert len(text) <= tickets.MAX_LENGTH


async def test_check_signature_without_a_key(ticket: str):
    _, body, signature = decode(ticket)
    with pytest.raises(TicketInvalid) as info:
        check_signature(tickets.verify_with(None, body, signature))
    assert info.value.reason == "kid"


# --- keys ------------------------------------------------------------------------------------------


async def test_signed_by_another_key_with_the_same_kid():
    forged = await issue(key=Ed25519PrivateKey.generate())
    assert decode(forged)[0].kid == KID
    assert reason(forged) == "signature"


async def test_unknown_kid():
    assert reason(await issue(kid="20990101-00000000")) == "kid"


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": []},
        {"keys": [public_jwk("someone-else", KEY.public_key())]},  # right key, other kid
        {"keys": [{**public_jwk(KID, KEY.public_key()), "crv": "X25519"}]},
    ],
)
async def test_no_matching_key_in_the_jwks(ticket: str, jwks: dict[str, Any]):
    assert reason(ticket, jwks) == "kid"


async def test_the_right_key_among_several(ticket: str):
    other = Ed25519PrivateKey.generate()
    jwks = {"keys": [public_jwk("older", other.public_key()), public_jwk(KID, KEY.public_key())]}
    assert verify_offline(ticket, jwks).booking_id == BOOKING


# --- damaged tickets -------------------------------------------------------------------------------


async def test_every_single_character_change_is_rejected(ticket: str):
    accepted: list[tuple[int, str]] = []
    tried = 0
    for i, original in enumerate(ticket):
        for replacement in ALPHABET + "01z":
            if replacement.upper() == original.upper():
                continue  # a case change only: see test_tolerated_variants_verify_to_the_same_claims
            changed = ticket[:i] + replacement + ticket[i + 1 :]
            tried += 1
            result = outcome(changed)
            if isinstance(result, TicketInvalid):
                if i < len(tickets.PREFIX):
                    assert result.reason == "format"
                continue
            accepted.append((i, replacement))
    assert tried > 150 * 30
    # Not even a change in the unused low bits of the final character (the same signed bytes): one text per ticket.
    assert accepted == []


async def test_only_the_canonical_encoding_is_accepted(ticket: str):
    """Issue 20 point 11: padding or another final character for the same bytes was accepted."""
    import base64

    _, body, signature = decode(ticket)
    data = ticket[3:]
    unused = 5 * len(data) % 8
    assert unused, "a ticket whose length leaves unused bits (the test needs one)"
    last = ALPHABET.index(data[-1])
    same_bytes = [ALPHABET[last | bits] for bits in range(1, 1 << unused)]
    for variant in [ticket + "=" * (-len(data) % 8), ticket + "=", *(ticket[:-1] + c for c in same_bytes)]:
        # Each variant is the very same bytes to a lenient reader (the standard library's)...
        assert base64.b32decode(variant[3:].rstrip("=") + "=" * (-len(data) % 8)) == body + signature
        # ...and refused here.
        assert reason(variant) == "encoding", variant


async def test_every_truncation_is_rejected(ticket: str):
    for n in range(len(ticket)):
        assert isinstance(outcome(ticket[:n]), TicketInvalid), n


async def test_appending_is_rejected(ticket: str):
    for extra in [*ALPHABET, "AA", "AAAAAAAA", ticket[3:], ticket, "ZT1", "A=", "1", "é"]:
        assert isinstance(outcome(ticket + extra), TicketInvalid), extra


async def test_tolerated_variants_verify_to_the_same_claims(ticket: str):
    # decode() strips and upper-cases what follows the prefix: a scanner adding a newline
    # or a reader typing the code in lower case still works, and nothing in the claims can change.
    claims = verify_offline(ticket, JWKS)
    for variant in ["ZT1" + ticket[3:].lower(), ticket + "\n", ticket + " ", "ZT1 " + ticket[3:]]:
        assert verify_offline(variant, JWKS) == claims, variant


async def test_a_ticket_typed_all_in_lower_case_still_verifies(ticket: str):
    # A keyboard-wedge scanner with Caps Lock on types the whole ticket in lower case.
    assert verify_offline(ticket.lower(), JWKS) == verify_offline(ticket, JWKS)
    assert verify_offline("zt1" + ticket[3:], JWKS) == verify_offline(ticket, JWKS)
    assert reason("ZT2" + ticket[3:]) == "format"


async def test_non_ascii_lookalikes_are_rejected(ticket: str):
    # The format is upper-case letters and digits only. decode() upper-cases before base32-decoding,
    # and str.upper() maps some non-ASCII characters onto ASCII letters ('ı' -> 'I', 'ſ' -> 'S',
    # 'ﬅ' -> 'ST'), so a ticket with such a character in place of its letters still verifies.
    lookalikes = [
        c
        for c in map(chr, range(0x80, sys.maxunicode + 1))
        if not 0xD800 <= ord(c) <= 0xDFFF and c.upper() and set(c.upper()) <= set(ALPHABET)
    ]
    assert "ſ" in lookalikes
    checked = []
    for char in lookalikes:
        at = ticket.find(char.upper(), 3)
        if at < 0:
            continue
        changed = ticket[:at] + char + ticket[at + len(char.upper()) :]
        checked.append((char, outcome(changed)))
    assert checked
    accepted = [char for char, result in checked if not isinstance(result, TicketInvalid)]
    assert accepted == []


# --- forged layouts (decode's own checks) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"fmt": 2}, "format"),
        ({"fmt": 0}, "format"),
        ({"hall": "主厅".encode()}, "encoding"),
        ({"kid": b"\xff\xfe"}, "encoding"),
        ({"tail": b"\x00"}, "length"),
        ({"tail": b"extra bytes"}, "length"),
    ],
)
def test_well_signed_but_malformed_layouts(changes: dict[str, Any], why: str):
    # Signed with the real key, so only decode's layout checks can refuse them.
    assert reason(unsigned(sign_with=KEY, **changes)) == why


def test_length_byte_pointing_past_the_body():
    body = struct.pack(">B16sHIH", 1, BOOKING.bytes, 3, 0, 30) + bytes([200]) + b"main" + bytes([2]) + b"k1"
    assert reason(tickets.encode(body, bytes(64))) == "length"


def test_missing_kid_field():
    body = struct.pack(">B16sHIH", 1, BOOKING.bytes, 3, 0, 30) + bytes([4]) + b"main"
    assert reason(tickets.encode(body, bytes(64))) == "length"


def test_too_short():
    assert reason(tickets.encode(b"\x01" * 25, bytes(64))) == "length"
    assert reason("ZT1") == "length"


def test_a_well_formed_layout_with_a_zero_signature():
    assert reason(unsigned()) == "signature"


@pytest.mark.parametrize(
    ("start", "length"),
    [
        pytest.param(0xFFFFFFFF, 30, id="max-start"),
        pytest.param(LAST_MINUTE_OF_9999 + 1, 30, id="start-in-year-10000"),
        pytest.param(LAST_MINUTE_OF_9999, 65535, id="end-in-year-10000"),
    ],
)
def test_start_beyond_year_9999_is_invalid_not_a_crash(start: int, length: int):
    # The start field is 32 bits of minutes, so it can name instants after 9999-12-31: decode() then
    # lets datetime's ValueError/OverflowError escape instead of raising TicketInvalid (before any
    # signature check, so anyone can send one; the desk check-in calls decode() directly).
    text = unsigned(start=start, length=length)
    assert TICKET_RE.fullmatch(text)
    with pytest.raises(TicketInvalid):
        decode(text)
    assert isinstance(outcome(text), TicketInvalid)


def test_random_well_formed_layouts_never_raise_anything_else():
    rng = random.Random(20261001)
    crashes: list[tuple[str, str]] = []
    for _ in range(3000):
        hall = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(rng.randint(0, 40)))
        kid = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
        body = (
            struct.pack(
                ">B16sHIH",
                rng.choice([1, 1, 1, rng.randrange(256)]),
                rng.randbytes(16),
                rng.randrange(65536),
                rng.randrange(2**32),
                rng.randrange(65536),
            )
            + bytes([len(hall)])
            + hall
            + bytes([len(kid)])
            + kid
        )
        text = tickets.encode(body, rng.randbytes(64))
        try:
            verify_offline(text, JWKS)
        except TicketInvalid:
            continue
        except Exception as exc:
            crashes.append((text, repr(exc)))
            continue
        raise AssertionError(f"random bytes verified: {text}")
    assert crashes == [], f"{len(crashes)} crashes, e.g. {crashes[:2]}"


# --- garbage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, 123, 1.5, b"ZT1AAAA", bytearray(b"ZT1AAAA"), ["ZT1"], {"ticket": "ZT1"}, object()],
    ids=["None", "int", "float", "bytes", "bytearray", "list", "dict", "object"],
)
def test_non_string_input(value: Any):
    assert reason(value) == "format"


async def test_bytes_of_a_real_ticket_are_rejected(ticket: str):
    assert reason(ticket.encode()) == "format"


@pytest.mark.parametrize("value", ["", " ", "ZT", "ZT2AAAA", "https://example.gov.cn/t/ZT1AAAA", "\x00"])
def test_not_a_ticket(value: str):
    assert reason(value) == "format"


def random_unicode(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randrange(sys.maxunicode + 1)) for _ in range(n))


def test_ten_kilobytes_of_random_unicode():
    rng = random.Random(7)
    for _ in range(20):
        text = random_unicode(rng, 10_000)
        assert isinstance(outcome(text), TicketInvalid)
        assert isinstance(outcome("ZT1" + text), TicketInvalid)


def test_ten_kilobytes_of_base32_after_the_prefix():
    rng = random.Random(32)
    for _ in range(20):
        assert reason("ZT1" + "".join(rng.choice(ALPHABET) for _ in range(10_000))) == "format"
    assert reason("ZT1" + "A" * 10_000) == "format"


async def test_random_short_inputs_after_the_prefix(ticket: str):
    rng = random.Random(1234)
    limit = tickets.MAX_LENGTH - len(tickets.PREFIX)
    for _ in range(3000):
        n = rng.randint(0, limit)
        kind = rng.randrange(3)
        if kind == 0:
            tail = "".join(rng.choice(ALPHABET) for _ in range(n))
        elif kind == 1:
            tail = random_unicode(rng, n)
        else:  # a real ticket's characters, shuffled
            chars = list(ticket[3:])
            rng.shuffle(chars)
            tail = "".join(chars)
        assert isinstance(outcome("ZT1" + tail), TicketInvalid), tail


def test_fast_base32_reads_what_the_standard_library_reads() -> None:
    """Every length of the alphabet: the same bytes as base64.b32decode for canonical text, else a refusal."""
    import base64
    import binascii

    rng = random.Random(5)
    texts = [base64.b32encode(rng.randbytes(n)).decode().rstrip("=") for n in range(0, 140)]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 48))) for _ in range(3000)]
    texts += ["MY======", "MZXQ====", "MZXW6===", "MZXW6YQ=", "M", "MZX", "MZXW6Y"]
    for text in texts:
        try:
            expected: bytes | None = base64.b32decode(text + "=" * (-len(text) % 8))
            if base64.b32encode(expected).decode().rstrip("=") != text:
                expected = None  # padded, or unused bits set: not the one encoding of these bytes
        except binascii.Error:
            expected = None
        try:
            got: bytes | None = tickets._b32decode(text)
        except binascii.Error:
            got = None
        assert got == expected, text
    assert tickets._b32decode("") == b""
