"""Case codes accept one text per signed value (issue 20 point 11)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.cases import codes

KEY = Ed25519PrivateKey.generate()
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure functions: no database reset needed."""


async def _sign(build: Callable[[str], bytes]) -> tuple[bytes, bytes]:
    data = build("k1")
    return data, KEY.sign(data)


async def test_padding_and_other_final_characters_are_refused():
    case_id = uuid.uuid4()
    code = await codes.issue(_sign, case_id)
    assert codes.decode(code)[0] == case_id
    assert codes.decode(code.lower())[0] == case_id  # read in any case (typed from a receipt): the same letters
    data = code[3:]
    unused = 5 * len(data) % 8
    assert unused
    last = ALPHABET.index(data[-1])
    pad = "=" * (-len(data) % 8)
    variants = [code + pad, code + "=", *(code[:-1] + ALPHABET[last | bits] for bits in range(1, 1 << unused))]
    for variant in variants:
        # The standard library reads each as the same bytes ...
        assert base64.b32decode(variant[3:].rstrip("=") + pad) == base64.b32decode(data + pad)
        # ... the code reader refuses them.
        with pytest.raises(codes.CaseCodeInvalid, match="encoding"):
            codes.decode(variant)
