"""Bulk mailings: a batch is created, filled with letters, then committed (all its letters
are released together) or cancelled before that.

Filling seals and stores each letter at once (nothing readable is kept while a batch
waits); its letters stay `accepted`, with no notifications yet. Each letter has its
line number in the batch (`seq`, unique), so an upload that crashed resumes after the
last line stored and never stores a line twice. Release runs in the worker, a chunk of
letters per transaction: a chunk is released (delivered, notifications made) entirely or
not at all, so a worker killed mid-batch leaves nothing half done and a restarted one
carries on with the letters still `accepted`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database, dialect_name, insert_many
from felles.mailbox import letters as L
from felles.mailbox.mailbox_events import batch_changed, letter_changed
from felles.mailbox.models import Batch, Letter, Notification
from felles.mailbox.sending import (
    Prepared,
    UnknownPerson,
    certificates,
    notifications_due,
    prepare,
    reach,
    sender_name,
    store_many,
    utc,
)
from felles.registry.models import ContactInfo

_NOTIFICATIONS = cast(Table, Notification.__table__)
RELEASE_CHUNK = 5_000
RELEASERS = 2  # PostgreSQL: chunks released side by side (one left a core idle)
MAX_LETTERS_PER_CALL = 1_000


class BatchNotFound(LookupError):
    pass


class BatchConflict(ValueError):
    """The batch is not in a state that allows this (say, filling a committed batch)."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    reference: str
    status: str
    letters: int
    created_at: datetime
    committed_at: datetime | None
    released_at: datetime | None
    cancelled_at: datetime | None

    @classmethod
    def of(cls, row: Batch) -> BatchRecord:
        return cls(
            row.id,
            row.reference,
            row.status,
            row.letters,
            row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
            utc(row.committed_at),
            utc(row.released_at),
            utc(row.cancelled_at),
        )


async def create(session: AsyncSession, sender_orgnr: str, reference: str) -> BatchRecord:
    """A new open batch; a sender's references are unique (the existing batch with that
    reference is a conflict)."""
    row = Batch(
        id=L.new_id(),
        sender_orgnr=sender_orgnr,
        reference=reference,
        status="open",
        letters=0,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise BatchConflict(f"You already have a batch called {reference!r}") from None
    return BatchRecord.of(row)


async def find(session: AsyncSession, sender_orgnr: str, reference: str) -> BatchRecord | None:
    row = await session.scalar(
        select(Batch).where(Batch.sender_orgnr == sender_orgnr, Batch.reference == reference)
    )
    return BatchRecord.of(row) if row else None


async def _row(
    session: AsyncSession, sender_orgnr: str, batch_id: str, lock: bool | Literal["share"]
) -> Batch:
    """The batch, locked against a concurrent commit or cancel if `lock`: for changing
    its state (`True`), or (`"share"`, on PostgreSQL) for adding letters, which several
    transactions may do at once; a commit or cancel waits for them."""
    query = select(Batch).where(Batch.id == batch_id, Batch.sender_orgnr == sender_orgnr)
    if lock:
        # Read it again even if this session has it: a status checked before sealing may
        # have changed since (a concurrent commit or cancel).
        query = query.execution_options(populate_existing=True)
        if dialect_name(session) == "postgresql":
            share = lock == "share"  # FOR KEY SHARE; FOR UPDATE otherwise
            query = query.with_for_update(read=share, key_share=share)
        else:
            # SQLite has no row locks, and reads outside a transaction: a write first
            # takes the database's write lock, so what is read next holds until commit.
            await session.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(status=Batch.status)
                .execution_options(synchronize_session=False)
            )
    row = await session.scalar(query)
    if row is None:
        raise BatchNotFound(batch_id)
    return row


async def get(session: AsyncSession, sender_orgnr: str, batch_id: str) -> BatchRecord:
    return BatchRecord.of(await _row(session, sender_orgnr, batch_id, lock=False))


async def counts(session: AsyncSession, batch_id: str) -> dict[str, dict[str, int]]:
    """How many of the batch's letters go each way, and how many are in each status."""
    rows = await session.execute(
        select(Letter.channel, Letter.status, func.count())
        .where(Letter.batch_id == batch_id)
        .group_by(Letter.channel, Letter.status)
    )
    by_channel: dict[str, int] = defaultdict(int)
    by_status: dict[str, int] = defaultdict(int)
    for channel, status, n in rows:
        by_channel[channel] += n
        by_status[status] += n
    return {"channels": dict(by_channel), "statuses": dict(by_status)}


async def next_seq(session: AsyncSession, batch_id: str) -> int:
    """The line to go on with: one after the last line stored."""
    last = await session.scalar(select(func.max(Letter.seq)).where(Letter.batch_id == batch_id))
    return 0 if last is None else last + 1


# A letter's line, the letter, its new id, which way it goes and what the registers said.
Planned = tuple[int, L.LetterIn, str, L.Route, L.Reach]


@dataclass(frozen=True, slots=True)
class Filled:
    seq: int
    id: str
    channel: L.Channel
    reason: L.Reason | None


async def plan(
    session: AsyncSession, items: Sequence[tuple[int, L.LetterIn]]
) -> tuple[list[Planned], dict[str, str], list[int]]:
    """Route every letter of a chunk (one register query): the letters planned, the
    providers' certificates, and the lines whose recipient nobody has (left out)."""
    found = await reach(session, [letter.recipient for _, letter in items])
    certs = await certificates(session)
    usable = L.usable_providers(certs)
    planned, unknown = [], []
    for seq, letter in items:
        who = found.get(letter.recipient)
        if who is None:
            unknown.append(seq)
            continue
        planned.append((seq, letter, L.new_id(), L.route(who, letter.print_allowed, usable), who))
    return planned, certs, unknown


def prepared_rows(
    planned: Sequence[Planned],
    sealed: Sequence[bytes | None],
    *,
    sender_orgnr: str,
    batch_id: str,
) -> list[Prepared]:
    now = datetime.now(UTC)
    return [
        prepare(
            letter,
            letter_id,
            chosen,
            who,
            blob,
            sender_orgnr=sender_orgnr,
            now=now,
            batch_id=batch_id,
            seq=seq,
        )
        for (seq, letter, letter_id, chosen, who), blob in zip(planned, sealed, strict=True)
    ]


async def add_letters(
    session: AsyncSession,
    batch_id: str,
    sender_orgnr: str,
    prepared: Sequence[Prepared],
    *,
    after: Awaitable[object] | None = None,
) -> None:
    """Store a chunk of a batch's letters, if the batch is still open (raises
    `BatchConflict` otherwise, or if a line is already stored).

    `after`: the previous chunk's storing, awaited (and its error raised) before this
    chunk's transaction may end. Chunks are then written side by side but committed in
    order, so what a crash leaves stored is always the file's first lines, and a resume
    goes on from the next one."""
    batch = await _row(session, sender_orgnr, batch_id, lock="share")
    if batch.status != "open":
        raise BatchConflict(f"The batch is {batch.status}; only an open batch takes letters")
    try:
        await store_many(session, prepared)
    except IntegrityError:
        raise BatchConflict("Some of these lines are already in the batch") from None
    if after is not None:
        await after
    await session.execute(
        update(Batch).where(Batch.id == batch_id).values(letters=Batch.letters + len(prepared))
    )


def _seal_lines(
    planned: Sequence[tuple[int, L.LetterIn, str, L.Route, L.Reach]],
    sender: str,
    certs: dict[str, str],
) -> list[bytes | None]:
    """`L.sealed_many` for the lines; a letter that cannot be sealed is refused by its
    line (the first such line refuses the chunk)."""
    results = L.sealed_many([(lt, i, r, w) for _, lt, i, r, w in planned], sender, certs)
    sealed: list[bytes | None] = []
    for (seq, *_), result in zip(planned, results, strict=True):
        if isinstance(result, L.LetterRefused):
            raise L.LetterRefused(f"letters[{seq}].{result.field}", result.message)
        sealed.append(result)
    return sealed


async def fill(
    session: AsyncSession,
    sender_orgnr: str,
    batch_id: str,
    items: Sequence[tuple[int, L.LetterIn]],
) -> list[Filled]:
    """Check, route, seal and store a chunk of letters (the API's way; sealing runs in a
    thread so the server keeps answering)."""
    batch = await _row(session, sender_orgnr, batch_id, lock=False)
    if batch.status != "open":
        raise BatchConflict(f"The batch is {batch.status}; only an open batch takes letters")
    for seq, letter in items:
        try:
            L.check(letter)
        except L.LetterRefused as refused:
            raise L.LetterRefused(f"letters[{seq}].{refused.field}", refused.message) from None
    planned, certs, unknown = await plan(session, items)
    if unknown:
        raise UnknownPerson(f"letters[{unknown[0]}].recipient")
    sender = await sender_name(session, sender_orgnr)
    sealed = await asyncio.to_thread(_seal_lines, planned, sender, certs)
    rows = prepared_rows(planned, sealed, sender_orgnr=sender_orgnr, batch_id=batch_id)
    await add_letters(session, batch_id, sender_orgnr, rows)
    return [Filled(seq, i, r.channel, r.reason) for seq, _, i, r, _ in planned]


async def commit(session: AsyncSession, sender_orgnr: str, batch_id: str) -> BatchRecord:
    """Release the batch's letters (the worker delivers them shortly); committing twice
    is harmless."""
    batch = await _row(session, sender_orgnr, batch_id, lock=True)
    if batch.status in ("committed", "released"):
        return BatchRecord.of(batch)
    if batch.status != "open":
        raise BatchConflict(f"The batch is {batch.status}")
    batch.status, batch.committed_at = "committed", datetime.now(UTC)
    await session.flush()
    return BatchRecord.of(batch)


async def cancel(session: AsyncSession, sender_orgnr: str, batch_id: str) -> BatchRecord:
    """Drop an open batch's letters: nobody ever sees them."""
    batch = await _row(session, sender_orgnr, batch_id, lock=True)
    if batch.status == "cancelled":
        return BatchRecord.of(batch)
    if batch.status != "open":
        raise BatchConflict(f"The batch is {batch.status}; only an open batch can be cancelled")
    await session.execute(delete(Letter).where(Letter.batch_id == batch_id))
    batch.status, batch.cancelled_at = "cancelled", datetime.now(UTC)
    batch.letters = 0  # none are stored any more
    await session.flush()
    await batch_changed(session, batch_id, sender_orgnr, "cancelled", {})
    return BatchRecord.of(batch)


async def release_some(db: Database, limit: int = RELEASE_CHUNK) -> int | None:
    """Release one chunk of a committed batch in one transaction: how many letters were
    released, or None when no batch waits (for this worker). The batch becomes
    `released`, with one event, when none of its letters is left waiting."""
    async with db.session() as session:
        postgresql = dialect_name(session) == "postgresql"
        batch = await session.scalar(
            select(Batch).where(Batch.status == "committed").order_by(Batch.committed_at).limit(1)
        )
        if batch is None:
            return None
        if not postgresql:
            # SQLite: another worker may have chosen it too; under the write lock they
            # take turns, and the second sees what the first released.
            batch = await _row(session, batch.sender_orgnr, batch.id, lock=True)
            if batch.status != "committed":
                return 0
        waiting_in_batch = and_(Letter.batch_id == batch.id, Letter.status == "accepted")
        waiting = (
            select(
                Letter.id,
                Letter.channel,
                Letter.notify,
                Letter.repeat_after_days,
                Letter.visible_from,
                ContactInfo.email.is_not(None),
                ContactInfo.mobile.is_not(None),
            )
            .outerjoin(ContactInfo, ContactInfo.pid == Letter.recipient_pid)
            .where(waiting_in_batch)
            .order_by(Letter.seq)
            .limit(limit)
        )
        if postgresql:  # workers release chunks side by side, each its own letters
            waiting = waiting.with_for_update(skip_locked=True, of=Letter)
        rows = (await session.execute(waiting)).all()
        now = datetime.now(UTC)
        if not rows:
            if postgresql:
                # The last chunks may still be on their way in other transactions:
                # whoever finds nothing left once they are in marks the batch released.
                batch = await _row(session, batch.sender_orgnr, batch.id, lock=True)
                left = await session.scalar(select(Letter.id).where(waiting_in_batch).limit(1))
                if batch.status != "committed" or left is not None:
                    return 0
            batch.status, batch.released_at = "released", now
            went = (await counts(session, batch.id))["channels"]
            await batch_changed(session, batch.id, batch.sender_orgnr, "released", went)
            return 0
        ids = [row.id for row in rows]
        await session.execute(
            update(Letter)
            .where(Letter.id.in_(ids))
            .values(status="delivered", delivered_at=now, notification_failed=False)
            .execution_options(synchronize_session=False)
        )
        # Their notifications, by the contact details the person has now.
        notifications: list[dict[str, Any]] = []
        unreachable: list[str] = []
        for letter_id, channel, notify, days, visible_from, email, mobile in rows:
            made, failed = notifications_due(
                letter_id,
                channel,
                notify,
                email=bool(email),
                mobile=bool(mobile),
                repeat_after_days=days,
                first_due=max(utc(visible_from) or now, now),
            )
            notifications += made
            if failed:
                unreachable.append(letter_id)
        await insert_many(session, _NOTIFICATIONS, notifications)
        if unreachable:  # nobody to tell: the sender hears it now, once per letter
            await session.execute(
                update(Letter)
                .where(Letter.id.in_(unreachable))
                .values(notification_failed=True)
                .execution_options(synchronize_session=False)
            )
            found = await session.execute(
                select(Letter.__table__).where(Letter.id.in_(unreachable))
            )
            for row in found.mappings():
                await letter_changed(session, dict(row), "notification_failed")
        return len(ids)


async def release_all(
    db: Database,
    stop: Callable[[], bool] = lambda: False,
    on_chunk: Callable[[int], None] = lambda released: None,
) -> int:
    """Release chunks until nothing is left (or `stop` says so); how many letters. On
    PostgreSQL `RELEASERS` chunks at a time, each in its own transaction."""
    total = 0

    async def release() -> None:
        nonlocal total
        while not stop():
            released = await release_some(db)
            if released is None:
                return
            if released == 0:
                await asyncio.sleep(0.01)  # another releaser is finishing the batch
            total += released
            on_chunk(released)

    await asyncio.gather(*(release() for _ in range(1 if db.is_sqlite else RELEASERS)))
    return total
