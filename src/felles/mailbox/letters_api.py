"""Sending digital mail, under /api/mailbox/v1 (machine tokens with `felles:mailbox.send`):
one letter at a time, or batches that are created, filled, then committed.

Documents travel as base64 in JSON; the recipient's number is in the body, never in the
address. Every create takes `Idempotency-Key`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity.guard import Caller, require_scopes
from felles.mailbox import batches
from felles.mailbox import letters as L
from felles.mailbox.models import Letter
from felles.mailbox.runtime import mailbox
from felles.mailbox.sending import UnknownPerson, public_status, send
from felles.registry.numbers import InvalidNumber, parse_pid
from felles.web.idempotency import once, request_fingerprint
from felles.web.problems import ProblemError, problem_doc

SEND_SCOPE = "felles:mailbox.send"
ID_PATTERN = r"^[0-9a-f-]{36}$"
# A letter's documents may be 10 MB; base64 adds a third, JSON a little.
LETTER_BODY_BYTES = 14_500_000
BATCH_BODY_BYTES = 64_000_000
# Shown or kept as text: no control characters (PostgreSQL refuses NUL in text outright).
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
UPLOAD_PATHS = (
    (re.compile(r"^/api/mailbox/v1/letters$"), LETTER_BODY_BYTES),
    (re.compile(r"^/api/mailbox/v1/batches/[0-9a-f-]{36}/letters$"), BATCH_BODY_BYTES),
)
router = APIRouter(prefix="/api/mailbox/v1", tags=["mailbox"])

Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {
    401: problem_doc("No valid access token (see WWW-Authenticate)"),
    403: problem_doc(f"The token lacks {SEND_SCOPE}, or has no organisation"),
}
INVALID: Responses = {422: problem_doc("Invalid input; `errors` names the field")}
NOT_FOUND: Responses = {404: problem_doc("Nothing of yours by that id")}
CONFLICT: Responses = {
    409: problem_doc("The batch's state does not allow this, or a key was reused")
}
TOO_LARGE: Responses = {413: problem_doc("The request body is larger than allowed")}


async def _sender(caller: Annotated[Caller, Depends(require_scopes(SEND_SCOPE))]) -> Caller:
    if not caller.orgnr:
        raise ProblemError("forbidden", "Only an organisation's machine token can send mail")
    return caller


Sender = Annotated[Caller, Depends(_sender)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (1-200 characters): a retry with the same key and "
        "body gets the first answer instead of sending twice",
    ),
]
LetterId = Annotated[str, Path(pattern=ID_PATTERN, description="The letter's id")]
BatchId = Annotated[str, Path(pattern=ID_PATTERN, description="The batch's id")]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=L.MAX_NAME, pattern=NO_CONTROLS, description="File name, shown"
    )
    type: Literal["application/pdf"] = Field("application/pdf", description="Only PDF")
    content_base64: str = Field(description="The file's bytes in base64 (RFC 4648 section 4)")


class LetterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(description="The person's national identity number (11 digits)")
    title: str = Field(
        min_length=1, max_length=L.MAX_TITLE, pattern=NO_CONTROLS, description="Shown in the inbox"
    )
    document: DocumentIn = Field(description="The letter itself (PDF)")
    attachments: list[DocumentIn] = Field(
        default_factory=list, max_length=L.MAX_ATTACHMENTS, description="More PDFs"
    )
    sender_ref: str | None = Field(
        None, max_length=200, pattern=NO_CONTROLS, description="Your own reference"
    )
    sensitivity: Literal["normal", "sensitive"] = Field(
        "normal",
        description="`sensitive` needs login at level high to open; `normal` substantial",
    )
    notify: bool = Field(True, description="Tell the person by e-mail and SMS")
    repeat_after_days: int | None = Field(
        7,
        ge=1,
        le=L.MAX_REPEAT_DAYS,
        description="Remind again this many days later if unopened (null: no reminder)",
    )
    print_allowed: bool = Field(
        True, description="Send on paper to people without a digital mailbox"
    )
    visible_from: datetime | None = Field(
        None, description="Not shown before this time (with its offset; at most a year ahead)"
    )


class Sent(BaseModel):
    id: str = Field(description="The letter's id")
    channel: L.Channel = Field(description="`digital`, `print`, or `none` (see reason)")
    reason: L.Reason | None = Field(
        None, description="Why print or none: reserved, no_mailbox, not_registered, ..."
    )
    status: L.Status = Field(description="Where the letter is now")


class LetterStatus(Sent):
    sender_ref: str | None
    batch_id: str | None
    notification_failed: bool = Field(description="No notification could be delivered")
    created_at: datetime
    delivered_at: datetime | None
    notified_at: datetime | None
    opened_at: datetime | None
    printed_at: datetime | None
    failed_at: datetime | None


class LetterPage(BaseModel):
    letters: list[LetterStatus]
    next: str | None = Field(description="Pass as `after` for the next page")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(
        min_length=1,
        max_length=200,
        pattern=NO_CONTROLS,
        description="Your own name for it, unique among yours",
    )


class BatchOut(BaseModel):
    id: str
    reference: str
    status: Literal["open", "committed", "released", "cancelled"]
    letters: int = Field(description="Letters stored in it")
    created_at: datetime
    committed_at: datetime | None
    released_at: datetime | None
    cancelled_at: datetime | None
    channels: dict[str, int] | None = Field(None, description="Letters per channel")
    statuses: dict[str, int] | None = Field(None, description="Letters per status")


class BatchLetterIn(LetterIn):
    line: int = Field(ge=0, le=100_000_000, description="The letter's line in the batch")


class BatchLettersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    letters: list[BatchLetterIn] = Field(
        min_length=1, max_length=batches.MAX_LETTERS_PER_CALL, description="At most 1,000"
    )


class BatchLetterOut(BaseModel):
    line: int
    id: str
    channel: L.Channel
    reason: L.Reason | None


class BatchLettersOut(BaseModel):
    letters: list[BatchLetterOut]


def _document(new: DocumentIn, where: str) -> L.Document:
    try:
        content = base64.b64decode(new.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ProblemError("validation", "Not valid base64", field=where) from None
    return L.Document(new.name, content, new.type)


def _letter(new: LetterIn, where: str = "") -> L.LetterIn:
    try:
        pid = parse_pid(new.recipient).value
    except InvalidNumber:
        raise ProblemError(
            "invalid-number",
            "The recipient is not a valid national identity number",
            field=f"{where}recipient",
        ) from None
    return L.LetterIn(
        recipient=pid,
        title=new.title,
        main=_document(new.document, f"{where}document.content_base64"),
        attachments=tuple(
            _document(a, f"{where}attachments[{i}].content_base64")
            for i, a in enumerate(new.attachments)
        ),
        sender_ref=new.sender_ref,
        sensitivity=new.sensitivity,
        notify=new.notify,
        repeat_after_days=new.repeat_after_days,
        print_allowed=new.print_allowed,
        visible_from=new.visible_from,
    )


@contextmanager
def _as_problems() -> Iterator[None]:
    try:
        yield
    except L.LetterRefused as refused:
        # The domain names a document's bytes `content`; the sender sent `content_base64`.
        field = re.sub(r"\.content$", ".content_base64", refused.field)
        raise ProblemError("validation", refused.message, field=field) from None
    except UnknownPerson as unknown:
        raise ProblemError(
            "unknown-recipient",
            "Nobody in the population register has this number",
            field=unknown.field,
        ) from None
    except batches.BatchNotFound:
        raise ProblemError("not-found", "You have no batch with this id") from None
    except batches.BatchConflict as exc:
        raise ProblemError("conflict", str(exc)) from None


async def _once(
    request: Request,
    caller: Caller,
    key: str | None,
    payload: Any,
    create: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    rt = await mailbox(request)
    return await once(
        rt.db,
        caller=caller.client_id,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, payload),
        create=create,
    )


@router.post(
    "/letters",
    status_code=201,
    response_model=Sent,
    summary="Send a letter to one person",
    responses={**AUTH, **INVALID, **CONFLICT, **TOO_LARGE},
)
async def send_letter(
    new: LetterIn, request: Request, caller: Sender, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Looks the person up, chooses the channel (their digital mailbox, print if they
    have none or reserved themselves and you allow it, or none with the reason),
    encrypts the documents for whoever delivers them and stores the letter. The answer
    says which channel was chosen. The request may be up to 14.5 MB (10 MB of PDFs)."""
    letter = _letter(new)

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            sent = await send(session, caller.orgnr or "", letter)
        return 201, Sent(
            id=sent.id, channel=sent.channel, reason=sent.reason, status=sent.status
        ).model_dump(mode="json")

    return await _once(request, caller, idempotency_key, new.model_dump(mode="json"), create)


def _status(row: Letter) -> LetterStatus:
    return LetterStatus.model_validate(public_status(row.__dict__))


@router.get(
    "/letters/{letter_id}",
    response_model=LetterStatus,
    summary="What became of a letter",
    responses={**AUTH, **NOT_FOUND},
)
async def letter_status(letter_id: LetterId, request: Request, caller: Sender) -> LetterStatus:
    """Its channel and status (accepted, delivered, notified, opened, printed, failed),
    and when each step happened."""
    rt = await mailbox(request)
    async with rt.db.session() as session:
        row = await session.get(Letter, letter_id)
        if row is None or row.sender_orgnr != caller.orgnr:
            raise ProblemError("not-found", "You have no letter with this id")
        return _status(row)


@router.get(
    "/letters",
    response_model=LetterPage,
    summary="Your letters, newest last",
    responses={**AUTH, **INVALID},
)
async def list_letters(
    request: Request,
    caller: Sender,
    batch_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    status: L.Status | None = None,
    after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LetterPage:
    """Page through your letters (of one batch, in one status) with `after`."""
    rt = await mailbox(request)
    query = select(Letter).where(Letter.sender_orgnr == caller.orgnr)
    if batch_id:
        query = query.where(Letter.batch_id == batch_id)
    if status:
        query = query.where(Letter.status == status.value)
    if after:
        query = query.where(Letter.id > after)
    async with rt.db.session() as session:
        rows = list(await session.scalars(query.order_by(Letter.id).limit(limit)))
    return LetterPage(
        letters=[_status(r) for r in rows], next=rows[-1].id if len(rows) == limit else None
    )


async def _batch_out(session: AsyncSession, record: batches.BatchRecord) -> BatchOut:
    counted = await batches.counts(session, record.id)
    return BatchOut(
        id=record.id,
        reference=record.reference,
        status=record.status,
        letters=record.letters,
        created_at=record.created_at,
        committed_at=record.committed_at,
        released_at=record.released_at,
        cancelled_at=record.cancelled_at,
        channels=counted["channels"],
        statuses=counted["statuses"],
    )


@router.post(
    "/batches",
    status_code=201,
    response_model=BatchOut,
    summary="Create a batch",
    responses={**AUTH, **INVALID, **CONFLICT},
)
async def create_batch(
    new: BatchIn, request: Request, caller: Sender, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """An open batch to fill with letters; nothing is delivered until you commit it."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            record = await batches.create(session, caller.orgnr or "", new.reference)
        return 201, (await _batch_out(session, record)).model_dump(mode="json")

    return await _once(request, caller, idempotency_key, new.model_dump(), create)


@router.get(
    "/batches/{batch_id}",
    response_model=BatchOut,
    summary="A batch and its letters per channel and status",
    responses={**AUTH, **NOT_FOUND},
)
async def get_batch(batch_id: BatchId, request: Request, caller: Sender) -> BatchOut:
    rt = await mailbox(request)
    async with rt.db.session() as session:
        with _as_problems():
            return await _batch_out(
                session, await batches.get(session, caller.orgnr or "", batch_id)
            )


@router.post(
    "/batches/{batch_id}/letters",
    response_model=BatchLettersOut,
    summary="Add up to 1,000 letters to an open batch",
    responses={**AUTH, **NOT_FOUND, **INVALID, **CONFLICT, **TOO_LARGE},
)
async def fill_batch(
    batch_id: BatchId,
    new: BatchLettersIn,
    request: Request,
    caller: Sender,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Each letter has its `line` in the batch (unique): a line sent again is a
    conflict, so a retried upload never stores a letter twice. All letters of a call
    are stored, or none (the first bad one is named by its line). Up to 64 MB."""
    items = [(item.line, _letter(item, f"letters[{item.line}].")) for item in new.letters]
    if len({line for line, _ in items}) != len(items):
        raise ProblemError("validation", "Two letters have the same line", field="letters")

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            filled = await batches.fill(session, caller.orgnr or "", batch_id, items)
        return 200, BatchLettersOut(
            letters=[
                BatchLetterOut(line=f.seq, id=f.id, channel=f.channel, reason=f.reason)
                for f in filled
            ]
        ).model_dump(mode="json")

    return await _once(request, caller, idempotency_key, new.model_dump(mode="json"), create)


@router.post(
    "/batches/{batch_id}/commit",
    response_model=BatchOut,
    summary="Release all the batch's letters",
    responses={**AUTH, **NOT_FOUND, **CONFLICT},
)
async def commit_batch(batch_id: BatchId, request: Request, caller: Sender) -> BatchOut:
    """The batch's letters are delivered together shortly after (status `committed`,
    then `released`, with the event `batch.released`). Committing twice is harmless."""
    rt = await mailbox(request)
    async with rt.db.session() as session:
        with _as_problems():
            record = await batches.commit(session, caller.orgnr or "", batch_id)
        out = await _batch_out(session, record)
    rt.nudge()
    return out


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchOut,
    summary="Cancel an open batch",
    responses={**AUTH, **NOT_FOUND, **CONFLICT},
)
async def cancel_batch(batch_id: BatchId, request: Request, caller: Sender) -> BatchOut:
    """Its letters are dropped; nobody ever sees them."""
    rt = await mailbox(request)
    async with rt.db.session() as session:
        with _as_problems():
            record = await batches.cancel(session, caller.orgnr or "", batch_id)
        return await _batch_out(session, record)
