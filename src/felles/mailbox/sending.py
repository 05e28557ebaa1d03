"""Storing letters: one at a time for the API, or a chunk of a batch at once.

The registers are read once per call for every recipient in it, the letters are sealed
(in the caller, or in worker processes for bulk), and the rows are written together: the
letter's metadata, its encrypted content and the notifications due. A batch's letters
wait (`accepted`) until the batch is released, and get their notifications then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import insert_many, row_insert, write_together
from felles.mailbox import letters as L
from felles.mailbox.mailbox_events import letter_changed
from felles.mailbox.models import Letter, LetterContent, MailboxProvider, Notification
from felles.mailbox.print_pdf import PostalAddress
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person

_LETTERS = cast(Table, Letter.__table__)
_CONTENTS = cast(Table, LetterContent.__table__)
_NOTIFICATIONS = cast(Table, Notification.__table__)


class UnknownPerson(LookupError):
    """Nobody in the population register has this number; `field` says where it was given
    (the number itself is not kept: it would show wherever the error is logged)."""

    def __init__(self, field: str = "recipient") -> None:
        super().__init__(field)
        self.field = field


async def reach(session: AsyncSession, pids: Iterable[str]) -> dict[str, L.Reach]:
    """How to reach each person found (one query for all of them)."""
    wanted = sorted(set(pids))
    rows = (
        await session.execute(
            select(
                Person.pid,
                Person.given_name,
                Person.middle_name,
                Person.family_name,
                Person.deceased_on,
                Person.street,
                Person.postal_code,
                Person.postal_town,
                ContactInfo.pid,
                ContactInfo.reserved,
                ContactInfo.mailbox_provider,
                ContactInfo.mailbox_address,
                ContactInfo.email,
                ContactInfo.mobile,
                ContactInfo.language,
            )
            .outerjoin(ContactInfo, ContactInfo.pid == Person.pid)
            .where(Person.pid.in_(wanted))
        )
    ).all()
    found = {}
    for (
        pid,
        given,
        middle,
        family,
        deceased_on,
        street,
        postal_code,
        postal_town,
        contact_pid,
        reserved,
        provider,
        address,
        email,
        mobile,
        language,
    ) in rows:
        name = " ".join(p for p in (given, middle, family) if p)
        postal = (
            PostalAddress(name, street, postal_code, postal_town)
            if street and postal_code and postal_town
            else None
        )
        found[pid] = L.Reach(
            pid=pid,
            name=name,
            deceased=deceased_on is not None,
            registered=contact_pid is not None,
            reserved=bool(reserved),
            provider=provider,
            mailbox_address=address,
            email=email,
            mobile=mobile,
            language=language or "nb",
            postal=postal,
        )
    return found


async def certificates(session: AsyncSession) -> dict[str, str]:
    """Every provider's certificate (PEM), the print provider's included."""
    rows = await session.execute(select(MailboxProvider.name, MailboxProvider.certificate_pem))
    return {name: pem for name, pem in rows}


@dataclass(frozen=True, slots=True)
class Prepared:
    """One letter's rows, ready to insert."""

    letter: dict[str, Any]
    content: dict[str, Any] | None
    notifications: list[dict[str, Any]]


def prepare(
    letter: L.LetterIn,
    letter_id: str,
    chosen: L.Route,
    reach: L.Reach,
    sealed: bytes | None,
    *,
    sender_orgnr: str,
    now: datetime,
    batch_id: str | None = None,
    seq: int | None = None,
) -> Prepared:
    """The rows of one letter. In a batch it waits (`accepted`, and no notifications
    yet) until the batch is released; otherwise it is delivered now."""
    # In UTC: SQLite keeps a time without its offset.
    visible_from = max(letter.visible_from or now, now).astimezone(UTC)
    status = (
        L.Status.accepted if batch_id and chosen.status is L.Status.delivered else chosen.status
    )
    notifications: list[dict[str, Any]] = []
    no_way_to_notify = False
    if not batch_id:  # a batch's are decided when it is released
        notifications, no_way_to_notify = notifications_due(
            letter_id,
            chosen.channel.value,
            letter.notify,
            email=bool(reach.email),
            mobile=bool(reach.mobile),
            repeat_after_days=letter.repeat_after_days,
            first_due=visible_from,
        )
    row = {
        "id": letter_id,
        "sender_orgnr": sender_orgnr,
        "batch_id": batch_id,
        "seq": seq,
        "recipient_pid": letter.recipient,
        "sender_ref": letter.sender_ref,
        "title": letter.title,
        "level": letter.level,
        "notify": letter.notify,
        "repeat_after_days": letter.repeat_after_days,
        "print_allowed": letter.print_allowed,
        "visible_from": visible_from,
        "channel": chosen.channel.value,
        "reason": chosen.reason.value if chosen.reason else None,
        "provider": chosen.provider,
        "mailbox_address": chosen.mailbox_address,
        "status": status.value,
        "notification_failed": no_way_to_notify,
        "documents": L.documents_meta(letter),
        "size": len(sealed) if sealed else 0,
        "created_at": now,
        "delivered_at": now if status is L.Status.delivered else None,
        "failed_at": now if status is L.Status.failed else None,
        "folder": "inbox",
    }
    content = {"letter_id": letter_id, "cms": sealed} if sealed is not None else None
    return Prepared(row, content, notifications)


def notifications_due(
    letter_id: str,
    channel: str,
    notify: bool,
    *,
    email: bool,
    mobile: bool,
    repeat_after_days: int | None,
    first_due: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """A delivered letter's notifications, by every way the person can be reached: the
    first due at `first_due`, a reminder that many days later if the sender asked; and
    whether notifying failed (a digital letter to be notified of, and no e-mail address
    or mobile number to do it by)."""
    if channel != L.Channel.digital.value or not notify:
        return [], False
    ways = [way for way, known in (("email", email), ("sms", mobile)) if known]
    if not ways:
        return [], True
    repeats = [0] if repeat_after_days is None else [0, repeat_after_days]
    rows = [
        {
            "letter_id": letter_id,
            "channel": way,
            "repetition": repetition,
            "due_at": first_due + timedelta(days=days),
            "status": "pending",
            "attempts": 0,
        }
        for repetition, days in enumerate(repeats)
        for way in ways
    ]
    return rows, False


async def sender_name(session: AsyncSession, orgnr: str) -> str:
    return await registry.agency_name(session, orgnr, "nb")


@dataclass(frozen=True, slots=True)
class Sent:
    id: str
    channel: L.Channel
    reason: L.Reason | None
    status: L.Status


async def send(session: AsyncSession, sender_orgnr: str, letter: L.LetterIn) -> Sent:
    """Check, route, seal and store one letter, delivered at once (raises
    `LetterRefused` or `UnknownPerson`; nothing is stored then)."""
    L.check(letter)
    found = (await reach(session, [letter.recipient])).get(letter.recipient)
    if found is None:
        raise UnknownPerson()
    certs = await certificates(session)
    chosen = L.route(found, letter.print_allowed, L.usable_providers(certs))
    letter_id = L.new_id()
    sender = await sender_name(session, sender_orgnr)
    sealed = L.seal(letter, letter_id, chosen, found, sender, certs)
    prepared = prepare(
        letter, letter_id, chosen, found, sealed, sender_orgnr=sender_orgnr, now=datetime.now(UTC)
    )
    writes = [row_insert(Letter, **prepared.letter)]
    if prepared.content:
        writes.append(row_insert(LetterContent, **prepared.content))
    writes += [row_insert(Notification, **n) for n in prepared.notifications]
    await write_together(session, *writes)
    await letter_changed(session, prepared.letter)
    if prepared.letter["notification_failed"]:  # nobody to tell: no e-mail, no mobile
        await letter_changed(session, prepared.letter, "notification_failed")
    return Sent(letter_id, chosen.channel, chosen.reason, chosen.status)


async def store_many(session: AsyncSession, prepared: Sequence[Prepared]) -> None:
    """Insert many letters' rows: one statement per table (Core inserts of the tables,
    not the ORM's, which would split the rows by which of their values are None)."""
    if not prepared:
        return
    await insert_many(session, _LETTERS, [p.letter for p in prepared])
    await insert_many(session, _CONTENTS, [p.content for p in prepared if p.content])
    await insert_many(session, _NOTIFICATIONS, [n for p in prepared for n in p.notifications])


def utc(value: datetime | None) -> datetime | None:
    """A stored time as UTC (SQLite gives it back without its zone)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def public_status(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a sender may know of a letter (no content, no contact details)."""
    return {
        "id": row["id"],
        "sender_ref": row["sender_ref"],
        "batch_id": row["batch_id"],
        "channel": row["channel"],
        "reason": row["reason"],
        "status": row["status"],
        "notification_failed": row["notification_failed"],
        "created_at": utc(row["created_at"]),
        "delivered_at": utc(row["delivered_at"]),
        "notified_at": utc(row["notified_at"]),
        "opened_at": utc(row["opened_at"]),
        "printed_at": utc(row["printed_at"]),
        "failed_at": utc(row["failed_at"]),
    }
