"""What sending left in the database, read back the way only the provider could: the
letter's row, its sealed content opened with the provider's own key, its events; and
the problem documents and people the sending tests share."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, update

from felles.config import Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.mailbox import cms, providers
from felles.mailbox.models import Letter, LetterContent, MailboxProvider, Notification
from felles.registry import service as registry
from felles.registry.models import Person
from felles.registry.numbers import synthetic_pid
from felles.registry.schemas import PersonRecord

NOT_IN_REGISTER = "01010012356"  # valid check digits, nobody in the demo country
BAD_CHECK_DIGITS = "01010012357"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64


def problem_of(answer: httpx.Response, status: int, slug: str, field: str | None = None) -> None:
    """An RFC 9457 problem document of this type, naming `field` among its errors."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == f"/problems/{slug}", body
    if field is not None:
        assert field in [e["field"] for e in body.get("errors") or []], body


async def ensure_providers(db: Database, settings: Settings) -> None:
    """The providers' certificates exist (the app makes them at its first mailbox call)."""
    async with db.session() as session:
        await providers.ensure_providers(session, settings.keys_dir)


@dataclass(frozen=True)
class Stored:
    letter: Letter
    cms: bytes | None
    notifications: list[Notification]


async def stored(db: Database, letter_id: str) -> Stored:
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None, "the letter is stored"
        content = await session.get(LetterContent, letter_id)
        notes = list(
            await session.scalars(
                select(Notification)
                .where(Notification.letter_id == letter_id)
                .order_by(Notification.repetition, Notification.channel)
            )
        )
        session.expunge_all()
    return Stored(row, content.cms if content else None, notes)


async def open_sealed(db: Database, settings: Settings, provider: str, sealed: bytes) -> bytes:
    """The sealed content, decrypted as the provider does with its private key."""
    async with db.session() as session:
        pem = await session.scalar(
            select(MailboxProvider.certificate_pem).where(MailboxProvider.name == provider)
        )
    assert pem is not None
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return cms.decrypt(sealed, providers.private_key(settings.keys_dir, provider), certificate)


async def events_about(db: Database, subject: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.subject == subject).order_by(OutboxEvent.seq)
            )
        )
        session.expunge_all()
    return rows


async def letter_count(db: Database, orgnr: str) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Letter).where(Letter.sender_orgnr == orgnr)
            )
            or 0
        )


@contextlib.asynccontextmanager
async def expired_certificate(
    db: Database, settings: Settings, provider: str = "felles"
) -> AsyncIterator[None]:
    """The provider's certificate in the register has expired (for the duration)."""
    await ensure_providers(db, settings)
    key = providers.private_key(settings.keys_dir, provider)
    long_ago = datetime.now(UTC) - timedelta(days=800)
    expired = cms.self_signed_certificate(
        key, "Expired", long_ago, datetime.now(UTC) - timedelta(days=1)
    )
    pem = expired.public_bytes(serialization.Encoding.PEM).decode()
    async with db.session() as session:
        row = await session.get(MailboxProvider, provider)
        assert row is not None
        current = row.certificate_pem
        row.certificate_pem = pem
    try:
        yield
    finally:
        async with db.session() as session:
            await session.execute(
                update(MailboxProvider)
                .where(MailboxProvider.name == provider)
                .values(certificate_pem=current)
            )


async def new_person(
    db: Database,
    seed: int,
    *,
    deceased: bool = False,
    email: str | None = None,
    mobile: str | None = None,
    registered: bool = True,
    address: bool = True,
) -> str:
    """A new person with Felles' mailbox and an address (who may have died, may have no
    e-mail or mobile number, may not be in the contact register at all or have no
    address)."""
    rng = random.Random(seed)
    born = date(1931 + seed % 60, 5, 17)
    record: dict[str, Any] = {
        "given_name": "Olav",
        "middle_name": None,
        "family_name": "Testesen",
        "birth_date": born,
        "sex": "M",
        "citizenship": "NO",
        "street": "Kirkegata 1" if address else None,
        "postal_code": "0153" if address else None,
        "postal_town": "Oslo" if address else None,
        "municipality_number": "0301",
        "municipality_name": "Oslo",
        "deceased_on": date(2024, 2, 1) if deceased else None,
    }
    async with db.session() as session:
        while True:
            pid = synthetic_pid(born, rng, female=False)
            if await session.get(Person, pid) is None:
                break
        await registry.register_person(session, PersonRecord(pid=pid, **record))
        if not registered:
            return pid
        await registry.set_contact(
            session, pid, email=email, mobile=mobile, confirmed_on=date(2023, 1, 1)
        )
        await registry.set_mailbox(session, pid, provider="felles", address=f"{pid}@felles")
    return pid
