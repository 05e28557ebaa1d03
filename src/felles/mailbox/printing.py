"""The print queue: letters that go on paper, as the print provider sees them.

A letter routed to `print` was packaged at sending like any other, with the postal
address from the population register inside, and encrypted (CMS EnvelopedData) to the
print queue's certificate. When the print provider fetches it, the package is opened
with the print queue's key (under the data dir's keys/), made into one print-ready PDF
(the address page first, then the documents) and encrypted again, to the print
provider's certificate. Nothing the queue shows names the recipient.

A print letter is in the queue while it is `delivered` and due (`visible_from` has
come: a letter the sender holds back is not posted early either). The print provider
fetches it, prints and posts it, and confirms: the letter becomes `printed`, the sender
hears so once (`letter.printed`), and the encrypted letter is deleted at once, since it
has been posted (see docs/mailbox.md, "Print").
"""

from __future__ import annotations

import asyncio
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pypdf.errors import PyPdfError
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database
from felles.mailbox import cms
from felles.mailbox import letters as L
from felles.mailbox.mailbox_events import letter_changed
from felles.mailbox.models import Letter, LetterContent, MailboxProvider
from felles.mailbox.providers import PRINT_PROVIDER, unseal


class NotInQueue(LookupError):
    """No print letter by this id (unknown, or gone another way), or it was printed
    already and its print document deleted."""


class NotYetInQueue(ValueError):
    """A print letter that is not in the queue yet: its batch is not released, or the
    sender holds it back until `visible_from`."""


class UnknownCursor(LookupError):
    """`after` names no print letter."""


class Unprintable(ValueError):
    """The stored letter cannot be made into a print document (it does not open with the
    print queue's key, or a document in it cannot be read as PDF): Felles' side to fix."""


@dataclass(frozen=True, slots=True)
class Queued:
    """A letter waiting to be printed, as much as the print provider needs to know."""

    id: str
    sender_orgnr: str
    size: int  # of the encrypted print document, in bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Printed:
    id: str
    printed_at: datetime
    first_time: bool  # False when it was confirmed before


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes; Felles stores only UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(Letter.channel == "print", Letter.status == "delivered", Letter.visible_from <= now)


async def queue(
    session: AsyncSession,
    *,
    after: str | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> list[Queued]:
    """The letters to print, oldest first; `after` is the last id of the previous page.
    Letters leave the queue as they are confirmed, so a print provider that has worked
    through a page may as well start again from the beginning."""
    now = now or datetime.now(UTC)
    query = select(Letter.id, Letter.sender_orgnr, Letter.size, Letter.created_at).where(_due(now))
    if after is not None:
        cursor = (
            await session.execute(
                select(Letter.created_at).where(Letter.id == after, Letter.channel == "print")
            )
        ).first()
        if cursor is None:
            raise UnknownCursor(after)
        query = query.where(
            or_(
                Letter.created_at > cursor.created_at,
                and_(Letter.created_at == cursor.created_at, Letter.id > after),
            )
        )
    rows = await session.execute(query.order_by(Letter.created_at, Letter.id).limit(limit))
    return [
        Queued(id=i, sender_orgnr=orgnr, size=size, created_at=_utc(created))
        for i, orgnr, size, created in rows
    ]


async def waiting(session: AsyncSession, now: datetime | None = None) -> int:
    """How many letters are in the queue."""
    return await session.scalar(select(func.count()).where(_due(now or datetime.now(UTC)))) or 0


def _refuse(
    letter_id: str,
    channel: str | None,
    status: str | None = None,
    visible_from: datetime | None = None,
    now: datetime | None = None,
) -> NotInQueue | NotYetInQueue:
    """Why a letter (None: unknown) is not in the queue."""
    if channel != "print" or status is None or visible_from is None or now is None:
        return NotInQueue(f"There is no letter to print with the id {letter_id}")
    if status == "printed":
        return NotInQueue("This letter was printed; its print document has been deleted")
    if status == "accepted":
        return NotYetInQueue("This letter waits for its batch to be committed and released")
    if _utc(visible_from) > now:
        return NotYetInQueue(
            f"The sender holds this letter back until {_utc(visible_from).isoformat()}"
        )
    return NotInQueue(f"This letter is {status}, not waiting to be printed")


async def sealed_letter(
    session: AsyncSession, letter_id: str, now: datetime | None = None
) -> bytes:
    """The letter as stored (its package, encrypted to the print queue's certificate):
    raises `NotInQueue` or `NotYetInQueue` unless the letter is in the queue."""
    now = now or datetime.now(UTC)
    row = (
        await session.execute(
            select(Letter.channel, Letter.status, Letter.visible_from, LetterContent.cms)
            .outerjoin(LetterContent, LetterContent.letter_id == Letter.id)
            .where(Letter.id == letter_id)
        )
    ).first()
    if row is None:
        raise _refuse(letter_id, None)
    channel, status, visible_from, sealed = row
    if channel != "print" or status != "delivered" or _utc(visible_from) > now or sealed is None:
        raise _refuse(letter_id, channel, status, visible_from, now)
    return bytes(sealed)


@lru_cache(maxsize=4)
def _key(path: Path, modified_ns: int) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


def queue_key(keys_dir: Path) -> rsa.RSAPrivateKey:
    """The print queue's private key, read once per process (raises FileNotFoundError:
    it is made with the certificate, at first use, never here)."""
    path = keys_dir / f"mailbox-{PRINT_PROVIDER}.key"
    return _key(path, path.stat().st_mtime_ns)


def print_document(sealed: bytes, key: rsa.RSAPrivateKey, certificate_pem: str) -> bytes:
    """CPU work, for a worker thread: open the stored letter with the print queue's key,
    make the print-ready PDF (address page first) and seal it to the print provider's
    certificate. Raises `Unprintable`."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    try:
        package = unseal(sealed, key, certificate)
        pdf = L.print_document(L.unpack(package))
    except (cms.CmsError, zipfile.BadZipFile, PyPdfError, KeyError, ValueError) as exc:
        raise Unprintable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    return cms.encrypt(pdf, L.recipient_for(certificate_pem))


async def document(
    db: Database, letter_id: str, keys_dir: Path, now: datetime | None = None
) -> bytes:
    """The letter's print document for the print provider: the print-ready PDF as CMS
    EnvelopedData (DER) to its certificate, made now in a worker thread (the database
    session is closed by then). Raises `NotInQueue`, `NotYetInQueue` or `Unprintable`."""
    async with db.session() as session:
        sealed = await sealed_letter(session, letter_id, now)
        pem = await certificate_pem(session)
    if pem is None:
        raise Unprintable("The print provider has no certificate")
    try:
        return await asyncio.to_thread(print_document, sealed, queue_key(keys_dir), pem)
    except Unprintable as exc:
        raise Unprintable(f"Letter {letter_id}: {exc}") from exc


async def confirm_printed(
    session: AsyncSession, letter_id: str, now: datetime | None = None
) -> Printed:
    """The print provider printed and posted the letter: it becomes `printed`, the sender
    gets `letter.printed` once, and the print document is deleted. Confirming again is
    harmless (`first_time` False, no second event); raises `NotInQueue` or
    `NotYetInQueue` for a letter that was never in the queue.

    One conditional UPDATE decides who confirms first: a second confirmation, even at
    the same moment, finds the letter no longer `delivered`."""
    now = now or datetime.now(UTC)
    changed = (
        (
            await session.execute(
                update(Letter)
                .where(Letter.id == letter_id, _due(now))
                .values(status="printed", printed_at=now)
                .returning(
                    Letter.id,
                    Letter.sender_orgnr,
                    Letter.sender_ref,
                    Letter.batch_id,
                    Letter.channel,
                    Letter.reason,
                )
                .execution_options(synchronize_session=False)
            )
        )
        .mappings()
        .first()
    )
    if changed is not None:
        await session.execute(delete(LetterContent).where(LetterContent.letter_id == letter_id))
        await letter_changed(session, dict(changed), "printed")
        return Printed(letter_id, now, first_time=True)
    state = (
        await session.execute(
            select(Letter.channel, Letter.status, Letter.visible_from, Letter.printed_at).where(
                Letter.id == letter_id
            )
        )
    ).first()
    if state is not None and state.channel == "print" and state.status == "printed":
        return Printed(letter_id, _utc(state.printed_at or now), first_time=False)
    if state is None:
        raise _refuse(letter_id, None)
    raise _refuse(letter_id, state.channel, state.status, state.visible_from, now)


async def certificate_pem(session: AsyncSession) -> str | None:
    """The print provider's certificate (PEM) that print documents are sealed to now."""
    return await session.scalar(
        select(MailboxProvider.certificate_pem).where(MailboxProvider.name == PRINT_PROVIDER)
    )
