"""The agency side of the portal: what an agency's server does with what people sent it.

An agency fetches its submissions (a page at a time), acknowledges that it has them,
answers them with feedback or a decision that lands in the party's inbox, sends
correspondence of its own, sees whether a message was read and confirmed, and publishes
or withdraws its services. Every function takes the caller's organisation number and
sees only that agency's rows: another agency's submission is as missing as a
non-existent one, so ids reveal nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal import catalogue, portal_events
from felles.portal.attachments import AttachmentRefused, check_upload
from felles.portal.definition import Attachments, DefinitionError, parse
from felles.portal.models import (
    Attachment,
    Message,
    MessageKind,
    PartyKind,
    ScanStatus,
    Submission,
    SubmissionStatus,
)
from felles.registry import service as registry
from felles.registry.numbers import parse_orgnr, parse_pid

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10_000_000
MAX_TITLE = 300
MAX_BODY = 100_000
MAX_SENDER_REFERENCE = 100
MAX_PAGE = 500


class NotFound(LookupError):
    """Nothing of the caller's by that id (also when it belongs to another agency)."""


class NotReady(RuntimeError):
    """Something that will exist later (a receipt PDF not rendered yet)."""


class Refused(RuntimeError):
    """The thing exists, but it is not handed out (an attachment found infected)."""


class Invalid(ValueError):
    """Input the domain refuses; `field` names what to fix."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownRecipient(LookupError):
    """The recipient of correspondence is not in the population or business register."""


class NotOwner(PermissionError):
    """A definition whose owner is another agency than the caller."""


# --- Records the API hands out ----------------------------------------------------------


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Party(Record):
    kind: PartyKind = Field(description="`person` (acting for themself) or `organisation`")
    id: str = Field(description="The person's national identity number or the organisation number")


class SubmissionSummary(Record):
    id: str = Field(description="The submission's id (use it in the other calls)")
    reference: str = Field(description="The reference number the party got on the receipt")
    service_code: str = Field(description="The service the form belongs to")
    service_version: int = Field(description="The version of the service the form was filled in")
    party: Party = Field(description="Whom the form was sent for")
    submitted_at: datetime = Field(description="When the party submitted (UTC)")
    status: SubmissionStatus = Field(
        description="`received` (not acknowledged yet), `acknowledged` or `decided`"
    )
    acknowledged_at: datetime | None = Field(
        description="When the agency acknowledged it, if it has"
    )


class SubmissionPage(Record):
    items: list[SubmissionSummary] = Field(description="Oldest first")
    next: str | None = Field(
        description="Pass as `after` to get the next page; null on the last page"
    )


class AttachmentInfo(Record):
    id: str = Field(description="The attachment's id")
    filename: str = Field(description="The file name as the sender gave it (cleaned)")
    content_type: str = Field(description="The type found by looking at the bytes")
    size: int = Field(description="Bytes")
    sha256: str = Field(description="SHA-256 of the content, hex")
    scan_status: ScanStatus = Field(
        description="Virus scan: `pending`, `clean` or `infected` (infected files are not served)"
    )


class MessageInfo(Record):
    id: str = Field(description="The message's id")
    kind: MessageKind = Field(description="`receipt`, `feedback`, `decision` or `correspondence`")
    title: str = Field(description="The message's title")
    created_at: datetime = Field(description="When it was put in the inbox")


class SubmissionRecord(SubmissionSummary):
    submitted_by: str = Field(description="The person who submitted (national identity number)")
    data: dict[str, Any] = Field(description="The answers, as the service's JSON Schema says")
    attachments: list[AttachmentInfo] = Field(description="Files sent with the form")
    receipt_available: bool = Field(description="Whether `receipt.pdf` can be fetched yet")
    messages: list[MessageInfo] = Field(
        description="Messages linked to the submission (receipt, feedback, decision)"
    )


class MessageStatus(Record):
    id: str = Field(description="The message's id")
    kind: MessageKind = Field(description="`feedback`, `decision` or `correspondence`")
    recipient: Party = Field(description="Whose inbox the message is in")
    submission_id: str | None = Field(description="The submission it answers, if any")
    sender_reference: str | None = Field(description="The agency's own reference, if given")
    confirm_required: bool = Field(description="Whether the recipient is asked to confirm it")
    created_at: datetime = Field(description="When it was put in the inbox")
    read_at: datetime | None = Field(description="When the recipient first opened it")
    confirmed_at: datetime | None = Field(description="When the recipient confirmed it")
    attachments: list[AttachmentInfo] = Field(description="Files sent with the message")


class PublishedService(Record):
    code: str = Field(description="The service's code")
    version: int = Field(description="The version now published")
    owner_orgnr: str = Field(description="The owning agency's organisation number")
    created: bool = Field(description="False when this exact version was published already")


@dataclass(frozen=True, slots=True)
class NewAttachment:
    filename: str
    content: bytes


class AnswerKind(StrEnum):
    feedback = "feedback"
    decision = "decision"


# --- Events -----------------------------------------------------------------------------


async def _changed(
    session: AsyncSession, kind: str, submission_or_message: Submission | Message
) -> None:
    """Emit the event of a change in the same transaction as the change itself."""
    if isinstance(submission_or_message, Submission):
        await portal_events.submission_changed(session, kind, submission_or_message)
    else:
        await portal_events.message_created(session, submission_or_message)


# --- Helpers ----------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _summary_fields(row: Submission) -> dict[str, Any]:
    return {
        "id": row.id,
        "reference": row.reference,
        "service_code": row.service_code,
        "service_version": row.service_version,
        "party": Party(kind=PartyKind(row.party_kind), id=row.party_id),
        "submitted_at": _utc(row.submitted_at),
        "status": SubmissionStatus(row.status),
        "acknowledged_at": _utc(row.acknowledged_at),
    }


def _attachment_info(row: Attachment) -> AttachmentInfo:
    return AttachmentInfo(
        id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        scan_status=ScanStatus(row.scan_status),
    )


_CURSOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _encode_cursor(at: datetime, ident: str) -> str:
    text = json.dumps([at.isoformat(), ident], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = json.loads(raw)
        moment = datetime.fromisoformat(at)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        if not isinstance(ident, str) or not _CURSOR_ID.match(ident):
            raise TypeError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise Invalid("Not a cursor this API gave out", field="after") from None
    return moment, ident


async def _own_submission(
    session: AsyncSession, owner_orgnr: str, submission_id: str
) -> Submission:
    row = await session.get(Submission, submission_id)
    if row is None or row.owner_orgnr != owner_orgnr:
        raise NotFound("No submission with that id")
    return row


def _checked_text(value: str, *, field: str, limit: int, multiline: bool) -> str:
    """Text for the inbox: no control characters (PostgreSQL refuses NUL), within limits."""
    allowed = "\n\r\t" if multiline else ""
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise Invalid("Must not contain control characters", field=field)
    if not value.strip():
        raise Invalid("Must not be empty", field=field)
    if len(value) > limit:
        raise Invalid(f"Must be at most {limit} characters", field=field)
    return value


def _message_texts(
    title: str, body: str, sender_reference: str | None
) -> tuple[str, str, str | None]:
    return (
        _checked_text(title, field="title", limit=MAX_TITLE, multiline=False).strip(),
        _checked_text(body, field="body", limit=MAX_BODY, multiline=True),
        None
        if sender_reference is None
        else _checked_text(
            sender_reference,
            field="sender_reference",
            limit=MAX_SENDER_REFERENCE,
            multiline=False,
        ),
    )


# --- Submissions ------------------------------------------------------------------------


async def list_submissions(
    session: AsyncSession,
    owner_orgnr: str,
    *,
    status: SubmissionStatus | None = None,
    service_code: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> SubmissionPage:
    """The agency's submissions, oldest first; `after` is the `next` of the page before.
    Keyset paging (submitted_at, id): stable while new submissions arrive."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Submission).where(Submission.owner_orgnr == owner_orgnr)
    if status is not None:
        query = query.where(Submission.status == status.value)
    if service_code is not None:
        query = query.where(Submission.service_code == service_code)
    if after:
        at, ident = _decode_cursor(after)
        query = query.where(
            or_(
                Submission.submitted_at > at,
                and_(Submission.submitted_at == at, Submission.id > ident),
            )
        )
    query = query.order_by(Submission.submitted_at, Submission.id).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    items = [SubmissionSummary(**_summary_fields(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return SubmissionPage(
        items=items, next=_encode_cursor(last.submitted_at, last.id) if last else None
    )


async def get_submission(
    session: AsyncSession, owner_orgnr: str, submission_id: str
) -> SubmissionRecord:
    """One submission with its answers, attachments' metadata and linked messages."""
    row = await _own_submission(session, owner_orgnr, submission_id)
    attachments = await session.scalars(
        select(Attachment)
        .where(Attachment.submission_id == row.id)
        .order_by(Attachment.created_at, Attachment.id)
    )
    messages = await session.scalars(
        select(Message)
        .where(Message.submission_id == row.id)
        .order_by(Message.created_at, Message.id)
    )
    return SubmissionRecord(
        **_summary_fields(row),
        submitted_by=row.submitted_by,
        data=row.data,
        attachments=[_attachment_info(a) for a in attachments],
        receipt_available=row.receipt_ready_at is not None,
        messages=[
            MessageInfo(
                id=m.id,
                kind=MessageKind(m.kind),
                title=m.title,
                created_at=_utc(m.created_at) or m.created_at,
            )
            for m in messages
        ],
    )


async def attachment_content(
    session: AsyncSession, owner_orgnr: str, submission_id: str, attachment_id: str
) -> tuple[AttachmentInfo, bytes]:
    """A submission's file; an infected one is refused."""
    await _own_submission(session, owner_orgnr, submission_id)
    row = await session.get(Attachment, attachment_id)
    if row is None or row.submission_id != submission_id:
        raise NotFound("No attachment with that id")
    if row.scan_status == ScanStatus.infected.value:
        raise Refused("The file was found infected by the virus scan and is not handed out")
    content = await session.scalar(select(Attachment.content).where(Attachment.id == row.id))
    return _attachment_info(row), content or b""


async def receipt_pdf(session: AsyncSession, owner_orgnr: str, submission_id: str) -> bytes:
    """The receipt as a PDF, once the renderer has made it."""
    await _own_submission(session, owner_orgnr, submission_id)
    pdf = await session.scalar(select(Submission.receipt_pdf).where(Submission.id == submission_id))
    if pdf is None:
        raise NotReady("The receipt has not been made yet; try again in a little while")
    return pdf


async def acknowledge(
    session: AsyncSession, owner_orgnr: str, submission_id: str
) -> SubmissionSummary:
    """Mark a submission as fetched. Again is harmless: the first time stands, and a
    submission already decided keeps its status."""
    row = await _own_submission(session, owner_orgnr, submission_id)
    if row.acknowledged_at is None:
        # A conditional update, so two concurrent acknowledgements agree on the time.
        result = await session.execute(
            update(Submission)
            .where(Submission.id == row.id, Submission.acknowledged_at.is_(None))
            .values(
                acknowledged_at=now(),
                status=_acknowledged_status(row.status),
            )
            .execution_options(synchronize_session=False)
        )
        await session.refresh(row, ["status", "acknowledged_at"])
        if getattr(result, "rowcount", 0):
            await _changed(session, "submission.acknowledged", row)
    return SubmissionSummary(**_summary_fields(row))


def _acknowledged_status(status: str) -> str:
    if status == SubmissionStatus.received.value:
        return SubmissionStatus.acknowledged.value
    return status


async def answer(
    session: AsyncSession,
    owner_orgnr: str,
    submission_id: str,
    *,
    kind: AnswerKind,
    title: str,
    body: str,
    sender_reference: str | None = None,
    confirm_required: bool = False,
) -> MessageStatus:
    """Feedback or a decision in the inbox of the party that submitted. A decision also
    decides the submission (and acknowledges it, if the agency had not)."""
    row = await _own_submission(session, owner_orgnr, submission_id)
    title, body, sender_reference = _message_texts(title, body, sender_reference)
    at = now()
    message = Message(
        id=str(uuid.uuid4()),
        party_kind=row.party_kind,
        party_id=row.party_id,
        kind=MessageKind(kind.value).value,
        sender_orgnr=owner_orgnr,
        submission_id=row.id,
        title=title,
        body=body,
        sender_reference=sender_reference,
        confirm_required=confirm_required,
        created_at=at,
    )
    session.add(message)
    if kind is AnswerKind.decision:
        row.status = SubmissionStatus.decided.value
        if row.acknowledged_at is None:
            row.acknowledged_at = at
    await session.flush()
    await _changed(session, "message.created", message)
    if kind is AnswerKind.decision:
        await _changed(session, "submission.decided", row)
    return _message_status(message, [])


# --- Correspondence ---------------------------------------------------------------------

# What an agency may send with a message: the same checks as a person's uploads.
CORRESPONDENCE_FILES = Attachments(
    types=["application/pdf", "image/png", "image/jpeg", "text/plain"],
    max_bytes=MAX_ATTACHMENT_BYTES,
    max_count=MAX_ATTACHMENTS,
)


def _checked_attachments(files: list[NewAttachment]) -> list[tuple[str, str, bytes]]:
    """Name, type (from the bytes, never the name) and content of each file, or Invalid
    naming the file at fault."""
    if len(files) > MAX_ATTACHMENTS:
        raise Invalid(f"At most {MAX_ATTACHMENTS} attachments", field="attachments")
    checked: list[tuple[str, str, bytes]] = []
    for index, file in enumerate(files):
        try:
            upload = check_upload(file.filename, file.content, CORRESPONDENCE_FILES, index)
        except AttachmentRefused as refused:
            raise Invalid(refused.message("en"), field=f"attachments.{index}") from None
        checked.append((upload.filename, upload.content_type, file.content))
    return checked


async def send_correspondence(
    session: AsyncSession,
    sender_orgnr: str,
    *,
    recipient_kind: PartyKind,
    recipient_id: str,
    title: str,
    body: str,
    sender_reference: str | None = None,
    confirm_required: bool = False,
    attachments: list[NewAttachment] | None = None,
) -> MessageStatus:
    """A message of the agency's own to a person or an organisation in the registers.
    Looking a person up is recorded as the agency's access for correspondence.
    Raises InvalidNumber for a malformed number, UnknownRecipient for a missing one."""
    title, body, sender_reference = _message_texts(title, body, sender_reference)
    files = _checked_attachments(attachments or [])
    if recipient_kind is PartyKind.person:
        number = parse_pid(recipient_id).value
        access = registry.Access(accessed_by=sender_orgnr, purpose="correspondence")
        if not await registry.person_exists(session, number, access):
            raise UnknownRecipient("No person with that national identity number")
    else:
        number = parse_orgnr(recipient_id)
        try:
            await registry.get_organisation(session, number)
        except registry.NotFound:
            raise UnknownRecipient("No organisation with that organisation number") from None
    at = now()
    message = Message(
        id=str(uuid.uuid4()),
        party_kind=recipient_kind.value,
        party_id=number,
        kind=MessageKind.correspondence.value,
        sender_orgnr=sender_orgnr,
        submission_id=None,
        title=title,
        body=body,
        sender_reference=sender_reference,
        confirm_required=confirm_required,
        created_at=at,
    )
    session.add(message)
    rows = [
        Attachment(
            id=secrets.token_hex(16),
            message_id=message.id,
            filename=filename,
            content_type=kind,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            scan_status=ScanStatus.pending.value,
            # A microsecond apart: the files are listed in the order they were sent.
            created_at=at + timedelta(microseconds=index),
        )
        for index, (filename, kind, content) in enumerate(files)
    ]
    session.add_all(rows)
    await session.flush()
    await _changed(session, "message.created", message)
    return _message_status(message, rows)


def _message_status(message: Message, attachments: list[Attachment]) -> MessageStatus:
    return MessageStatus(
        id=message.id,
        kind=MessageKind(message.kind),
        recipient=Party(kind=PartyKind(message.party_kind), id=message.party_id),
        submission_id=message.submission_id,
        sender_reference=message.sender_reference,
        confirm_required=message.confirm_required,
        created_at=_utc(message.created_at) or message.created_at,
        read_at=_utc(message.read_at),
        confirmed_at=_utc(message.confirmed_at),
        attachments=[_attachment_info(a) for a in attachments],
    )


async def message_status(
    session: AsyncSession, sender_orgnr: str, message_id: str
) -> MessageStatus:
    """Whether a message the agency sent has been read and confirmed."""
    message = await session.get(Message, message_id)
    if message is None or message.sender_orgnr != sender_orgnr:
        raise NotFound("No message with that id")
    attachments = await session.scalars(
        select(Attachment)
        .where(Attachment.message_id == message.id)
        .order_by(Attachment.created_at, Attachment.id)
    )
    return _message_status(message, list(attachments))


# --- Services ---------------------------------------------------------------------------


def _unstorable(text: str) -> bool:
    """NUL (PostgreSQL's text refuses it) or a lone surrogate (not encodable as UTF-8)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_problems(value: Any, pointer: str = "") -> list[str]:
    """Strings in a document that no database can store as text."""
    where = pointer.lstrip("/") or "(top)"
    if isinstance(value, str):
        found_here = _unstorable(value)
        return [f"{where}: contains NUL or unpaired surrogate characters"] if found_here else []
    if isinstance(value, dict):
        found: list[str] = []
        for key, item in value.items():
            if _unstorable(str(key)):
                found.append(f"{where}: a key contains NUL or unpaired surrogate characters")
            else:
                found += _text_problems(item, f"{pointer}/{key}")
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _text_problems(item, f"{pointer}/{i}")]
    return []


async def publish(
    session: AsyncSession, owner_orgnr: str, document: Any, *, published_by: str
) -> PublishedService:
    """Publish a definition whose owner is the calling agency (by slug or number).
    DefinitionError lists every problem; NotOwner when it names another agency."""
    unstorable = _text_problems(document)
    if unstorable:
        raise DefinitionError(unstorable)
    definition = parse(document)
    try:
        agency = await registry.get_agency(session, definition.owner)
    except registry.NotFound:
        raise DefinitionError([f"owner: no agency {definition.owner!r}"]) from None
    if agency.orgnr != owner_orgnr:
        raise NotOwner("The definition's owner is another agency; publish only your own")
    published = await catalogue.publish(session, document, published_by=published_by)
    return PublishedService(
        code=published.code,
        version=published.version,
        owner_orgnr=published.owner_orgnr,
        created=published.created,
    )


async def withdraw(session: AsyncSession, owner_orgnr: str, code: str) -> None:
    """Take the agency's service out of the catalogue (someone else's is NotFound)."""
    try:
        await catalogue.withdraw(session, code, owner_orgnr)
    except catalogue.ServiceNotFound:
        raise NotFound("No service of yours with that code in the catalogue") from None
