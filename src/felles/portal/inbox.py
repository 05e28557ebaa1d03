"""A party's inbox: forms it has started, what it has sent, and what agencies sent it.

One list, newest first, merged from three tables: drafts not yet submitted, submissions
(each with the portal's own receipt copy folded in, never shown twice) and messages from
agencies. Searching, filtering and paging happen in the database, so a business with
many thousands of messages pages as fast as a person with three.

Only someone allowed to act for the party sees any of it, and of a business's forms only
those of services they may use; everything else is "not found" (never "forbidden").
Nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal import authz
from felles.portal.catalogue import ServiceNotFound
from felles.portal.catalogue import definition as definition_of
from felles.portal.definition import ServiceDefinition
from felles.portal.models import (
    Attachment,
    Draft,
    Message,
    MessageKind,
    ScanStatus,
    Service,
    ServiceVersion,
    Submission,
)
from felles.portal.session import Party

# One arm of the inbox's union: (kind, id, when).
Part = Select[str, str, datetime]
PAGE_SIZE = 25
MAX_WORDS = 10


class NotFound(LookupError):
    """No such message or attachment *for this person and party*: never says which."""


class ItemKind(StrEnum):
    draft = "draft"
    submission = "submission"
    message = "message"


class Show(StrEnum):
    """The inbox's "show" filter."""

    all = "all"
    drafts = "drafts"
    sent = "sent"
    messages = "messages"


@dataclass(frozen=True, slots=True)
class Filters:
    query: str = ""
    show: Show = Show.all
    unread_only: bool = False
    agency: str | None = None  # an agency's organisation number

    @property
    def words(self) -> list[str]:
        return [w for w in self.query.lower().split() if w][:MAX_WORDS]

    @property
    def active(self) -> bool:
        return bool(self.words or self.show is not Show.all or self.unread_only or self.agency)


@dataclass(frozen=True, slots=True)
class InboxItem:
    kind: ItemKind
    id: str
    at: datetime
    service_code: str | None = None
    service_version: int | None = None
    title: str = ""  # a message's title; drafts and submissions show their service's name
    agency_orgnr: str | None = None
    status: str | None = None  # a submission's status, a message's kind
    reference: str | None = None
    unread: bool = False
    confirm_required: bool = False
    confirmed: bool = False
    submission_id: str | None = None


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[InboxItem]
    total: int
    page: int
    pages: int
    unread: int  # unread messages in the whole inbox (not only this page)
    agencies: list[str] = field(default_factory=list)  # orgnrs of senders/owners, for the filter


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_matches(column: Any, word: str) -> ColumnElement[bool]:
    return func.lower(column).like(_like(word), escape="\\")


def _service_matches(code_column: Any, word: str) -> ColumnElement[bool]:
    """The service's names, description, keywords or agency contain `word` (the
    catalogue's search text is lower-cased in Python, so any letter matches)."""
    names = select(Service.code).where(Service.search_text.like(_like(word), escape="\\"))
    matches: ColumnElement[bool] = code_column.in_(names)
    return matches


def _of_party(model: Any, party: Party) -> ColumnElement[bool]:
    return and_(model.party_kind == party.kind.value, model.party_id == party.id)


def _owner_of_draft() -> Any:
    return (
        select(ServiceVersion.owner_orgnr)
        .where(
            ServiceVersion.code == Draft.service_code,
            ServiceVersion.version == Draft.service_version,
        )
        .scalar_subquery()
    )


async def readable_services(session: AsyncSession, pid: str, party: Party) -> set[str] | None:
    """The services whose drafts and submissions `pid` may see for `party`; None means
    all of them (a person acting for themself)."""
    if party.is_person:
        return None
    codes: set[tuple[str, int]] = set()
    for model in (Draft, Submission):
        rows = await session.execute(
            select(model.service_code, model.service_version)
            .where(_of_party(model, party))
            .distinct()
        )
        codes |= {(code, version) for code, version in rows}
    definitions: list[ServiceDefinition] = []
    for code, version in sorted(codes):
        try:
            definitions.append(await definition_of(session, code, version))
        except ServiceNotFound:
            continue
    return await authz.services_allowed(session, pid, party, definitions)


def _drafts(party: Party, f: Filters, services: set[str] | None) -> Part | None:
    if f.show not in (Show.all, Show.drafts) or f.unread_only:
        return None
    where = [_of_party(Draft, party), Draft.submitted_at.is_(None)]
    if services is not None:
        where.append(Draft.service_code.in_(services))
    if f.agency:
        where.append(_owner_of_draft() == f.agency)
    where += [_service_matches(Draft.service_code, w) for w in f.words]
    return select(
        literal(ItemKind.draft.value).label("kind"),
        Draft.id.label("id"),
        Draft.updated_at.label("at"),
    ).where(*where)


def _submissions(party: Party, f: Filters, services: set[str] | None) -> Part | None:
    if f.show not in (Show.all, Show.sent) or f.unread_only:
        return None
    where = [_of_party(Submission, party)]
    if services is not None:
        where.append(Submission.service_code.in_(services))
    if f.agency:
        where.append(Submission.owner_orgnr == f.agency)
    where += [
        or_(
            _service_matches(Submission.service_code, w),
            func.lower(Submission.reference).like(_like(w), escape="\\"),
        )
        for w in f.words
    ]
    return select(
        literal(ItemKind.submission.value).label("kind"),
        Submission.id.label("id"),
        Submission.submitted_at.label("at"),
    ).where(*where)


def _visible_messages(party: Party, services: set[str] | None) -> list[ColumnElement[bool]]:
    """A party's messages, without the receipt copies (shown with their submission) and,
    for a business, without those about services this person may not use."""
    where = [
        _of_party(Message, party),
        or_(Message.kind != MessageKind.receipt.value, Message.submission_id.is_(None)),
    ]
    if services is not None:
        allowed = select(Submission.id).where(Submission.service_code.in_(services))
        where.append(or_(Message.submission_id.is_(None), Message.submission_id.in_(allowed)))
    return where


def _messages(party: Party, f: Filters, services: set[str] | None) -> Part | None:
    if f.show not in (Show.all, Show.messages):
        return None
    where = _visible_messages(party, services)
    if f.unread_only:
        where.append(Message.read_at.is_(None))
    if f.agency:
        where.append(Message.sender_orgnr == f.agency)
    where += [or_(_text_matches(Message.title, w), _text_matches(Message.body, w)) for w in f.words]
    return select(
        literal(ItemKind.message.value).label("kind"),
        Message.id.label("id"),
        Message.created_at.label("at"),
    ).where(*where)


async def _agencies(session: AsyncSession, party: Party, services: set[str] | None) -> list[str]:
    found: set[str] = set()
    found |= set(
        await session.scalars(
            select(Message.sender_orgnr).where(*_visible_messages(party, services)).distinct()
        )
    )
    sent = select(Submission.owner_orgnr).where(_of_party(Submission, party))
    drafts = select(_owner_of_draft()).where(_of_party(Draft, party), Draft.submitted_at.is_(None))
    if services is not None:
        sent = sent.where(Submission.service_code.in_(services))
        drafts = drafts.where(Draft.service_code.in_(services))
    found |= set(await session.scalars(sent.distinct()))
    found |= {o for o in await session.scalars(drafts.distinct()) if o}
    return sorted(found)


async def list_inbox(
    session: AsyncSession, pid: str, party: Party, filters: Filters, page: int = 1
) -> InboxPage:
    """One page of the party's inbox, newest first. The caller has checked that `pid`
    may act for `party` (`authz.may_act_for`)."""
    services = await readable_services(session, pid, party)
    parts = [
        part
        for part in (
            _drafts(party, filters, services),
            _submissions(party, filters, services),
            _messages(party, filters, services),
        )
        if part is not None
    ]
    unread = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(*_visible_messages(party, services), Message.read_at.is_(None))
    )
    agencies = await _agencies(session, party, services)
    if not parts:
        return InboxPage([], 0, 1, 1, int(unread or 0), agencies)
    merged = union_all(*parts).subquery("inbox")
    total = int(await session.scalar(select(func.count()).select_from(merged)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = (
        await session.execute(
            select(merged.c.kind, merged.c.id)
            .order_by(merged.c.at.desc(), merged.c.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    ).all()
    items = await _items(session, [(ItemKind(kind), ident) for kind, ident in rows])
    return InboxPage(items, total, page, pages, int(unread or 0), agencies)


async def _items(session: AsyncSession, keys: Sequence[tuple[ItemKind, str]]) -> list[InboxItem]:
    """The rows behind one page of (kind, id), in that order."""
    wanted: dict[ItemKind, list[str]] = {kind: [] for kind in ItemKind}
    for kind, ident in keys:
        wanted[kind].append(ident)
    found: dict[tuple[ItemKind, str], InboxItem] = {}
    if wanted[ItemKind.draft]:
        rows = await session.execute(
            select(Draft, _owner_of_draft()).where(Draft.id.in_(wanted[ItemKind.draft]))
        )
        for draft, owner in rows:
            found[(ItemKind.draft, draft.id)] = InboxItem(
                ItemKind.draft,
                draft.id,
                _aware(draft.updated_at),
                draft.service_code,
                draft.service_version,
                agency_orgnr=owner,
            )
    if wanted[ItemKind.submission]:
        rows = await session.execute(
            select(Submission).where(Submission.id.in_(wanted[ItemKind.submission]))
        )
        for (sub,) in rows:
            found[(ItemKind.submission, sub.id)] = InboxItem(
                ItemKind.submission,
                sub.id,
                _aware(sub.submitted_at),
                sub.service_code,
                sub.service_version,
                agency_orgnr=sub.owner_orgnr,
                status=sub.status,
                reference=sub.reference,
                submission_id=sub.id,
            )
    if wanted[ItemKind.message]:
        rows = await session.execute(
            select(Message).where(Message.id.in_(wanted[ItemKind.message]))
        )
        for (msg,) in rows:
            found[(ItemKind.message, msg.id)] = InboxItem(
                ItemKind.message,
                msg.id,
                _aware(msg.created_at),
                title=msg.title,
                agency_orgnr=msg.sender_orgnr,
                status=msg.kind,
                unread=msg.read_at is None,
                confirm_required=msg.confirm_required,
                confirmed=msg.confirmed_at is not None,
                submission_id=msg.submission_id,
            )
    return [found[key] for key in keys if key in found]


# --- one message ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenMessage:
    message: Message
    attachments: list[Attachment]
    submission: Submission | None
    definition: ServiceDefinition | None  # of the related submission's service


async def _message_row(session: AsyncSession, message_id: str, pid: str, party: Party) -> Message:
    """The party's message if `pid` may see it, else NotFound (the same for both)."""
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 36:
        raise NotFound(message_id)
    row = await session.get(Message, message_id)
    if row is None or row.party_kind != party.kind.value or row.party_id != party.id:
        raise NotFound(message_id)
    if not (await authz.may_act_for(session, pid, party, "read message")).allowed:
        raise NotFound(message_id)
    if row.submission_id and not party.is_person:
        sub = await session.get(Submission, row.submission_id)
        if sub is not None:
            found = await definition_of(session, sub.service_code, sub.service_version)
            if not (await authz.may_use(session, pid, party, found, "read message")).allowed:
                raise NotFound(message_id)
    return row


async def open_message(
    session: AsyncSession, message_id: str, pid: str, party: Party, *, mark_read: bool = True
) -> OpenMessage:
    """A message, its attachments and related submission; opening it marks it read."""
    row = await _message_row(session, message_id, pid, party)
    if mark_read and row.read_at is None:
        await session.execute(
            update(Message)
            .where(Message.id == row.id, Message.read_at.is_(None))
            .values(read_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        await session.refresh(row)
    attachments = list(
        await session.scalars(
            select(Attachment)
            .where(Attachment.message_id == row.id)
            .order_by(Attachment.created_at, Attachment.filename)
        )
    )
    submission = await session.get(Submission, row.submission_id) if row.submission_id else None
    found = None
    if submission is not None:
        found = await definition_of(session, submission.service_code, submission.service_version)
    return OpenMessage(row, attachments, submission, found)


async def mark_unread(session: AsyncSession, message_id: str, pid: str, party: Party) -> None:
    row = await _message_row(session, message_id, pid, party)
    row.read_at = None


async def confirm_read(session: AsyncSession, message_id: str, pid: str, party: Party) -> bool:
    """Confirm having read a message that asks for it: once only (the first confirmation
    stays; a second click changes nothing). True if this call confirmed it."""
    row = await _message_row(session, message_id, pid, party)
    if not row.confirm_required:
        return False
    at = datetime.now(UTC)
    done = await session.execute(
        update(Message)
        .where(Message.id == row.id, Message.confirmed_at.is_(None))
        .values(confirmed_at=at, confirmed_by=pid, read_at=func.coalesce(Message.read_at, at))
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def attachment(
    session: AsyncSession, message_id: str, attachment_id: str, pid: str, party: Party
) -> Attachment:
    """An attachment of the party's message, with its content; never one found harmful."""
    row = await _message_row(session, message_id, pid, party)
    if not isinstance(attachment_id, str) or len(attachment_id) > 32:
        raise NotFound(attachment_id)
    found = await session.scalar(
        select(Attachment)
        .where(Attachment.id == attachment_id, Attachment.message_id == row.id)
        .execution_options(populate_existing=True)
    )
    if found is None or found.scan_status == ScanStatus.infected.value:
        raise NotFound(attachment_id)
    await session.refresh(found, ["content"])
    return found
