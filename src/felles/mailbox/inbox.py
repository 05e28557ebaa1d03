"""Felles' own digital mailbox, as its owner sees it: the letters in their inbox and
archive, opening one (the provider's private key decrypts it), and what they do with it.

A person sees only letters to themself (`recipient_pid`, whoever they act for in the
portal) delivered digitally to Felles' mailbox, once the sender's batch is released and
the letter's `visible_from` has come, and never one they deleted. Anyone else's letter is
"not found", never "forbidden". Deleting removes the encrypted content for good; the
metadata stays so the sender still sees what became of the letter.

The first opening is the sender's "opened" receipt: `opened_at`, status `opened` and one
`no.felles.mailbox.letter.opened` event, in one transaction, exactly once however many
times (or in how many tabs at once) it is opened. Decrypted content is never stored,
cached or logged. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity import levels
from felles.mailbox import cms, providers
from felles.mailbox.letters import Channel, Opened, Status, unpack
from felles.mailbox.mailbox_events import letter_changed
from felles.mailbox.models import Letter, LetterContent, MailboxProvider
from felles.mailbox.providers import private_key
from felles.registry import service as registry

PROVIDER = "felles"  # Felles' own mailbox provider
PAGE_SIZE = 50
MAX_WORDS = 10
MAX_QUERY = 200
# Only a letter that reached the mailbox can become `opened` (not one printed or failed).
OPENABLE = (Status.delivered.value, Status.notified.value)


class Folder(StrEnum):
    inbox = "inbox"
    archive = "archive"


class NotFound(LookupError):
    """No such letter *for this person*: never says whether it exists at all."""


class StepUpNeeded(Exception):
    """The person's login is below the letter's level: log in again at `level`."""

    def __init__(self, level: str) -> None:
        super().__init__(level)
        self.level = level


class Unreadable(Exception):
    """The letter's content cannot be decrypted or unpacked (damaged, or for another key)."""


@dataclass(frozen=True, slots=True)
class LetterItem:
    """A letter's metadata as its owner sees it (no content)."""

    id: str
    sender_orgnr: str
    title: str
    received_at: datetime
    unread: bool
    folder: Folder
    level: str
    documents: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LetterPage:
    items: list[LetterItem]
    total: int  # letters in this folder that match
    page: int
    pages: int
    unread: int  # unread letters in the inbox (the whole inbox, not only this page)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# When the letter came into the mailbox: a batch's letters only when it was released.
RECEIVED = case(
    (
        and_(Letter.delivered_at.is_not(None), Letter.delivered_at > Letter.visible_from),
        Letter.delivered_at,
    ),
    else_=Letter.visible_from,
)


def _visible(pid: str, now: datetime | None = None) -> list[ColumnElement[bool]]:
    """Letters `pid` may see in Felles' mailbox now."""
    return [
        Letter.recipient_pid == pid,
        Letter.provider == PROVIDER,
        Letter.channel == Channel.digital.value,
        Letter.status != Status.accepted.value,
        Letter.deleted_at.is_(None),
        Letter.visible_from <= (now or datetime.now(UTC)),
    ]


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _title_matches(word: str) -> ColumnElement[bool]:
    """The title contains `word` in any case. SQLite's lower() and LIKE only fold ASCII,
    so "Østfold" is also tried as typed, capitalised and in capitals."""
    forms = {word.lower(), word, word.capitalize(), word.upper()}
    return or_(
        func.lower(Letter.title).like(_like(word.lower()), escape="\\"),
        *(Letter.title.like(_like(form), escape="\\") for form in sorted(forms)),
    )


def words_of(query: str) -> list[str]:
    return [w for w in query[:MAX_QUERY].split() if w][:MAX_WORDS]


async def _senders_named(
    session: AsyncSession, pid: str, words: Sequence[str], lang: str
) -> dict[str, set[str]]:
    """For each word, the person's senders whose name (in the page's language) has it."""
    orgnrs = await session.scalars(select(Letter.sender_orgnr).where(*_visible(pid)).distinct())
    names = {o: (await registry.agency_name(session, o, lang)).casefold() for o in orgnrs}
    return {w: {o for o, name in names.items() if w.casefold() in name} for w in words}


def _item(row: Letter, received_at: datetime) -> LetterItem:
    return LetterItem(
        id=row.id,
        sender_orgnr=row.sender_orgnr,
        title=row.title,
        received_at=_aware(received_at),
        unread=row.read_at is None,
        folder=Folder(row.folder) if row.folder in Folder.__members__ else Folder.inbox,
        level=row.level,
        documents=list(row.documents or []),
    )


async def list_letters(
    session: AsyncSession,
    pid: str,
    *,
    folder: Folder = Folder.inbox,
    query: str = "",
    lang: str = "nb",
    page: int = 1,
) -> LetterPage:
    """One page of a folder, newest first; `query`'s words must each be in the title or
    the sender's name."""
    now = datetime.now(UTC)
    where = [*_visible(pid, now), Letter.folder == folder.value]
    words = words_of(query)
    if words:
        senders = await _senders_named(session, pid, words, lang)
        for word in words:
            matches = _title_matches(word)
            if senders[word]:
                matches = or_(matches, Letter.sender_orgnr.in_(sorted(senders[word])))
            where.append(matches)
    total = int(await session.scalar(select(func.count()).select_from(Letter).where(*where)) or 0)
    unread = await session.scalar(
        select(func.count())
        .select_from(Letter)
        .where(*_visible(pid, now), Letter.folder == Folder.inbox.value, Letter.read_at.is_(None))
    )
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = await session.execute(
        select(Letter, RECEIVED.label("received"))
        .where(*where)
        .order_by(RECEIVED.desc(), Letter.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    items = [_item(letter, received) for letter, received in rows]
    return LetterPage(items, total, page, pages, int(unread or 0))


def _valid_id(letter_id: str) -> bool:
    return isinstance(letter_id, str) and 0 < len(letter_id) <= 36


async def find(session: AsyncSession, pid: str, letter_id: str) -> LetterItem:
    """The person's letter (metadata only), or NotFound."""
    if not _valid_id(letter_id):
        raise NotFound(letter_id)
    found = (
        await session.execute(
            select(Letter, RECEIVED.label("received")).where(Letter.id == letter_id, *_visible(pid))
        )
    ).first()
    if found is None:
        raise NotFound(letter_id)
    return _item(found[0], found[1])


def check_level(letter: LetterItem, acr: str) -> None:
    """Raise StepUpNeeded if a login at `acr` may not open the letter."""
    if not levels.satisfies(acr, [letter.level]):
        raise StepUpNeeded(letter.level)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A letter's metadata and its encrypted content, with the certificate it was for."""

    letter: LetterItem
    content: bytes
    certificate_pem: str


async def sealed(session: AsyncSession, pid: str, letter_id: str, acr: str) -> Sealed:
    """The person's letter with its encrypted content, if their login may open it
    (NotFound, StepUpNeeded)."""
    letter = await find(session, pid, letter_id)
    check_level(letter, acr)
    content = await session.scalar(
        select(LetterContent.cms).where(LetterContent.letter_id == letter.id)
    )
    pem = await session.scalar(
        select(MailboxProvider.certificate_pem).where(MailboxProvider.name == PROVIDER)
    )
    if content is None or pem is None:  # deleted a moment ago, or no provider yet
        raise NotFound(letter_id)
    return Sealed(letter, bytes(content), pem)


@lru_cache(maxsize=4)
def _provider_key(keys_dir: str) -> rsa.RSAPrivateKey:
    """Felles' mailbox key, read once per process (the key, never what it opens)."""
    return private_key(Path(keys_dir), PROVIDER)


def _unseal(content: bytes, certificate_pem: str, keys_dir: str) -> Opened:
    key = _provider_key(keys_dir)
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        return unpack(providers.unseal(content, key, certificate))
    except (cms.CmsError, zipfile.BadZipFile, ValueError, KeyError, TypeError) as error:
        # Only the error's kind: its message could quote the content.
        raise Unreadable(type(error).__name__) from None


async def unseal(found: Sealed, keys_dir: Path) -> Opened:
    """Decrypt and unpack a letter, off the event loop (a letter may be 10 MB)."""
    return await asyncio.to_thread(_unseal, found.content, found.certificate_pem, str(keys_dir))


async def mark_opened(session: AsyncSession, pid: str, letter_id: str) -> bool:
    """The person has opened the letter: it is read, and the first time also `opened`
    (from delivered or notified), with the sender's `letter.opened` event. True if this
    call was the first opening."""
    now = datetime.now(UTC)
    first = (
        await session.execute(
            update(Letter)
            .where(
                Letter.id == letter_id,
                *_visible(pid, now),
                Letter.opened_at.is_(None),
                Letter.status.in_(OPENABLE),
            )
            .values(
                opened_at=now,
                status=Status.opened.value,
                read_at=func.coalesce(Letter.read_at, now),
            )
            .returning(
                Letter.id,
                Letter.sender_orgnr,
                Letter.sender_ref,
                Letter.batch_id,
                Letter.channel,
                Letter.reason,
                Letter.status,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if first is not None:
        await letter_changed(session, dict(first._mapping), Status.opened.value)
        return True
    await _set(session, pid, letter_id, {"read_at": now}, Letter.read_at.is_(None))
    return False


async def _set(
    session: AsyncSession,
    pid: str,
    letter_id: str,
    values: Mapping[str, Any],
    *unless: ColumnElement[bool],
) -> int:
    """Change the person's letter; how many rows changed (0 or 1)."""
    if not _valid_id(letter_id):
        return 0
    done = await session.execute(
        update(Letter)
        .where(Letter.id == letter_id, *_visible(pid), *unless)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


async def _change(
    session: AsyncSession, pid: str, letter_id: str, values: Mapping[str, Any]
) -> LetterItem:
    letter = await find(session, pid, letter_id)
    await _set(session, pid, letter.id, values)
    return letter


async def mark_read(session: AsyncSession, pid: str, letter_id: str) -> LetterItem:
    """Read without opening it: no `opened` receipt for the sender."""
    letter = await find(session, pid, letter_id)
    await _set(session, pid, letter.id, {"read_at": datetime.now(UTC)}, Letter.read_at.is_(None))
    return letter


async def mark_unread(session: AsyncSession, pid: str, letter_id: str) -> LetterItem:
    """Unread again (the sender's receipt stays: it was opened)."""
    return await _change(session, pid, letter_id, {"read_at": None})


async def move(session: AsyncSession, pid: str, letter_id: str, folder: Folder) -> LetterItem:
    return await _change(session, pid, letter_id, {"folder": folder.value})


async def delete_letter(session: AsyncSession, pid: str, letter_id: str) -> LetterItem:
    """Delete for good: the encrypted content is removed, so nobody can open the letter
    again; the metadata stays for the sender's status (and is hidden from the owner)."""
    letter = await find(session, pid, letter_id)
    if not await _set(session, pid, letter.id, {"deleted_at": datetime.now(UTC)}):
        raise NotFound(letter_id)
    await session.execute(delete(LetterContent).where(LetterContent.letter_id == letter.id))
    return letter
