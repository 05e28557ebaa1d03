"""Seed the synthetic country into the registers, all or nothing.

The country is generated in memory (`felles.demo.generate`, pure and deterministic) and
written with bulk core inserts inside one transaction, so a crash mid-seed leaves no
half country. A lock taken at the start of that transaction makes two processes that
seed at once safe: the second waits, then finds the data (or fails with a clear error).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from felles.db import Database
from felles.demo.generate import Country, Row, iter_country
from felles.registry.models import (
    Agency,
    ContactInfo,
    Organisation,
    Person,
    PersonEvent,
    Relation,
    Role,
)

BATCH_ROWS = 5_000
"""Rows per INSERT round trip: big enough to be fast, small enough to move the bar."""

LOCK_WAIT_SECONDS = 300.0
"""How long a second seeder waits for the first before giving up (SQLite)."""

_ADVISORY_LOCK_KEY = 0x46454C4C4553  # "FELLES": one seeder at a time on PostgreSQL

_TABLES: dict[str, Table] = {
    key: cast(Table, model.__table__)
    for key, model in (
        ("persons", Person),
        ("events", PersonEvent),
        ("relations", Relation),
        ("organisations", Organisation),
        ("roles", Role),
        ("contacts", ContactInfo),
        ("agencies", Agency),
    )
}
NO_SCHEMA = "The database has no registry tables yet. Run `felles db upgrade` first."


class DemoError(RuntimeError):
    """Seeding cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class SeedSummary:
    """What one seeding wrote, and how long it took."""

    persons: int
    organisations: int
    roles: int
    contacts: int
    reserved: int
    agencies: int
    seconds: float

    @property
    def persons_per_second(self) -> float:
        return self.persons / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"Seeded {self.persons:,} people, {self.organisations:,} organisations "
            f"({self.roles:,} roles, {self.agencies} agencies), {self.contacts:,} contact "
            f"entries ({self.reserved:,} reserved against digital mail) in "
            f"{self.seconds:.1f} s ({self.persons_per_second:,.0f} persons/s)."
        )


async def seed_country(
    db: Database, *, persons: int, seed: int, progress: Callable[[int], None] | None = None
) -> SeedSummary:
    """Seed `persons` people (and their businesses, contacts, agencies) into an empty register.

    Raises DemoError when the register already holds people or has no tables yet.
    `progress(done_persons)` is called after every batch written.
    """
    summary = await _seed(db, persons=persons, seed=seed, progress=progress, if_empty=False)
    assert summary is not None
    return summary


async def seed_if_empty(db: Database, *, persons: int, seed: int) -> SeedSummary | None:
    """Seed only when the population register is empty; None when it already has people."""
    if persons < 1:
        raise DemoError("A demo country needs at least one person.")
    try:
        async with db.engine.connect() as conn:
            if await _has_people(conn):  # the usual case on restart: no lock needed
                return None
    except (OperationalError, ProgrammingError) as exc:
        if _no_schema(exc):
            raise DemoError(NO_SCHEMA) from exc
        raise
    return await _seed(db, persons=persons, seed=seed, progress=None, if_empty=True)


async def _seed(
    db: Database,
    *,
    persons: int,
    seed: int,
    progress: Callable[[int], None] | None,
    if_empty: bool,
) -> SeedSummary | None:
    if persons < 1:
        raise DemoError("A demo country needs at least one person.")
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            async with db.engine.begin() as conn:
                await _lock(conn, db.is_sqlite)
                started = time.perf_counter()  # the clock covers seeding, not waiting
                if await _has_people(conn):
                    if if_empty:
                        return None
                    raise DemoError(
                        "The population register already has people in it. Demo data only "
                        "goes into an empty database: point FELLES_DATABASE_URL at a new one."
                    )
                if await _has_organisations(conn):
                    raise DemoError(
                        "The business register already has organisations but no people; "
                        "demo data is not mixed into it. Use an empty database."
                    )
                counts = await _write(conn, persons, seed, progress)
            break
        except (OperationalError, ProgrammingError) as exc:
            if _no_schema(exc):
                raise DemoError(NO_SCHEMA) from exc
            if not (db.is_sqlite and _is_locked(exc)):
                raise
            if time.monotonic() > deadline:
                raise DemoError(
                    "Another process has held the database's write lock for over "
                    f"{LOCK_WAIT_SECONDS:.0f} s; try again when it has finished."
                ) from exc
            await asyncio.sleep(0.5)  # another seeder holds the lock: wait and look again
    return SeedSummary(seconds=time.perf_counter() - started, **counts)


async def _lock(conn: AsyncConnection, is_sqlite: bool) -> None:
    """Take the seeding lock for this transaction, before looking at what is there."""
    if is_sqlite:
        # A write statement (even one touching no rows) takes SQLite's write lock now,
        # not at the first insert, so the emptiness check below cannot go stale.
        await conn.execute(text("DELETE FROM registry_person WHERE 0 = 1"))
    else:
        await conn.execute(select(text("pg_advisory_xact_lock(:key)")), {"key": _ADVISORY_LOCK_KEY})


async def _has_people(conn: AsyncConnection) -> bool:
    return (await conn.scalar(select(Person.pid).limit(1))) is not None


async def _has_organisations(conn: AsyncConnection) -> bool:
    return (await conn.scalar(select(Organisation.orgnr).limit(1))) is not None


async def _write(
    conn: AsyncConnection, persons: int, seed: int, progress: Callable[[int], None] | None
) -> dict[str, int]:
    """Generate the country chunk by chunk and insert it; return what was written."""
    counts = dict.fromkeys(
        ("persons", "organisations", "roles", "contacts", "reserved", "agencies"), 0
    )
    chunks = iter_country(persons, seed)
    while True:
        # Generation is CPU work: keep it off the event loop.
        chunk = await asyncio.to_thread(_next_chunk, chunks)
        if chunk is None:
            break
        done_before = counts["persons"]
        total_rows = max(chunk.row_count, 1)
        written = 0
        for key, rows in chunk.tables():
            for batch in _batches(rows, BATCH_ROWS):
                await _insert_batch(conn, _TABLES[key], batch)
                written += len(batch)
                if progress is not None:
                    progress(done_before + len(chunk.persons) * written // total_rows)
        _count(counts, chunk)
    return counts


def _next_chunk(chunks: Iterator[Country]) -> Country | None:
    return next(chunks, None)


def _count(counts: dict[str, int], chunk: Country) -> None:
    counts["persons"] += len(chunk.persons)
    counts["organisations"] += len(chunk.organisations)
    counts["roles"] += len(chunk.roles)
    counts["contacts"] += len(chunk.contacts)
    counts["reserved"] += sum(1 for c in chunk.contacts if c["reserved"])
    counts["agencies"] += len(chunk.agencies)


def _batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _insert_batch(conn: AsyncConnection, table: Table, rows: Sequence[Row]) -> None:
    """One bulk INSERT (executemany) of plain dicts: no ORM objects, no RETURNING."""
    await conn.execute(insert(table), list(rows))


def _is_locked(exc: Exception) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    return "locked" in message or "busy" in message


def _no_schema(exc: Exception) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in message or ("relation" in message and "does not exist" in message)
