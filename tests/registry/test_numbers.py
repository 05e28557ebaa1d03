"""National identity and organisation numbers: validation and synthetic generation."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from felles.registry.numbers import (
    InvalidNumber,
    PidKind,
    is_valid_orgnr,
    is_valid_pid,
    mask_pid,
    parse_orgnr,
    parse_pid,
    pid_check_digits,
    synthetic_orgnr,
    synthetic_pid,
)

births = st.dates(min_value=date(1854, 1, 1), max_value=date(2039, 12, 31))


@given(born=births, seed=st.integers(0, 2**32), female=st.booleans())
def test_synthetic_numbers_are_valid_and_encode_the_birth_date(
    born: date, seed: int, female: bool
) -> None:
    value = synthetic_pid(born, random.Random(seed), female=female)
    pid = parse_pid(value)
    assert pid.synthetic
    assert pid.kind is PidKind.birth_number
    assert pid.birth_date == born
    assert int(value[2:4]) == born.month + 80
    assert (int(value[8]) % 2 == 0) == female


@given(born=births, seed=st.integers(0, 2**32))
def test_synthetic_d_numbers_add_forty_to_the_day(born: date, seed: int) -> None:
    pid = parse_pid(synthetic_pid(born, random.Random(seed), d_number=True))
    assert pid.kind is PidKind.d_number
    assert pid.synthetic
    assert pid.birth_date == born


@given(
    born=births, seed=st.integers(0, 2**32), position=st.integers(0, 10), delta=st.integers(1, 9)
)
def test_changing_any_single_digit_is_caught(
    born: date, seed: int, position: int, delta: int
) -> None:
    value = synthetic_pid(born, random.Random(seed))
    digit = (int(value[position]) + delta) % 10
    tampered = value[:position] + str(digit) + value[position + 1 :]
    # A changed date digit could still make a valid number only if both check digits
    # also match, which mod 11 rules out for a single substitution.
    assert not is_valid_pid(tampered)


@given(st.text(max_size=20))
def test_arbitrary_text_never_crashes_validation(text: str) -> None:
    try:
        parse_pid(text)
    except InvalidNumber as exc:
        assert exc.kind == "national identity number"
    try:
        parse_orgnr(text)
    except InvalidNumber as exc:
        assert exc.kind == "organisation number"


@given(st.from_type(object).filter(lambda v: not isinstance(v, str)))
@settings(max_examples=30)
def test_wrong_types_are_rejected_clearly(value: object) -> None:
    with pytest.raises(InvalidNumber, match="must be a string"):
        parse_pid(value)
    with pytest.raises(InvalidNumber, match="must be a string"):
        parse_orgnr(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "exactly 11 digits"),
        ("0101991234", "exactly 11 digits"),
        ("010199123456", "exactly 11 digits"),
        ("0101991234a", "exactly 11 digits"),
        ("٠١٠١٩٩١٢٣٤٥", "exactly 11 digits"),  # Arabic-Indic digits are digits, not ASCII
        ("01019912345", "check digits"),
    ],
)
def test_malformed_numbers_say_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason):
        parse_pid(value)


def _with_checks(first9: str) -> str:
    check = pid_check_digits(first9)
    assert check is not None, first9
    return first9 + check


def _first_valid(prefix: str, individuals: range) -> str:
    for individual in individuals:
        check = pid_check_digits(f"{prefix}{individual:03d}")
        if check is not None:
            return f"{prefix}{individual:03d}{check}"
    raise AssertionError("no valid number")


def test_impossible_dates_are_rejected_even_with_valid_check_digits() -> None:
    thirty_first_of_february = _first_valid("318299", range(0, 500))
    with pytest.raises(InvalidNumber, match="not a real date"):
        parse_pid(thirty_first_of_february)
    not_leap = _first_valid("298223", range(500, 1000))  # 29 Feb 2023, synthetic
    with pytest.raises(InvalidNumber, match="not a real date"):
        parse_pid(not_leap)
    leap = _first_valid("298224", range(500, 1000))  # 29 Feb 2024
    assert parse_pid(leap).birth_date == date(2024, 2, 29)


def test_individual_number_decides_the_century() -> None:
    assert parse_pid(_first_valid("010150", range(0, 500))).birth_date.year == 1950
    assert parse_pid(_first_valid("010110", range(500, 1000))).birth_date.year == 2010
    assert parse_pid(_first_valid("010160", range(900, 1000))).birth_date.year == 1960
    assert parse_pid(_first_valid("010160", range(500, 750))).birth_date.year == 1860
    with pytest.raises(InvalidNumber, match="individual number"):
        parse_pid(_first_valid("010145", range(500, 900)))  # 500-899 cannot be 1945 or 2045


def test_known_real_world_shaped_numbers() -> None:
    # Published example numbers from the national test data documentation shape:
    number = _with_checks("010180123")  # 1 Jan 1980, ordinary birth number
    pid = parse_pid(number)
    assert pid.birth_date == date(1980, 1, 1)
    assert not pid.synthetic
    assert parse_pid(f" {number} ").value == number  # surrounding space is forgiven


def test_mask_shows_only_the_birth_date() -> None:
    assert mask_pid("01019912345") == "010199*****"
    assert parse_pid(_with_checks("010180123")).masked == "010180*****"


@given(seed=st.integers(0, 2**32))
def test_synthetic_organisation_numbers_are_valid_and_never_real(seed: int) -> None:
    value = synthetic_orgnr(random.Random(seed))
    assert parse_orgnr(value) == value
    assert value[0] == "3"  # real organisation numbers start with 8 or 9


@given(seed=st.integers(0, 2**32), position=st.integers(0, 8), delta=st.integers(1, 9))
def test_single_digit_errors_in_organisation_numbers_are_caught(
    seed: int, position: int, delta: int
) -> None:
    value = synthetic_orgnr(random.Random(seed))
    tampered = value[:position] + str((int(value[position]) + delta) % 10) + value[position + 1 :]
    assert not is_valid_orgnr(tampered)


@pytest.mark.parametrize("value", ["974760673", "923609016", "991825827"])
def test_real_organisation_numbers_validate(value: str) -> None:
    # Public organisation numbers (Brønnøysundregistrene, Statoil, Digdir).
    assert parse_orgnr(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [("97476067", "exactly 9 digits"), ("974760674", "check digit"), ("97476067x", "9 digits")],
)
def test_bad_organisation_numbers(value: str, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason):
        parse_orgnr(value)
