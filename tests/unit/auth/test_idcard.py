"""Identity card numbers: check digit, region, birth date, format, and the generator."""

from __future__ import annotations

import datetime as dt

import pytest

from app.errors import InvalidInput
from auth.idcard import (
    MAINLAND_PROVINCES,
    IdNumber,
    InvalidIdNumber,
    compute_check_digit,
    make_id_number,
    validate_id_number,
)

TODAY = dt.date(2026, 1, 15)


def reason_of(raw: object, today: dt.date = TODAY) -> str:
    with pytest.raises(InvalidIdNumber) as info:
        validate_id_number(raw, today=today)  # type: ignore[arg-type]
    return info.value.details["reason"]


def with_check(body: str) -> str:
    return body + compute_check_digit(body)


def x_number() -> str:
    """A valid number whose check character is X."""
    for seq in range(1000):
        number = make_id_number(seq=f"{seq:03d}")
        if number.endswith("X"):
            return number
    raise AssertionError("no sequence gives X")


def test_valid_generated_number():
    number = make_id_number("430802", dt.date(1990, 1, 1), "123")
    assert number[:17] == "43080219900101123"
    assert number[17] == compute_check_digit("43080219900101123")
    parsed = validate_id_number(number, today=TODAY)
    assert parsed == IdNumber(number=number, region_code="430802", birth_date=dt.date(1990, 1, 1), gender="male")


def test_published_example_number():
    # The example from GB 11643-1999: a woman born 1949-12-31 in Chaoyang, Beijing.
    parsed = validate_id_number("11010519491231002X", today=TODAY)
    assert (parsed.region_code, parsed.birth_date, parsed.gender) == ("110105", dt.date(1949, 12, 31), "female")
    assert compute_check_digit("11010519491231002") == "X"


def test_gender_from_seventeenth_digit():
    assert validate_id_number(make_id_number(seq="124"), today=TODAY).gender == "female"
    assert validate_id_number(make_id_number(seq="001"), today=TODAY).gender == "male"
    assert validate_id_number(make_id_number(seq="000"), today=TODAY).gender == "female"


def test_lower_case_x_accepted_and_normalised():
    number = x_number()
    parsed = validate_id_number(number.lower(), today=TODAY)
    assert parsed.number == number
    assert parsed.number.endswith("X")


def test_surrounding_whitespace_stripped():
    number = make_id_number()
    assert validate_id_number(f"  {number}\n", today=TODAY).number == number


def test_wrong_check_digit():
    number = make_id_number()
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    assert reason_of(wrong) == "check_digit"


def test_every_single_digit_typo_is_caught():
    number = make_id_number()
    for i in range(17):
        for digit in "0123456789":
            if digit == number[i]:
                continue
            typo = number[:i] + digit + number[i + 1 :]
            with pytest.raises(InvalidIdNumber):
                validate_id_number(typo, today=TODAY)


def test_swapped_adjacent_digits_caught_by_check_digit():
    number = make_id_number()  # 4308021990010112 3 -> swap the last two sequence digits
    swapped = number[:15] + number[16] + number[15] + number[17]
    assert reason_of(swapped) == "check_digit"


@pytest.mark.parametrize(
    "birth",
    [
        "19900230",  # Feb 30
        "20230229",  # not a leap year
        "19901301",  # month 13
        "19900001",  # month 0
        "19900100",  # day 0
        "19900431",  # April 31
        "18991231",  # before 1900
        "00000000",
    ],
)
def test_impossible_birth_dates(birth):
    assert reason_of(with_check(f"430802{birth}123")) == "birth_date"


def test_leap_day_accepted():
    assert validate_id_number(with_check("43080220240229123"), today=TODAY).birth_date == dt.date(2024, 2, 29)


def test_birth_date_relative_to_today():
    assert validate_id_number(make_id_number(birth=TODAY), today=TODAY).birth_date == TODAY
    tomorrow = make_id_number(birth=TODAY + dt.timedelta(days=1))
    assert reason_of(tomorrow) == "birth_date"
    assert validate_id_number(tomorrow, today=TODAY + dt.timedelta(days=1))
    assert reason_of(make_id_number(birth=dt.date(2030, 1, 1))) == "birth_date"
    assert validate_id_number(make_id_number(birth=dt.date(1900, 1, 1)), today=TODAY)


@pytest.mark.parametrize("province", range(10, 100))
def test_province_prefixes(province):
    number = make_id_number(region=f"{province}0102")
    if province in MAINLAND_PROVINCES:
        assert validate_id_number(number, today=TODAY).region_code == f"{province}0102"
    else:
        assert reason_of(number) == "region"


def test_mainland_province_table():
    expected = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    expected |= {50, 51, 52, 53, 54, 61, 62, 63, 64, 65}
    assert expected == MAINLAND_PROVINCES


@pytest.mark.parametrize("region", ["990101", "990000", "710101", "910000", "000000", "010101", "430000", "110000"])
def test_bad_regions(region):
    assert reason_of(make_id_number(region=region)) == "region"


@pytest.mark.parametrize("region", ["810000", "820000", "830000"])
def test_hk_macao_taiwan_residence_permits(region):
    assert validate_id_number(make_id_number(region=region), today=TODAY).region_code == region


@pytest.mark.parametrize("region", ["810100", "820001", "831000"])
def test_residence_permit_codes_are_exact(region):
    assert reason_of(make_id_number(region=region)) == "region"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "430802900101123",  # a 15-digit first-generation number
        "43080219900101123",  # 17 digits
        "4308021990010112345",  # 19 digits
        "43080219900101123Y",
        "4308021990X101123X",  # X only allowed last
        "430802-19900101-1234",
        "430802 19900101 1234",
        "４３０８０２１９９００１０１１２３４",  # full-width digits
        "٤٣٠٨٠٢١٩٩٠٠١٠١١٢٣٤",  # Arabic-Indic digits
        "430802199001011234\x00",
        "x" * 10_240,
        "4" * 10_240,
        None,
        430802199001011234,
    ],
)
def test_format_errors(raw):
    assert reason_of(raw) == "format"


def test_error_shape_and_no_echo():
    number = make_id_number()
    bad = number[:17] + ("0" if number[17] != "0" else "1")
    with pytest.raises(InvalidIdNumber) as info:
        validate_id_number(bad, today=TODAY)
    err = info.value
    assert isinstance(err, InvalidInput)
    assert (err.code, err.status) == ("INVALID_ID_NUMBER", 422)
    assert err.details == {"reason": "check_digit"}
    assert "身份证" in err.message
    envelope = str(err.envelope()) + str(err)
    assert bad not in envelope and bad[:14] not in envelope


def test_reasons_have_distinct_chinese_messages():
    messages = {InvalidIdNumber(reason).message for reason in ("format", "region", "birth_date", "check_digit")}
    assert len(messages) == 4
    assert all("身份证" in m for m in messages)


def test_repr_does_not_show_the_number():
    parsed = validate_id_number(make_id_number(), today=TODAY)
    assert parsed.number not in repr(parsed)
    assert "430***********" in repr(parsed)


def test_make_id_number_arguments_checked():
    for kwargs in ({"region": "43080"}, {"region": "43080a"}, {"seq": "12"}, {"seq": "1234"}):
        with pytest.raises(ValueError):
            make_id_number(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_check_digit("1234")
