"""The portal's API for agencies' servers: submissions, answers, correspondence, services.

Authenticated with Felles' machine tokens holding `felles:portal.submissions`; the
token's organisation is the agency, and it sees only its own submissions and messages.
Errors are problem documents (RFC 9457). A person recipient's national identity number
travels only in JSON bodies, never in a path or query string (they end up in logs).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity.guard import Caller, require_scopes
from felles.portal import agency, attachments
from felles.portal.agency import (
    AnswerKind,
    MessageStatus,
    NewAttachment,
    PublishedService,
    SubmissionPage,
    SubmissionRecord,
    SubmissionSummary,
)
from felles.portal.definition import CODE_PATTERN, DefinitionError
from felles.portal.models import PartyKind, SubmissionStatus
from felles.registry.numbers import InvalidNumber
from felles.web.deps import get_database
from felles.web.idempotency import once, request_fingerprint
from felles.web.problems import ProblemError, problem_doc

SCOPE = "felles:portal.submissions"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Correspondence carries files: the edge lets its bodies be larger than other requests'.
CORRESPONDENCE_BODY_BYTES = 16_000_000
UPLOAD_PATHS = ((re.compile(r"^/api/portal/v1/correspondence$"), CORRESPONDENCE_BODY_BYTES),)

router = APIRouter(prefix="/api/portal/v1", tags=["portal"])


# --- Who is calling ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgencyCaller:
    client_id: str
    orgnr: str


async def _agency(
    caller: Annotated[Caller, Depends(require_scopes(SCOPE))],
) -> AgencyCaller:
    """The agency behind the token: a token without an organisation has no submissions."""
    if not caller.orgnr:
        raise ProblemError(
            "forbidden", "Only an organisation's machine token can use the portal's agency API"
        )
    return AgencyCaller(caller.client_id, caller.orgnr)


AgencyDep = Annotated[AgencyCaller, Depends(_agency)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (1-200 characters): a retry with the same key and "
        "body gets the first answer instead of creating a second thing",
    ),
]
SubmissionId = Annotated[str, Path(pattern=ID_PATTERN, description="The submission's id")]


# --- Problems ---------------------------------------------------------------------------


AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("No valid access token (see WWW-Authenticate)"),
    403: problem_doc("The token lacks the scope, or has no organisation"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Nothing of yours by that id")}
INVALID: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid input; errors names each field")
}

_LOCATION = re.compile(r"^([^\s:]+): (.*)$", re.DOTALL)
_SCHEMA_AT = re.compile(r" at (\S+): ")


def _pointer(problem: str) -> str:
    """A JSON Pointer to where a definition problem is ("pages/0/title: ..." gives
    /pages/0/title); the whole document when the problem names no place."""
    found = _LOCATION.match(problem)
    if not found or found.group(1) == "(top)":
        return ""
    where = found.group(1)
    deeper = _SCHEMA_AT.search(found.group(2)) if where == "schema" else None
    if deeper and deeper.group(1) != "(top)":
        where = f"schema/{deeper.group(1)}"
    return "/" + "/".join(p.replace("~", "~0") for p in where.split("/"))


@contextmanager
def _as_problems() -> Iterator[None]:
    """The domain's refusals as problem documents with stable types."""
    try:
        yield
    except agency.NotFound as exc:
        raise ProblemError("not-found", str(exc)) from None
    except agency.NotReady as exc:
        raise ProblemError("not-ready", str(exc), headers={"retry-after": "30"}) from None
    except agency.Refused as exc:
        raise ProblemError("infected-file", str(exc)) from None
    except agency.Invalid as exc:
        raise ProblemError("validation", str(exc), field=exc.field) from None
    except agency.UnknownRecipient as exc:
        raise ProblemError("unknown-recipient", str(exc), field="recipient.id") from None
    except InvalidNumber as exc:
        raise ProblemError("invalid-number", str(exc), field="recipient.id") from None
    except agency.NotOwner as exc:
        raise ProblemError("forbidden", str(exc), field="owner") from None
    except DefinitionError as exc:
        raise ProblemError(
            "invalid-definition",
            f"{len(exc.problems)} problem(s) in the definition",
            errors=[{"detail": p, "pointer": _pointer(p)} for p in exc.problems],
        ) from None


# --- Bodies -----------------------------------------------------------------------------


class AnswerIn(BaseModel):
    """Feedback or a decision on a submission, for the inbox of the party that sent it."""

    model_config = ConfigDict(extra="forbid")

    kind: AnswerKind = Field(
        description="`feedback` (not final) or `decision` (sets the submission to decided)"
    )
    title: str = Field(min_length=1, max_length=agency.MAX_TITLE, description="One line")
    body: str = Field(
        min_length=1,
        max_length=agency.MAX_BODY,
        description="Plain text, paragraphs by blank lines",
    )
    sender_reference: str | None = Field(
        None, max_length=agency.MAX_SENDER_REFERENCE, description="Your own case reference"
    )
    confirm_required: bool = Field(
        False, description="Ask the recipient to confirm they have read it"
    )


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: PartyKind = Field(description="`person` or `organisation`")
    id: str = Field(
        min_length=1,
        max_length=20,
        description="The person's national identity number (11 digits) or the organisation "
        "number (9 digits); it must be in the registers",
    )


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="Shown to the recipient")
    content_base64: str = Field(description="The file's bytes in base64 (RFC 4648 section 4)")


class CorrespondenceIn(BaseModel):
    """A message of the agency's own (not an answer to a submission)."""

    model_config = ConfigDict(extra="forbid")

    recipient: RecipientIn = Field(description="Whose inbox it goes to")
    title: str = Field(min_length=1, max_length=agency.MAX_TITLE, description="One line")
    body: str = Field(min_length=1, max_length=agency.MAX_BODY, description="Plain text")
    sender_reference: str | None = Field(
        None, max_length=agency.MAX_SENDER_REFERENCE, description="Your own case reference"
    )
    confirm_required: bool = Field(
        False, description="Ask the recipient to confirm they have read it"
    )
    attachments: list[AttachmentIn] = Field(
        default_factory=list,
        max_length=agency.MAX_ATTACHMENTS,
        description="At most 10 files: PDF, PNG, JPEG or plain text, recognised by content",
    )


def _decoded(files: list[AttachmentIn]) -> list[NewAttachment]:
    decoded: list[NewAttachment] = []
    for index, file in enumerate(files):
        try:
            content = base64.b64decode(file.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ProblemError(
                "validation",
                "Not valid base64",
                field=f"attachments.{index}.content_base64",
            ) from None
        decoded.append(NewAttachment(file.filename, content))
    return decoded


def _json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


# --- Submissions ------------------------------------------------------------------------


async def _once(
    request: Request,
    caller: AgencyCaller,
    key: str | None,
    payload: Any,
    create: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run `create` once per Idempotency-Key: a retry gets the first answer back."""
    return await once(
        get_database(request),
        caller=caller.client_id,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, payload),
        create=create,
    )


@router.get(
    "/submissions",
    response_model=SubmissionPage,
    summary="List your submissions",
    responses={**AUTH_PROBLEMS, **INVALID},
)
async def list_submissions(
    request: Request,
    caller: AgencyDep,
    status: Annotated[
        SubmissionStatus | None, Query(description="Only submissions with this status")
    ] = None,
    service_code: Annotated[
        str | None, Query(pattern=CODE_PATTERN, description="Only this service's submissions")
    ] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="The `next` of the page before",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=agency.MAX_PAGE, description="Page size")] = 100,
) -> SubmissionPage:
    """Submissions to your services, oldest first, a page at a time. A typical server
    polls `?status=received`, fetches each one, then acknowledges it."""
    with _as_problems():
        async with get_database(request).session() as session:
            return await agency.list_submissions(
                session,
                caller.orgnr,
                status=status,
                service_code=service_code,
                after=after,
                limit=limit,
            )


@router.get(
    "/submissions/{submission_id}",
    response_model=SubmissionRecord,
    summary="Fetch a submission",
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def get_submission(
    submission_id: SubmissionId, request: Request, caller: AgencyDep
) -> SubmissionRecord:
    """The answers, who sent them and for whom, the attachments' metadata, linked
    messages, and whether the receipt PDF is ready. Another agency's submission is
    not found, as if it did not exist."""
    with _as_problems():
        async with get_database(request).session() as session:
            return await agency.get_submission(session, caller.orgnr, submission_id)


@router.get(
    "/submissions/{submission_id}/attachments/{attachment_id}",
    response_class=Response,
    summary="Download an attachment",
    responses={
        200: {
            "description": "The file, with its type and name",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **AUTH_PROBLEMS,
        **NOT_FOUND,
        409: problem_doc("The file was found infected"),
    },
)
async def get_attachment(
    submission_id: SubmissionId,
    attachment_id: Annotated[str, Path(pattern=ID_PATTERN, description="The attachment's id")],
    request: Request,
    caller: AgencyDep,
) -> Response:
    """The file's bytes as the party sent them, `Content-Disposition: attachment`."""
    with _as_problems():
        async with get_database(request).session() as session:
            info, content = await agency.attachment_content(
                session, caller.orgnr, submission_id, attachment_id
            )
    return Response(
        content,
        media_type=info.content_type,
        headers={
            "content-disposition": attachments.content_disposition(info.filename),
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
        },
    )


@router.get(
    "/submissions/{submission_id}/receipt.pdf",
    response_class=Response,
    summary="Download the receipt as PDF",
    responses={
        200: {
            "description": "The receipt the party got",
            "content": {"application/pdf": {"schema": {"type": "string"}}},
        },
        **AUTH_PROBLEMS,
        **NOT_FOUND,
        409: problem_doc("The receipt is not made yet (see Retry-After)"),
    },
)
async def get_receipt(submission_id: SubmissionId, request: Request, caller: AgencyDep) -> Response:
    """The same receipt the party got. It is made shortly after submission; until
    then the answer is a `not-ready` problem with Retry-After."""
    with _as_problems():
        async with get_database(request).session() as session:
            pdf = await agency.receipt_pdf(session, caller.orgnr, submission_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": 'attachment; filename="receipt.pdf"'},
    )


@router.post(
    "/submissions/{submission_id}/acknowledgement",
    response_model=SubmissionSummary,
    summary="Acknowledge a submission",
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def acknowledge(
    submission_id: SubmissionId, request: Request, caller: AgencyDep
) -> SubmissionSummary:
    """Say you have the submission: `received` becomes `acknowledged`. Idempotent:
    acknowledging again answers the same, with the first time."""
    with _as_problems():
        async with get_database(request).session() as session:
            return await agency.acknowledge(session, caller.orgnr, submission_id)


@router.post(
    "/submissions/{submission_id}/messages",
    status_code=201,
    response_model=MessageStatus,
    summary="Answer a submission",
    responses={**AUTH_PROBLEMS, **NOT_FOUND, **INVALID},
)
async def answer(
    submission_id: SubmissionId,
    new: AnswerIn,
    request: Request,
    caller: AgencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Feedback or a decision, put in the inbox of the person or business that sent the
    submission. A decision sets the submission's status to `decided`."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            message = await agency.answer(
                session,
                caller.orgnr,
                submission_id,
                kind=new.kind,
                title=new.title,
                body=new.body,
                sender_reference=new.sender_reference,
                confirm_required=new.confirm_required,
            )
        return 201, _json(message)

    return await _once(request, caller, idempotency_key, new.model_dump(), create)


# --- Correspondence and messages --------------------------------------------------------


@router.post(
    "/correspondence",
    status_code=201,
    response_model=MessageStatus,
    summary="Send correspondence to a person or business",
    responses={
        **AUTH_PROBLEMS,
        413: problem_doc("The request is larger than the server accepts"),
        **INVALID,
    },
)
async def send_correspondence(
    new: CorrespondenceIn,
    request: Request,
    caller: AgencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A message from your agency to someone's inbox, with up to 10 attachments (PDF,
    PNG, JPEG or text, 10 MB each). The recipient is in the body, never in the address.

    The whole request may be up to 16 MB (base64 adds a third to the files); a larger
    one gets a `payload-too-large` problem (413)."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            message = await agency.send_correspondence(
                session,
                caller.orgnr,
                recipient_kind=new.recipient.kind,
                recipient_id=new.recipient.id,
                title=new.title,
                body=new.body,
                sender_reference=new.sender_reference,
                confirm_required=new.confirm_required,
                attachments=_decoded(new.attachments),
            )
        return 201, _json(message)

    return await _once(request, caller, idempotency_key, new.model_dump(), create)


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    summary="See whether a message was read and confirmed",
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def message_status(
    message_id: Annotated[str, Path(pattern=ID_PATTERN, description="The message's id")],
    request: Request,
    caller: AgencyDep,
) -> MessageStatus:
    """When a message you sent was put in the inbox, first read, and confirmed."""
    with _as_problems():
        async with get_database(request).session() as session:
            return await agency.message_status(session, caller.orgnr, message_id)


# --- Services ---------------------------------------------------------------------------


@router.post(
    "/services",
    status_code=201,
    response_model=PublishedService,
    summary="Publish a service definition",
    responses={
        200: {"model": PublishedService, "description": "This exact version was published"},
        **AUTH_PROBLEMS,
        422: problem_doc("The definition has problems: errors lists every one, with pointers"),
    },
)
async def publish(
    request: Request,
    caller: AgencyDep,
    document: Annotated[
        dict[str, Any],
        Body(
            description="The service definition as JSON (the same document `felles portal "
            "publish` takes as YAML); its `owner` must be your agency"
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Publish a new service or a new version of one of yours: 201 when published, 200
    when this exact version was already (a harmless retry). Published versions never
    change; drafts keep the version they were started on. A broken definition gets one
    `invalid-definition` problem listing every problem, each with a JSON Pointer."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        with _as_problems():
            published = await agency.publish(
                session, caller.orgnr, document, published_by=f"api:{caller.client_id}"[:100]
            )
        return (201 if published.created else 200), _json(published)

    return await _once(request, caller, idempotency_key, document, create)


@router.delete(
    "/services/{code}",
    status_code=204,
    summary="Withdraw a service",
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def withdraw(
    code: Annotated[str, Path(pattern=CODE_PATTERN, description="The service's code")],
    request: Request,
    caller: AgencyDep,
) -> Response:
    """Take one of your services out of the catalogue. Drafts and submissions stay,
    and publishing a new version brings it back."""
    with _as_problems():
        async with get_database(request).session() as session:
            await agency.withdraw(session, caller.orgnr, code)
    return Response(status_code=204)
