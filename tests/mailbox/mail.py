"""Letters in tests: small real PDFs, the API's JSON for them, and a sender's token."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from fpdf import FPDF
from sqlalchemy import select

from felles.db import Database
from felles.mailbox.letters_api import SEND_SCOPE
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person
from tests.portal.agencies import machine_token

LETTERS = "/api/mailbox/v1/letters"
BATCHES = "/api/mailbox/v1/batches"


def pdf(text: str, pages: int = 1) -> bytes:
    """A real PDF whose pages say `text` (uncompressed, so the text is in its bytes)."""
    document = FPDF()
    document.compress = False
    document.set_font("Helvetica", size=12)
    for _ in range(pages):
        document.add_page()
        document.cell(0, 10, text)
    return bytes(document.output())


def letter(recipient: str, text: str = "Hello", **fields: Any) -> dict[str, Any]:
    """The JSON of a letter whose PDF says `text`."""
    return {
        "recipient": recipient,
        "title": fields.pop("title", "Vedtak om bostøtte"),
        "document": {
            "name": "vedtak.pdf",
            "content_base64": base64.b64encode(pdf(text)).decode(),
        },
        **fields,
    }


async def sender(db: Database, client: httpx.AsyncClient, slug: str = "nav") -> dict[str, str]:
    """Headers with a machine token of the agency `slug` that may send mail."""
    async with db.session() as session:
        orgnr = (await registry.get_agency(session, slug)).orgnr
    return {"authorization": f"Bearer {await machine_token(db, client, orgnr, SEND_SCOPE)}"}


async def demo_people(db: Database) -> dict[str, str]:
    """One demo person of each kind: with Felles' own mailbox, reserved, with no contact
    register entry, and registered with no mailbox."""
    async with db.session() as session:
        felles = await session.scalar(
            select(ContactInfo.pid)
            .join(Person, Person.pid == ContactInfo.pid)
            .where(
                ContactInfo.mailbox_provider == "felles",
                ContactInfo.reserved.is_(False),
                ContactInfo.email.is_not(None),
                Person.deceased_on.is_(None),
            )
            .order_by(ContactInfo.pid)
        )
        reserved = await session.scalar(
            select(ContactInfo.pid)
            .join(Person, Person.pid == ContactInfo.pid)
            .where(ContactInfo.reserved, Person.deceased_on.is_(None), Person.street.is_not(None))
            .order_by(ContactInfo.pid)
        )
        unregistered = await session.scalar(
            select(Person.pid)
            .where(
                Person.pid.not_in(select(ContactInfo.pid)),
                Person.deceased_on.is_(None),
                Person.street.is_not(None),
            )
            .order_by(Person.pid)
        )
        no_box = await session.scalar(
            select(ContactInfo.pid)
            .join(Person, Person.pid == ContactInfo.pid)
            .where(
                ContactInfo.mailbox_provider.is_(None),
                ContactInfo.reserved.is_(False),
                Person.deceased_on.is_(None),
                Person.street.is_not(None),
            )
            .order_by(ContactInfo.pid)
        )
    assert felles and reserved and unregistered, "the demo country has each kind"
    return {
        "felles": felles,
        "reserved": reserved,
        "unregistered": unregistered,
        "no_box": no_box or "",
    }
