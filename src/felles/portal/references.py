"""Reference numbers a person can read aloud over the phone.

Nine characters in three groups (`K7M-4RX-9TE`) from an alphabet without look-alikes:
no 0/O/Q/D, 1/I/L, 2/Z, 5/S, 6/G, 8/B or U/V/W. The last character is a check
character (weighted sum modulo 19, the alphabet's size, a prime), so any one mistyped or
misheard character, or two swapped neighbours, is caught before any lookup.
"""

from __future__ import annotations

import secrets

ALPHABET = "34679ACEFHJKMNPRTXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
BODY = 8  # random characters: 19**8 ≈ 1.7e10 references


def _check(body: str) -> str:
    total = sum((i + 1) * _VALUE[c] for i, c in enumerate(body))
    return ALPHABET[total % len(ALPHABET)]


def new_reference() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY))
    full = body + _check(body)
    return f"{full[:3]}-{full[3:6]}-{full[6:]}"


def normalise(text: str) -> str | None:
    """A reference as typed or heard (any case, spaces, dashes), or None if it is not one."""
    compact = "".join(c for c in text.upper() if c not in " -")
    if len(compact) != BODY + 1 or any(c not in _VALUE for c in compact):
        return None
    if _check(compact[:BODY]) != compact[BODY]:
        return None
    return f"{compact[:3]}-{compact[3:6]}-{compact[6:]}"
