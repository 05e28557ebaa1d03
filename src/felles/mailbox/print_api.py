"""The print queue for the print provider, under /api/mailbox/v1/print (machine tokens
with `felles:mailbox.print`: any organisation granted it prints and posts letters).

The provider lists the letters waiting, fetches each one's print document (the
print-ready PDF as CMS EnvelopedData, which it decrypts with its own key), prints and
posts it, and confirms it. Nothing here names the recipient: the address is inside the
encrypted PDF.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from felles.identity.guard import Caller, require_scopes
from felles.mailbox import printing
from felles.mailbox.runtime import mailbox
from felles.portal.attachments import content_disposition
from felles.web.observability import log
from felles.web.problems import ProblemError, problem_doc

PRINT_SCOPE = "felles:mailbox.print"
ID_PATTERN = r"^[0-9a-f-]{36}$"
CMS_MEDIA_TYPE = "application/pkcs7-mime; smime-type=enveloped-data"
PEM_MEDIA_TYPE = "application/pem-certificate-chain"  # RFC 8555 section 9.1
router = APIRouter(prefix="/api/mailbox/v1/print", tags=["mailbox print"])

Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {
    401: problem_doc("No valid access token (see WWW-Authenticate)"),
    403: problem_doc(f"The token lacks {PRINT_SCOPE}, or has no organisation"),
}
INVALID: Responses = {422: problem_doc("Invalid input; `errors` names the field")}
NOT_IN_QUEUE: Responses = {
    404: problem_doc("No letter to print by this id (or it was printed already)"),
    409: problem_doc("The letter is not in the queue yet (batch not released, held back)"),
}


async def _provider(
    caller: Annotated[Caller, Depends(require_scopes(PRINT_SCOPE))],
) -> Caller:
    if not caller.orgnr:
        raise ProblemError("forbidden", "Only an organisation's machine token can print letters")
    return caller


Provider = Annotated[Caller, Depends(_provider)]
LetterId = Annotated[str, Path(pattern=ID_PATTERN, description="The letter's id")]


class QueuedOut(BaseModel):
    id: str = Field(description="The letter's id")
    created_at: datetime = Field(description="When the sender sent it")
    size: int = Field(
        description="Bytes of the letter as stored (encrypted); the print document, with "
        "its address page, is a little larger"
    )
    sender_orgnr: str = Field(description="The sending organisation's number")


class QueuePage(BaseModel):
    letters: list[QueuedOut] = Field(description="Oldest first")
    next: str | None = Field(description="Pass as `after` for the next page")


class PrintedOut(BaseModel):
    id: str
    status: Literal["printed"]
    printed_at: datetime


@contextmanager
def _as_problems() -> Iterator[None]:
    try:
        yield
    except printing.NotInQueue as exc:
        raise ProblemError("not-found", str(exc)) from None
    except printing.NotYetInQueue as exc:
        raise ProblemError("conflict", str(exc)) from None
    except printing.Unprintable as exc:
        log.warning("mailbox_letter_unprintable", error=str(exc))
        raise ProblemError(
            "internal", "This letter cannot be made into a print document; Felles must fix it"
        ) from None
    except printing.UnknownCursor:
        raise ProblemError(
            "validation", "`after` names no letter to print", field="after"
        ) from None


@router.get(
    "/letters",
    response_model=QueuePage,
    summary="Letters waiting to be printed, oldest first",
    responses={**AUTH, **INVALID},
)
async def print_queue(
    request: Request,
    caller: Provider,
    after: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="The last id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QueuePage:
    """Every letter going on paper that is due: its id, size and sender, never its
    recipient (the address is on the first page of the encrypted print document).
    A letter leaves the queue when you confirm it printed."""
    rt = await mailbox(request)
    async with rt.db.session() as session:
        with _as_problems():
            found = await printing.queue(session, after=after, limit=limit)
    return QueuePage(
        letters=[
            QueuedOut(id=q.id, created_at=q.created_at, size=q.size, sender_orgnr=q.sender_orgnr)
            for q in found
        ],
        next=found[-1].id if len(found) == limit else None,
    )


@router.get(
    "/letters/{letter_id}/document",
    response_class=Response,
    summary="A letter's print document (CMS EnvelopedData)",
    responses={
        200: {
            "description": "The print-ready PDF (address page first), encrypted to the print "
            "provider's certificate: `openssl cms -decrypt -inform DER -inkey <key> "
            "-recip <certificate>`",
            "content": {CMS_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **AUTH,
        **NOT_IN_QUEUE,
        500: problem_doc("The letter cannot be made into a print document (Felles' fault)"),
    },
)
async def print_document(letter_id: LetterId, request: Request, caller: Provider) -> Response:
    """DER-encoded CMS EnvelopedData (RFC 5652): AES-256-CBC content, its key encrypted
    with RSAES-OAEP to the print provider's certificate. Made when asked for (each fetch
    encrypts afresh, so the bytes differ), and fetchable until you confirm the letter."""
    rt = await mailbox(request)
    with _as_problems():
        sealed = await printing.document(rt.db, letter_id, rt.settings.keys_dir)
    return Response(
        sealed,
        media_type=CMS_MEDIA_TYPE,
        headers={
            "content-disposition": content_disposition(f"{letter_id}.p7m"),
            "cache-control": "no-store",
        },
    )


@router.get(
    "/certificate",
    response_class=Response,
    summary="The print provider's encryption certificate",
    responses={
        200: {
            "description": "The certificate (PEM) print documents are encrypted to now; "
            "it is renewed with the same key a month before it expires",
            "content": {PEM_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **AUTH,
    },
)
async def print_certificate(request: Request, caller: Provider) -> Response:
    rt = await mailbox(request)
    async with rt.db.session() as session:
        pem = await printing.certificate_pem(session)
    if pem is None:  # made at first use by `mailbox(request)`: never missing in practice
        raise ProblemError("unavailable", "The print provider has no certificate yet")
    return Response(pem, media_type=PEM_MEDIA_TYPE)


@router.post(
    "/letters/{letter_id}/printed",
    response_model=PrintedOut,
    summary="Confirm a letter printed and posted",
    responses={**AUTH, **NOT_IN_QUEUE},
)
async def confirm_printed(letter_id: LetterId, request: Request, caller: Provider) -> PrintedOut:
    """The letter becomes `printed` (the sender gets the event `letter.printed`) and its
    print document is deleted: fetch it before confirming. Confirming again is harmless
    and answers the same."""
    rt = await mailbox(request)
    async with rt.db.session() as session:
        with _as_problems():
            done = await printing.confirm_printed(session, letter_id)
    if done.first_time:
        log.info("mailbox_letter_printed", letter_id=letter_id, printer=caller.orgnr)
    return PrintedOut(id=done.id, status="printed", printed_at=done.printed_at)
