"""Resident identity card numbers (居民身份证号码, GB 11643-1999).

An 18-character number is ``RRRRRR YYYYMMDD SSS C``:

* ``RRRRRR`` region code (GB/T 2260). We check only what is stable without shipping the full,
  yearly-changing code table: the first two digits must be a province-level code of the mainland
  (11-15, 21-23, 31-37, 41-46, 50-54, 61-65) and the code must not be a bare province code
  ``xx0000``. Residence permits for Hong Kong, Macao and Taiwan residents (港澳台居民居住证) use the
  same format with the codes 810000, 820000 and 830000, so for 81/82/83 the code must be exactly
  ``xx0000``. 71 (Taiwan province, not issued), 91 (abroad) and anything else are rejected.
* ``YYYYMMDD`` birth date: a real calendar date, not before 1900-01-01 and not after `today`.
* ``SSS`` sequence; its last digit gives the gender (odd male, even female).
* ``C`` ISO 7064 MOD 11-2 check character, ``0-9`` or ``X`` (lower-case ``x`` is accepted and
  normalised to ``X``).

Only ASCII digits count: full-width digits ("４３０…") and 15-digit first-generation numbers are
rejected as ``format``. Checks run in the order format, region, birth_date, check_digit, and
`InvalidIdNumber.details["reason"]` names the first that failed. No error ever echoes the number.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from app.errors import InvalidInput

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = dt.date(1900, 1, 1)

MAINLAND_PROVINCES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66)]
)
PERMIT_PROVINCES = frozenset({81, 82, 83})  # Hong Kong, Macao, Taiwan residence permits

REASONS = ("format", "region", "birth_date", "check_digit")
_MESSAGES = {
    "format": "身份证号码格式不正确，应为18位",
    "region": "身份证号码的地区代码不正确",
    "birth_date": "身份证号码中的出生日期不正确",
    "check_digit": "身份证号码校验位不正确，请核对",
}
_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")
_BODY = re.compile(r"[0-9]{17}")
_ASCII_SPACE = " \t\r\n"


class InvalidIdNumber(InvalidInput):
    """The identity card number is not valid; `details["reason"]` is one of `REASONS`."""

    code, message = "INVALID_ID_NUMBER", "身份证号码不正确"

    def __init__(self, reason: str) -> None:
        """Build the error for one stable reason."""
        super().__init__(_MESSAGES.get(reason, self.message), details={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class IdNumber:
    """A validated identity card number and what it encodes."""

    number: str
    region_code: str
    birth_date: dt.date
    gender: str  # "male" | "female"

    def __repr__(self) -> str:
        """Never print the full number (it ends up in logs and tracebacks)."""
        masked = self.number[:3] + "*" * 11 + self.number[-4:]
        return f"IdNumber(number={masked!r}, gender={self.gender!r})"


def compute_check_digit(body: str) -> str:
    """The MOD 11-2 check character ("0"-"9" or "X") for the first 17 digits."""
    if not isinstance(body, str) or not _BODY.fullmatch(body):
        raise ValueError("body must be exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(body, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def _region_ok(region: str) -> bool:
    province = int(region[:2])
    if province in PERMIT_PROVINCES:
        return region[2:] == "0000"
    return province in MAINLAND_PROVINCES and region[2:] != "0000"


def _birth_date(digits: str, today: dt.date) -> dt.date | None:
    try:
        born = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    if born < EARLIEST_BIRTH or born > today:
        return None
    return born


def validate_id_number(raw: str, *, today: dt.date) -> IdNumber:
    """Validate an 18-character identity card number; raise `InvalidIdNumber` with a stable reason."""
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidIdNumber("format")
    number = raw.strip(_ASCII_SPACE)
    if not _SHAPE.fullmatch(number):
        raise InvalidIdNumber("format")
    number = number.upper()
    region = number[:6]
    if not _region_ok(region):
        raise InvalidIdNumber("region")
    born = _birth_date(number[6:14], today)
    if born is None:
        raise InvalidIdNumber("birth_date")
    if compute_check_digit(number[:17]) != number[17]:
        raise InvalidIdNumber("check_digit")
    gender = "male" if int(number[16]) % 2 else "female"
    return IdNumber(number=number, region_code=region, birth_date=born, gender=gender)


def make_id_number(region: str = "430802", birth: dt.date = dt.date(1990, 1, 1), seq: str = "123") -> str:
    """Build a well-formed number with the right check digit (tests and dev tools; odd seq end = male)."""
    if not re.fullmatch(r"[0-9]{6}", region):
        raise ValueError("region must be 6 ASCII digits")
    if not re.fullmatch(r"[0-9]{3}", seq):
        raise ValueError("seq must be 3 ASCII digits")
    body = f"{region}{birth:%Y%m%d}{seq}"
    if len(body) != 17:
        raise ValueError("birth year must have 4 digits")
    return body + compute_check_digit(body)
