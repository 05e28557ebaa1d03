"""Notifications of new letters, end to end: letters go in through the sending API, the
worker's `send_due` hands e-mail to a real SMTP server (aiosmtpd, in process) and SMS to a
real HTTP server standing in for the gateway, and the senders' events land in the outbox.

The session database is shared: `send_due` also handles other tests' notifications, so
every test reads only what reached its own person's (fresh) address, and leaves nothing
of its own pending for the next test's clock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from sqlalchemy import func, select, update

from felles.config import Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.mailbox import notifying, worker
from felles.mailbox.models import Letter, Notification
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person
from tests.mailbox.mail import LETTERS, letter, sender
from tests.notifications.test_notifications import SmsGateway, SmtpSink

OSLO = ZoneInfo("Europe/Oslo")
TITLE = "Vedtak om bostøtte TITLE-7Q2"
MARKER = "PDF-MARKER-9XK"
WORKERS = 4


def next_oslo(at: time, after: datetime | None = None) -> datetime:
    """The next time it is `at` in Oslo, at least two hours from now (or after `after`):
    the clock a test runs `send_due` with. Its letters become visible an hour before (see
    `send_letter`), so their notifications are due for that clock, but not yet for the
    real one: a `felles serve` started by other tests (whose mailbox worker sends what is
    due, into its own outbox) never takes them."""
    after = (after or datetime.now(UTC) + timedelta(hours=2)).astimezone(OSLO)
    moment = datetime.combine(after.date(), at, tzinfo=OSLO)
    if moment <= after:
        moment = datetime.combine(after.date() + timedelta(days=1), at, tzinfo=OSLO)
    return moment.astimezone(UTC)


NOON = time(12)


class RejectingSmtp(SmtpSink):
    """An SMTP server that refuses every message."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "550 5.7.1 Message refused"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        monkeypatch.setattr(settings, "smtp_url", SecretStr(sink.url))
        yield sink


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[SmsGateway]:
    with SmsGateway() as sms:
        monkeypatch.setattr(settings, "sms_gateway_url", sms.url)
        yield sms


@dataclass
class Recipient:
    pid: str
    email: str | None
    mobile: str | None
    letters: list[str]


Make = Callable[..., Awaitable[Recipient]]


@pytest.fixture
async def recipient(db: Database) -> AsyncIterator[Make]:
    """Gives a person of the demo country with a digital mailbox, and no letters yet,
    fresh contact details (an address no other test uses); afterwards puts the old ones
    back and skips what is still pending for the letters sent to them."""
    saved: list[tuple[str, dict[str, Any]]] = []
    made: list[Recipient] = []

    async def make(
        *, email: bool = True, mobile: bool = True, language: str = "nb", provider: str = "felles"
    ) -> Recipient:
        async with db.session() as session:
            pid = await session.scalar(
                select(ContactInfo.pid)
                .join(Person, Person.pid == ContactInfo.pid)
                .where(
                    ContactInfo.mailbox_provider == provider,
                    ContactInfo.reserved.is_(False),
                    Person.deceased_on.is_(None),
                    ContactInfo.pid.not_in([r.pid for r in made]),
                    # Nobody else's letters (their reminders would come to this address).
                    ContactInfo.pid.not_in(select(Letter.recipient_pid)),
                )
                .order_by(ContactInfo.pid.desc())  # demo_people() takes the first ones
            )
            assert pid, f"the demo country has someone with a {provider} mailbox"
            row = await session.get(ContactInfo, pid)
            assert row is not None
            saved.append(
                (pid, {"email": row.email, "mobile": row.mobile, "language": row.language})
            )
            tag = uuid.uuid4().hex[:10]
            who = Recipient(
                pid,
                f"notify-{tag}@example.test" if email else None,
                f"+4799{int(tag, 16) % 10**6:06d}" if mobile else None,
                [],
            )
            row.email, row.mobile, row.language = who.email, who.mobile, language
        made.append(who)
        return who

    yield make
    async with db.session() as session:
        for pid, old in saved:
            await session.execute(update(ContactInfo).where(ContactInfo.pid == pid).values(**old))
        ours = [letter_id for who in made for letter_id in who.letters]
        if ours:
            await session.execute(
                update(Notification)
                .where(Notification.letter_id.in_(ours), Notification.status == "pending")
                .values(status="skipped")
            )


async def send_letter(
    db: Database,
    client: httpx.AsyncClient,
    who: Recipient,
    at: datetime,
    slug: str = "nav",
    **fields: Any,
) -> str:
    """A letter to `who`, visible (and notified) from an hour before `at`."""
    visible_from = (at - timedelta(hours=1)).isoformat()
    answer = await client.post(
        LETTERS,
        json=letter(who.pid, MARKER, title=TITLE, visible_from=visible_from, **fields),
        headers=await sender(db, client, slug),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["channel"] == "digital"
    who.letters.append(answer.json()["id"])
    return str(answer.json()["id"])


async def notifications(db: Database, letter_id: str) -> list[Notification]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.letter_id == letter_id)
                .order_by(Notification.repetition, Notification.channel)
            )
        )


def by_channel(rows: list[Notification], repetition: int = 0) -> dict[str, Notification]:
    return {n.channel: n for n in rows if n.repetition == repetition}


async def letter_row(db: Database, letter_id: str) -> Letter:
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None
        return row


async def events(db: Database, letter_id: str, status: str) -> list[OutboxEvent]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.subject == letter_id,
                    OutboxEvent.type == f"no.felles.mailbox.letter.{status}",
                )
            )
        )


async def agency(db: Database, slug: str, lang: str) -> str:
    async with db.session() as session:
        found = await registry.get_agency(session, slug)
        return await registry.agency_name(session, found.orgnr, lang)


def subject(message: Any) -> str:
    """A long subject comes folded; unfolded it keeps the fold's space in front."""
    return str(message["Subject"]).strip()


def as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- On delivery ----------------------------------------------------------------------


async def test_email_and_sms_say_who_and_where_never_what(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    gateway: SmsGateway,
    recipient: Make,
) -> None:
    who = await recipient()
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon)
    assert await notifying.send_due(db, settings, now=noon) >= 2

    nav = await agency(db, "nav", "nb")
    assert who.email and who.mobile
    [email] = [m for m in smtp.messages if m["To"] == who.email]
    assert subject(email) == f"Nytt brev fra {nav} i den digitale postkassen din"
    [text] = smtp.texts_to(who.email)
    assert nav in text and f"{settings.base_url}/mailbox" in text
    [sms] = gateway.texts_to(who.mobile)
    assert nav in sms and f"{settings.base_url}/mailbox" in sms and len(sms) <= 160
    for said in (subject(email), text, sms):
        assert TITLE not in said and "TITLE-7Q2" not in said and MARKER not in said

    row = await letter_row(db, letter_id)
    assert row.status == "notified" and row.notified_at is not None
    assert row.notification_failed is False
    first = by_channel(await notifications(db, letter_id))
    assert {n.status for n in first.values()} == {"sent"}
    assert all(n.attempts == 1 and n.sent_at is not None for n in first.values())
    reminders = by_channel(await notifications(db, letter_id), repetition=1)
    assert {n.status for n in reminders.values()} == {"pending"}  # in 7 days
    [event] = await events(db, letter_id, "notified")
    assert event.data["letter_id"] == letter_id and event.data["status"] == "notified"

    # Another round sends nothing more and tells the sender nothing more.
    await notifying.send_due(db, settings, now=noon + timedelta(minutes=10))
    assert len(smtp.texts_to(who.email)) == 1 and len(gateway.texts_to(who.mobile)) == 1
    assert len(await events(db, letter_id, "notified")) == 1


@pytest.mark.parametrize(
    ("language", "slug", "expected"),
    [
        ("nn", "brreg", "Nytt brev frå {sender} i den digitale postkassa di"),
        ("en", "nav", "New letter from {sender} in your digital mailbox"),
    ],
)
async def test_in_the_persons_language(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    gateway: SmsGateway,
    recipient: Make,
    language: str,
    slug: str,
    expected: str,
) -> None:
    who = await recipient(language=language)
    noon = next_oslo(NOON)
    await send_letter(db, client, who, noon, slug=slug)
    await notifying.send_due(db, settings, now=noon)
    name = await agency(db, slug, language)
    assert who.email and who.mobile
    [email] = [m for m in smtp.messages if m["To"] == who.email]
    assert subject(email) == expected.format(sender=name)
    [sms] = gateway.texts_to(who.mobile)
    assert name in sms


async def test_another_providers_mailbox_is_named_not_linked(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False, language="en", provider="digipost")
    noon = next_oslo(NOON)
    await send_letter(db, client, who, noon)
    await notifying.send_due(db, settings, now=noon)
    assert who.email
    [text] = smtp.texts_to(who.email)
    assert "Log in to Digipost to read it." in text
    assert f"{settings.base_url}/mailbox" not in text


async def test_contact_details_are_read_when_sending(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    gateway: SmsGateway,
    recipient: Make,
) -> None:
    who = await recipient()
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon)
    # The person changes their e-mail and removes their mobile before it goes.
    new_email = f"changed-{uuid.uuid4().hex[:8]}@example.test"
    async with db.session() as session:
        await session.execute(
            update(ContactInfo)
            .where(ContactInfo.pid == who.pid)
            .values(email=new_email, mobile=None)
        )
    await notifying.send_due(db, settings, now=noon)
    assert who.email and who.mobile
    assert smtp.texts_to(who.email) == [] and len(smtp.texts_to(new_email)) == 1
    assert gateway.texts_to(who.mobile) == []
    first = by_channel(await notifications(db, letter_id))
    assert first["email"].status == "sent"
    assert (first["sms"].status, first["sms"].error) == ("failed", "no address")
    row = await letter_row(db, letter_id)
    assert row.status == "notified" and row.notification_failed is False


async def test_no_address_left_at_all_fails_the_notification(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    gateway: SmsGateway,
    recipient: Make,
) -> None:
    who = await recipient()
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    async with db.session() as session:
        await session.execute(
            update(ContactInfo).where(ContactInfo.pid == who.pid).values(email=None, mobile=None)
        )
    await notifying.send_due(db, settings, now=noon)
    first = by_channel(await notifications(db, letter_id))
    assert {(n.status, n.error) for n in first.values()} == {("failed", "no address")}
    row = await letter_row(db, letter_id)
    assert row.notification_failed is True and row.status == "delivered"
    assert len(await events(db, letter_id, "notification_failed")) == 1
    assert await events(db, letter_id, "notified") == []


# --- Night, reminders, opened letters -------------------------------------------------


async def test_no_sms_at_night(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    gateway: SmsGateway,
    recipient: Make,
) -> None:
    who = await recipient()
    night = next_oslo(time(23))
    letter_id = await send_letter(db, client, who, night)
    await notifying.send_due(db, settings, now=night)
    assert who.email and who.mobile
    assert len(smtp.texts_to(who.email)) == 1  # e-mail goes at any time
    assert gateway.texts_to(who.mobile) == []
    first = by_channel(await notifications(db, letter_id))
    morning = datetime.combine(
        night.astimezone(OSLO).date() + timedelta(days=1), time(8), tzinfo=OSLO
    )
    sms = first["sms"]
    assert (sms.status, sms.attempts, sms.error) == ("pending", 0, None)
    assert as_utc(sms.due_at) == morning.astimezone(UTC)

    # Still night at five: nothing; at eight it goes.
    await notifying.send_due(db, settings, now=next_oslo(time(5), night))
    assert gateway.texts_to(who.mobile) == []
    await notifying.send_due(db, settings, now=morning.astimezone(UTC))
    assert len(gateway.texts_to(who.mobile)) == 1
    assert by_channel(await notifications(db, letter_id))["sms"].status == "sent"
    assert len(await events(db, letter_id, "notified")) == 1


async def test_a_reminder_goes_only_if_the_letter_is_unopened(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    unopened = await send_letter(db, client, who, noon, repeat_after_days=7)
    opened = await send_letter(db, client, who, noon, repeat_after_days=7)
    await notifying.send_due(db, settings, now=noon)
    assert who.email
    assert len(smtp.texts_to(who.email)) == 2
    async with db.session() as session:
        await session.execute(
            update(Letter)
            .where(Letter.id == opened)
            .values(status="opened", opened_at=noon + timedelta(days=1))
        )
    # Six days on, no reminder is due yet.
    await notifying.send_due(db, settings, now=noon + timedelta(days=6))
    assert len(smtp.texts_to(who.email)) == 2
    await notifying.send_due(db, settings, now=noon + timedelta(days=7))
    reminders = [m for m in smtp.messages if m["To"] == who.email][2:]
    assert len(reminders) == 1
    assert subject(reminders[0]).startswith("Påminnelse:")
    assert by_channel(await notifications(db, unopened), 1)["email"].status == "sent"
    assert by_channel(await notifications(db, opened), 1)["email"].status == "skipped"
    assert (await letter_row(db, opened)).status == "opened"  # never overwritten
    assert len(await events(db, unopened, "notified")) == 1


async def test_opened_or_deleted_before_the_first_notification_is_skipped(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    opened = await send_letter(db, client, who, noon, repeat_after_days=None)
    deleted = await send_letter(db, client, who, noon, repeat_after_days=None)
    now = datetime.now(UTC)
    async with db.session() as session:
        await session.execute(
            update(Letter).where(Letter.id == opened).values(status="opened", opened_at=now)
        )
        await session.execute(update(Letter).where(Letter.id == deleted).values(deleted_at=now))
    await notifying.send_due(db, settings, now=noon)
    assert who.email
    assert smtp.texts_to(who.email) == []
    for letter_id in (opened, deleted):
        [skipped] = await notifications(db, letter_id)
        assert (skipped.status, skipped.attempts) == ("skipped", 0)
        assert await events(db, letter_id, "notified") == []
        assert (await letter_row(db, letter_id)).notification_failed is False


# --- Failures -------------------------------------------------------------------------


async def test_a_refusing_mail_server_is_retried_then_given_up(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    with RejectingSmtp() as smtp:
        monkeypatch.setattr(settings, "smtp_url", SecretStr(smtp.url))
        expected = [
            (noon, 1, "pending", noon + timedelta(minutes=1)),
            (noon + timedelta(minutes=1), 2, "pending", noon + timedelta(minutes=6)),
            (noon + timedelta(minutes=6), 3, "failed", None),
        ]
        for now, attempts, status, due_at in expected:
            await notifying.send_due(db, settings, now=now)
            [n] = await notifications(db, letter_id)
            assert (n.attempts, n.status) == (attempts, status)
            if due_at is not None:
                assert as_utc(n.due_at) == due_at
            assert n.error and "SMTPDataError" in n.error
            assert who.email and who.email not in n.error and "@" not in n.error
            if status == "pending":  # not yet: the sender hears nothing
                assert (await letter_row(db, letter_id)).notification_failed is False
        # Not tried before its time: a round in between leaves it alone.
        await notifying.send_due(db, settings, now=noon + timedelta(hours=2))
        tried = [rcpt for _, rcpt in smtp.envelopes if rcpt == [who.email]]
        assert len(tried) == 3
    row = await letter_row(db, letter_id)
    assert row.notification_failed is True and row.status == "delivered"
    [event] = await events(db, letter_id, "notification_failed")
    assert event.data["status"] == "notification_failed"
    assert await events(db, letter_id, "notified") == []


async def test_a_failed_sms_with_a_sent_email_is_no_failure_of_the_letter(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    recipient: Make,
) -> None:
    who = await recipient()
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    with SmsGateway(status=503) as sms:
        monkeypatch.setattr(settings, "sms_gateway_url", sms.url)
        for minutes in (0, 1, 6):
            await notifying.send_due(db, settings, now=noon + timedelta(minutes=minutes))
    first = by_channel(await notifications(db, letter_id))
    assert first["email"].status == "sent"
    assert (first["sms"].status, first["sms"].attempts) == ("failed", 3)
    assert first["sms"].error == "The SMS gateway refused the message (HTTP 503)"
    row = await letter_row(db, letter_id)
    assert row.status == "notified" and row.notification_failed is False
    assert await events(db, letter_id, "notification_failed") == []


async def test_a_claim_whose_worker_died_is_taken_again_after_the_lease(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    # A worker claims it and dies before sending (the claim's transaction committed).
    async with db.session() as session:
        claimed = await notifying._claim(session, noon, noon + notifying.LEASE, 10_000)
    assert letter_id in {c.letter_id for c in claimed}
    await notifying.send_due(db, settings, now=noon + timedelta(minutes=1))
    assert who.email
    assert smtp.texts_to(who.email) == []  # still leased
    await notifying.send_due(db, settings, now=noon + notifying.LEASE)
    assert len(smtp.texts_to(who.email)) == 1
    [n] = await notifications(db, letter_id)
    assert (n.status, n.attempts) == ("sent", 2)


async def test_a_notification_whose_workers_keep_dying_is_given_up(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    for crash in range(notifying.MAX_ATTEMPTS):
        now = noon + crash * notifying.LEASE
        async with db.session() as session:
            await notifying._claim(session, now, now + notifying.LEASE, 10_000)
    await notifying.send_due(db, settings, now=noon + notifying.MAX_ATTEMPTS * notifying.LEASE)
    assert who.email
    assert smtp.texts_to(who.email) == []
    [n] = await notifications(db, letter_id)
    assert (n.status, n.error) == ("failed", "no outcome after 3 attempts")
    assert (await letter_row(db, letter_id)).notification_failed is True
    assert len(await events(db, letter_id, "notification_failed")) == 1


async def test_a_round_out_of_time_gives_back_what_it_never_tried(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    letter_id = await send_letter(db, client, who, noon, repeat_after_days=None)
    budget = notifying.SEND_BUDGET
    monkeypatch.setattr(notifying, "SEND_BUDGET", -1.0)
    assert await notifying.send_due(db, settings, now=noon) < notifying.LIMIT
    assert who.email
    assert smtp.texts_to(who.email) == []
    [n] = await notifications(db, letter_id)
    assert (n.status, n.attempts, as_utc(n.due_at)) == ("pending", 0, noon)
    monkeypatch.setattr(notifying, "SEND_BUDGET", budget)
    await notifying.send_due(db, settings, now=noon)
    assert len(smtp.texts_to(who.email)) == 1


# --- Many at once ---------------------------------------------------------------------


async def test_several_workers_send_each_notification_once(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    recipient: Make,
) -> None:
    who = await recipient(mobile=False)
    noon = next_oslo(NOON)
    sent = [await send_letter(db, client, who, noon, repeat_after_days=None) for _ in range(24)]
    rounds: list[int] = []

    async def work() -> None:
        while handled := await notifying.send_due(db, settings, now=noon, limit=3):
            rounds.append(handled)

    with SmtpSink() as smtp:
        monkeypatch.setattr(settings, "smtp_url", SecretStr(smtp.url))
        await asyncio.gather(*(work() for _ in range(WORKERS)))
    assert who.email
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Notification.status, Notification.attempts, func.count())
                .where(Notification.letter_id.in_(sent))
                .group_by(Notification.status, Notification.attempts)
            )
        ).all()
        notified = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.subject.in_(sent),
                OutboxEvent.type == "no.felles.mailbox.letter.notified",
            )
        )
    assert [tuple(r) for r in rows] == [("sent", 1, len(sent))], rounds
    assert len(smtp.texts_to(who.email)) == len(sent)
    assert notified == len(sent)


async def test_the_worker_round_sends_until_a_round_is_not_full(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(With the real clock a `felles serve` of other tests may send them first, so this
    checks only that each worker round calls `send_due` until nothing is left.)"""
    handled = [notifying.LIMIT, notifying.LIMIT, 7, 0]
    calls: list[int] = []

    async def send_due(db: Database, settings: Settings) -> int:
        calls.append(handled[len(calls)])
        return calls[-1]

    monkeypatch.setattr(notifying, "send_due", send_due)
    await worker.work_once(db, settings)
    assert calls == [notifying.LIMIT, notifying.LIMIT, 7]


def test_quiet_hours_in_oslo() -> None:
    winter = datetime(2025, 1, 15, 20, 59, tzinfo=OSLO)
    assert notifying.sms_allowed_from(winter) is None
    at_nine = notifying.sms_allowed_from(winter + timedelta(minutes=1))
    assert at_nine == datetime(2025, 1, 16, 8, tzinfo=OSLO)
    assert notifying.sms_allowed_from(datetime(2025, 1, 16, 7, 59, tzinfo=OSLO)) == at_nine
    assert notifying.sms_allowed_from(datetime(2025, 1, 16, 8, tzinfo=OSLO)) is None
    # The night summer time begins (02:00 becomes 03:00): still 08:00 local.
    spring = notifying.sms_allowed_from(datetime(2025, 3, 29, 22, 30, tzinfo=OSLO))
    assert spring == datetime(2025, 3, 30, 6, tzinfo=UTC)
