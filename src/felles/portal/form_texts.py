"""What a person reads when an answer is not right: one plain sentence per error code,
with the limit in it where there is one. Marked with N_ and translated when rendered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from felles.portal.forms import FieldError


def N_(message: str) -> str:
    return message


MESSAGES: dict[str, str] = {
    "required": N_("Answer the question “%(label)s”"),
    "choose_one": N_("Choose one of the answers to “%(label)s”"),
    "not_a_whole_number": N_("“%(label)s” must be a whole number, like 12000"),
    "not_a_number": N_("“%(label)s” must be a number, like 12.5"),
    "not_a_date": N_("“%(label)s” must be a real date, like 2027-08-15"),
    "wrong_format": N_("“%(label)s” is not in the right format"),
    "wrong_type": N_("“%(label)s” is not in the right format"),
    "too_short": N_("“%(label)s” must be at least %(minLength)s characters"),
    "too_long": N_("“%(label)s” must be at most %(maxLength)s characters"),
    "too_small": N_("“%(label)s” must be at least %(minimum)s"),
    "too_large": N_("“%(label)s” must be at most %(maximum)s"),
    "too_few_rows": N_("Add at least %(minItems)s line to “%(label)s”"),
    "too_many_rows": N_("“%(label)s” can have at most %(maxItems)s lines"),
}
ROW_PREFIX = N_("Line %(row)s")


def describe(error: FieldError, label: str, gettext: Callable[[str], str]) -> str:
    """The sentence for one error, in the page's language."""
    params: dict[str, Any] = {"label": label, **error.params}
    template = gettext(MESSAGES.get(error.code, MESSAGES["wrong_format"]))
    try:
        text = template % params
    except (KeyError, ValueError, TypeError):
        text = gettext(MESSAGES["wrong_format"]) % {"label": label}
    if error.row is not None:
        text = f"{gettext(ROW_PREFIX) % {'row': error.row}}: {text}"
    return text
