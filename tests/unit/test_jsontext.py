"""The service's JSON text: orjson must write exactly what the standard library wrote (stored answers, fingerprints)."""

from __future__ import annotations

import enum
import json

import pytest

from app.jsontext import dumps, loads


class Status(enum.StrEnum):
    booked = "booked"


SAMPLES = [
    {"name": "营业执照设立登记", "n": 1.5, "big": 1e16, "small": 0.001, "neg": -0.0, "l": [1, None, True, False]},
    {"status": Status.booked, "nested": {"k": "v" * 300, "empty": {}, "list": []}},
    {"line": "a\u2028b\u2029c", "ctl": '\x00\x1f"\\/', "emoji": "😀", "tab": "\t"},
    {1: "int key", None: "none key", 2.5: "float key"},
    {True: "bool key"},
    {"huge": 99999999999999999999, "also": -(2**70)},  # beyond 64 bits: the fallback writes them
    [("tuple", 1), ["list", 2]],
    "just a string",
    12345678901234567,
]


def _stdlib(data: object, sort_keys: bool = False) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys).encode()


@pytest.mark.parametrize("data", SAMPLES)
def test_dumps_writes_what_the_standard_library_wrote(data: object):
    assert dumps(data) == _stdlib(data)


@pytest.mark.parametrize("data", [s for s in SAMPLES if isinstance(s, dict) and all(isinstance(k, str) for k in s)])
def test_sorted_dumps_match_too(data: dict):
    assert dumps({"z": 1, **data, "a": [3, {"y": 1, "b": 2}]}, sort_keys=True) == _stdlib(
        {"z": 1, **data, "a": [3, {"y": 1, "b": 2}]}, sort_keys=True
    )


@pytest.mark.parametrize("text", [b"NaN", b"[Infinity]", b'"\\ud800"', b"{", b"\xff"])
def test_loads_refuses_what_is_not_strict_json(text: bytes):
    with pytest.raises(ValueError):
        loads(text)


def test_the_one_difference_small_float_exponents():
    """orjson writes 1e-7 where the standard library wrote 1e-07: the same number (no stored data has one)."""
    assert dumps(1e-7) == b"1e-7" and loads(b"1e-07") == 1e-7


def test_loads_round_trip():
    data = {"中文": [1, 2.5, None, True], "s": "x\u2028y"}
    assert loads(dumps(data)) == data
