"""Levels of assurance, as ID-porten names them in `acr_values`."""

from __future__ import annotations

SUBSTANTIAL = "idporten-loa-substantial"
HIGH = "idporten-loa-high"
LEVELS = (SUBSTANTIAL, HIGH)
_RANK = {SUBSTANTIAL: 1, HIGH: 2}


def rank(acr: str) -> int:
    return _RANK.get(acr, 0)


def satisfies(achieved: str, wanted: list[str]) -> bool:
    """An achieved level satisfies a request for any of `wanted` at or below it."""
    if not wanted:
        return rank(achieved) >= 1
    return any(rank(achieved) >= rank(w) for w in wanted if w in _RANK)


def lowest(wanted: list[str]) -> str:
    """The level a person must at least reach for this request."""
    known = [w for w in wanted if w in _RANK]
    return min(known, key=rank) if known else SUBSTANTIAL
