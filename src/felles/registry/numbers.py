"""Norwegian national identity numbers and organisation numbers.

Felles accepts ordinary birth numbers, D-numbers (day + 40) and synthetic numbers
(month + 80, the convention of the national test data service), and generates only
synthetic ones, so demo people can never collide with real people.
"""

from __future__ import annotations

import operator
import random
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

PID_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
PID_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
SYNTHETIC_MONTH_OFFSET = 80
D_NUMBER_DAY_OFFSET = 40


class InvalidNumber(ValueError):
    """A national identity or organisation number that fails validation; says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"Invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


class PidKind(StrEnum):
    birth_number = "birth_number"
    d_number = "d_number"


@dataclass(frozen=True, slots=True)
class Pid:
    """A validated national identity number and what it encodes."""

    value: str
    kind: PidKind
    synthetic: bool
    birth_date: date

    def __str__(self) -> str:
        return self.value

    @property
    def masked(self) -> str:
        return mask_pid(self.value)


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    if len(digits) != len(weights):
        raise ValueError(f"{len(weights)} digits expected")
    # map over builtins, not a generator: this runs for every letter of a bulk mailing.
    remainder = sum(map(operator.mul, map(int, digits), weights)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def pid_check_digits(first9: str) -> str | None:
    """The two check digits for the first nine digits, or None if no valid pair exists."""
    k1 = _mod11(first9, PID_WEIGHTS_1)
    if k1 is None:
        return None
    k2 = _mod11(first9 + str(k1), PID_WEIGHTS_2)
    if k2 is None:
        return None
    return f"{k1}{k2}"


def _century(individual: int, yy: int) -> int | None:
    if individual <= 499:
        return 1900
    if individual <= 749 and yy >= 54:
        return 1800
    if individual >= 500 and yy <= 39:
        return 2000
    if individual >= 900 and yy >= 40:
        return 1900
    return None


def parse_pid(raw: object) -> Pid:
    """Validate a national identity number (11 digits, check digits, real date)."""
    kind_name = "national identity number"
    if not isinstance(raw, str):
        raise InvalidNumber(kind_name, "it must be a string of 11 digits")
    value = raw.strip().replace(" ", "")
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        raise InvalidNumber(kind_name, "it must be exactly 11 digits")
    if pid_check_digits(value[:9]) != value[9:]:
        raise InvalidNumber(kind_name, "the check digits do not match")
    day, month, yy = int(value[0:2]), int(value[2:4]), int(value[4:6])
    kind = PidKind.birth_number
    if day > D_NUMBER_DAY_OFFSET:
        kind, day = PidKind.d_number, day - D_NUMBER_DAY_OFFSET
    synthetic = month > SYNTHETIC_MONTH_OFFSET
    if synthetic:
        month -= SYNTHETIC_MONTH_OFFSET
    century = _century(int(value[6:9]), yy)
    if century is None:
        raise InvalidNumber(kind_name, "the individual number does not fit the birth year")
    try:
        born = date(century + yy, month, day)
    except ValueError:
        raise InvalidNumber(kind_name, "the first six digits are not a real date") from None
    return Pid(value=value, kind=kind, synthetic=synthetic, birth_date=born)


def is_valid_pid(raw: object) -> bool:
    try:
        parse_pid(raw)
    except InvalidNumber:
        return False
    return True


def mask_pid(value: str) -> str:
    """Show the birth date part only (`010199*****`), as logs and pages may."""
    return value[:6] + "*" * max(len(value) - 6, 0)


def _individual_range(year: int) -> range:
    if 1900 <= year <= 1999:
        return range(0, 500)
    if 2000 <= year <= 2039:
        return range(500, 1000)
    if 1854 <= year <= 1899:
        return range(500, 750)
    raise ValueError(f"no individual numbers exist for birth year {year}")


def synthetic_pid(
    born: date, rng: random.Random, *, female: bool | None = None, d_number: bool = False
) -> str:
    """A synthetic national identity number (month + 80) for someone born on `born`.

    The third individual digit is even for women and odd for men, as in real numbers.
    """
    day = born.day + (D_NUMBER_DAY_OFFSET if d_number else 0)
    prefix = f"{day:02d}{born.month + SYNTHETIC_MONTH_OFFSET:02d}{born.year % 100:02d}"
    candidates = _individual_range(born.year)
    for _ in range(1000):
        individual = rng.choice(candidates)
        if female is not None and (individual % 2 == 0) != female:
            individual = individual + 1 if individual + 1 in candidates else individual - 1
        first9 = f"{prefix}{individual:03d}"
        check = pid_check_digits(first9)
        if check is not None:
            return first9 + check
    raise RuntimeError("no valid synthetic number found")  # pragma: no cover


def parse_orgnr(raw: object) -> str:
    """Validate a 9-digit organisation number with its mod-11 check digit."""
    kind_name = "organisation number"
    if not isinstance(raw, str):
        raise InvalidNumber(kind_name, "it must be a string of 9 digits")
    value = raw.strip().replace(" ", "")
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise InvalidNumber(kind_name, "it must be exactly 9 digits")
    if _mod11(value[:8], ORGNR_WEIGHTS) != int(value[8]):
        raise InvalidNumber(kind_name, "the check digit does not match")
    return value


def is_valid_orgnr(raw: object) -> bool:
    try:
        parse_orgnr(raw)
    except InvalidNumber:
        return False
    return True


def synthetic_orgnr(rng: random.Random) -> str:
    """A valid organisation number starting with 3: real ones start with 8 or 9."""
    while True:
        first8 = "3" + "".join(str(rng.randrange(10)) for _ in range(7))
        check = _mod11(first8, ORGNR_WEIGHTS)
        if check is not None:
            return first8 + str(check)
