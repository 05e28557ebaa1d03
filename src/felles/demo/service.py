"""PLACEHOLDER being replaced by the demo helper: interface only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from felles.db import Database


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class SeedSummary:
    persons: int
    organisations: int
    roles: int
    contacts: int
    reserved: int
    agencies: int
    seconds: float


async def seed_country(
    db: Database, *, persons: int, seed: int, progress: Callable[[int], None] | None = None
) -> SeedSummary:
    raise DemoError("not yet")


async def seed_if_empty(db: Database, *, persons: int, seed: int) -> SeedSummary | None:
    return None
