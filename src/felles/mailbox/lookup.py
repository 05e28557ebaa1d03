"""The contact and reservation register for senders: how to reach up to 1,000 people.

For each national identity number: the status in the register (active, deleted, not
registered) and whether the person has reserved themselves against digital mail; with
the contact scope their e-mail, mobile and when they last confirmed them; with the
mailbox scope their digital mailbox and that mailbox's encryption certificate. Every
person found is recorded as looked up by the sender, so they can see it later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.mailbox.providers import certificates
from felles.registry.models import ContactInfo, DataAccess, Person

MAX_PERSONS = 1000


class Status(StrEnum):
    active = "active"  # in the contact register
    deleted = "deleted"  # the person has died: nothing is sent any more
    not_registered = "not_registered"  # no contact details (or unknown to the registers)


@dataclass(frozen=True, slots=True)
class Contact:
    email: str | None
    mobile: str | None
    last_confirmed_on: date | None
    language: str


@dataclass(frozen=True, slots=True)
class Mailbox:
    provider: str
    address: str
    certificate_pem: str


@dataclass(frozen=True, slots=True)
class Found:
    pid: str
    status: Status
    reserved: bool
    contact: Contact | None = None
    mailbox: Mailbox | None = None


async def look_up(
    session: AsyncSession,
    pids: list[str],
    *,
    sender: str,
    with_contact: bool,
    with_mailbox: bool,
) -> list[Found]:
    """One answer per number asked for, in the same order (numbers must be valid)."""
    wanted = sorted(set(pids))
    rows = (
        await session.execute(
            select(Person.pid, Person.deceased_on, ContactInfo)
            .outerjoin(ContactInfo, ContactInfo.pid == Person.pid)
            .where(Person.pid.in_(wanted))
        )
    ).all()
    known = {pid: (deceased_on, contact) for pid, deceased_on, contact in rows}
    boxes = await certificates(session) if with_mailbox else {}
    if known:
        datasets = "contact" if not with_mailbox else "contact+mailbox"
        await session.execute(
            insert(DataAccess),
            [
                {"pid": pid, "accessed_by": sender, "purpose": "digital mail", "dataset": datasets}
                for pid in known
            ],
        )
    answers = []
    for pid in pids:
        deceased_on, row = known.get(pid, (None, None))
        if pid in known and deceased_on is not None:
            answers.append(Found(pid, Status.deleted, reserved=False))
            continue
        if row is None:
            answers.append(Found(pid, Status.not_registered, reserved=False))
            continue
        contact = (
            Contact(row.email, row.mobile, row.last_confirmed_on, row.language)
            if with_contact
            else None
        )
        mailbox = None
        provider = boxes.get(row.mailbox_provider or "")
        if with_mailbox and provider is not None and row.mailbox_address:
            mailbox = Mailbox(provider.name, row.mailbox_address, provider.certificate_pem)
        answers.append(Found(pid, Status.active, row.reserved, contact, mailbox))
    return answers
