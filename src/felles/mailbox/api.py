"""The contact and reservation register for senders, under /api/mailbox/v1 (machine
tokens). National identity numbers go in the body, never in the address."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from felles.identity.guard import Caller, require_scopes
from felles.mailbox import lookup
from felles.mailbox.runtime import mailbox
from felles.registry.numbers import InvalidNumber, parse_pid
from felles.web.problems import ProblemError

CONTACT_SCOPE = "felles:krr.contact"
MAILBOX_SCOPE = "felles:krr.mailbox"
router = APIRouter(prefix="/api/mailbox/v1", tags=["mailbox"])


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persons: list[str] = Field(
        min_length=1,
        max_length=lookup.MAX_PERSONS,
        description="National identity numbers (11 digits), at most 1,000",
    )


class ContactOut(BaseModel):
    email: str | None = Field(description="E-mail address, if the person gave one")
    mobile: str | None = Field(description="Mobile number, if the person gave one")
    last_confirmed_on: date | None = Field(description="When the person last confirmed them")
    language: str = Field(description="The language the person prefers: nb, nn or en")


class MailboxOut(BaseModel):
    provider: str = Field(description="The digital mailbox provider: felles, digipost, eboks")
    address: str = Field(description="The person's address at the provider")
    certificate: str = Field(
        description="The provider's encryption certificate (PEM): encrypt letters to it"
    )


class PersonOut(BaseModel):
    person: str = Field(description="The national identity number asked for")
    status: lookup.Status = Field(
        description="`active` (in the register), `deleted` (has died) or `not_registered`"
    )
    reserved: bool = Field(description="Has said no to digital mail: send on paper")
    contact: ContactOut | None = Field(
        None, description=f"With the scope {CONTACT_SCOPE}: contact details"
    )
    mailbox: MailboxOut | None = Field(
        None, description=f"With the scope {MAILBOX_SCOPE}: the digital mailbox"
    )


class LookupOut(BaseModel):
    persons: list[PersonOut] = Field(description="One answer per number, in the same order")


@router.post(
    "/lookup",
    response_model=LookupOut,
    response_model_exclude_none=True,
    summary="Look up how to reach people",
)
async def look_up(
    new: LookupIn, request: Request, caller: Annotated[Caller, Depends(require_scopes())]
) -> LookupOut:
    """For each person: the status in the contact register and whether they reserved
    themselves against digital mail; with `felles:krr.contact` their contact details,
    with `felles:krr.mailbox` their digital mailbox and its encryption certificate.
    The token needs at least one of the two scopes. Each lookup is recorded and shown to
    the person."""
    with_contact = CONTACT_SCOPE in caller.scopes
    with_mailbox = MAILBOX_SCOPE in caller.scopes
    if not (with_contact or with_mailbox) or caller.orgnr is None:
        raise ProblemError(
            "forbidden", f"The access token needs the scope {CONTACT_SCOPE} or {MAILBOX_SCOPE}"
        )
    pids = []
    for index, number in enumerate(new.persons):
        try:
            pids.append(parse_pid(number).value)
        except InvalidNumber:
            raise ProblemError(
                "validation",
                f"persons[{index}] is not a valid national identity number",
                field=f"persons[{index}]",
            ) from None
    rt = await mailbox(request)
    async with rt.db.session() as session:
        found = await lookup.look_up(
            session,
            pids,
            sender=caller.orgnr,
            with_contact=with_contact,
            with_mailbox=with_mailbox,
        )
    return LookupOut(
        persons=[
            PersonOut(
                person=f.pid,
                status=f.status,
                reserved=f.reserved,
                contact=ContactOut(
                    email=f.contact.email,
                    mobile=f.contact.mobile,
                    last_confirmed_on=f.contact.last_confirmed_on,
                    language=f.contact.language,
                )
                if f.contact
                else None,
                mailbox=MailboxOut(
                    provider=f.mailbox.provider,
                    address=f.mailbox.address,
                    certificate=f.mailbox.certificate_pem,
                )
                if f.mailbox
                else None,
            )
            for f in found
        ]
    )
