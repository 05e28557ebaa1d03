"""Telling people a letter came: the e-mails and SMS of `mailbox_notification`.

`prepare` (sending.py) makes one notification per channel the person had (e-mail, SMS)
and repetition (0 on delivery, 1 the reminder); `send_due` sends those that are due.
A notification says who the letter is from and where to read it, never its title or
what it says, in the person's language.

One round (`send_due`), run by every server process and `felles worker`:

1. **Claim**, in one short transaction: one statement takes up to `limit` pending
   notifications whose `due_at` has come, oldest first (on PostgreSQL skipping rows
   another worker is claiming: `FOR UPDATE SKIP LOCKED`), and leases them: `due_at`
   moves `LEASE` ahead and `attempts` goes up by one. The row stays `pending`, so the
   partial index on due pending rows keeps serving the claim, and a worker that dies
   before recording leaves rows that fall due again when the lease runs out: its claim
   is retried by whoever comes next, without a sweeper. One more statement reads the
   claimed letters with the person's *current* contact details (the contact register
   is read at send time, never copied into the notification).
2. **Send**, outside any transaction, at most `CONCURRENCY` at a time; no send starts
   once `SEND_BUDGET` has passed (the rest are given back untried), and none may take
   longer than `SEND_TIMEOUT`, so a round always ends well inside its lease.
3. **Record**, in one transaction: each outcome is written only if the row still holds
   our lease (`status = 'pending' AND due_at = <our lease>`): a worker whose lease ran
   out (and whose rows another worker took) writes nothing. The first notification of
   a letter that is sent makes it `notified`; when every first notification of a
   letter has failed, the letter gets `notification_failed`. Each of those is a
   transition guarded in the same statement (`notified_at IS NULL`,
   `notification_failed = false`), so its event goes to the sender exactly once.

Attempts count claims. A send that fails is tried again after `RETRY_AFTER` (1 min,
then 5 min) and the notification is `failed` after `MAX_ATTEMPTS` (3); a claim that
finds `attempts` already past that (workers died holding it) gives up without sending.
Skipped notifications, SMS put off until morning and sends never started get their
attempt back. Delivery is at least once: a worker that dies between handing a message
over and recording it sends it again after the lease (at most `MAX_ATTEMPTS` times).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import Database, dialect_name, leasing
from felles.mailbox.mailbox_events import letter_changed
from felles.mailbox.models import Letter, Notification
from felles.mailbox.providers import PROVIDERS
from felles.notifications.service import NotificationError, Notifier
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person
from felles.web.i18n import LANGUAGES, translations
from felles.web.observability import log

LIMIT = 500
LEASE = timedelta(minutes=5)
SEND_BUDGET = 120.0  # seconds: no send starts later than this in a round
SEND_TIMEOUT = 30.0  # seconds for one message (SMTP's own timeouts are per command)
CONCURRENCY = 16
MAX_ATTEMPTS = 3
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5))  # after attempt 1, 2
OSLO = ZoneInfo("Europe/Oslo")
SMS_FROM, SMS_UNTIL = time(8), time(21)  # no SMS at night, Oslo time
NO_ADDRESS = "no address"
GAVE_UP = f"no outcome after {MAX_ATTEMPTS} attempts"
DELIVERABLE = ("delivered", "notified")


def N_(message: str) -> str:
    return message


EMAIL_SUBJECT = N_("New letter from %(sender)s in your digital mailbox")
REMINDER_SUBJECT = N_("Reminder: unopened letter from %(sender)s in your digital mailbox")
EMAIL_NEW = N_("You have a new letter from %(sender)s in your digital mailbox.")
EMAIL_REMINDER = N_("You still have an unopened letter from %(sender)s in your digital mailbox.")
EMAIL_READ_FELLES = N_("Log in to read it: %(link)s")
EMAIL_READ_PROVIDER = N_("Log in to %(provider)s to read it.")
EMAIL_FOOTER = N_(
    "This e-mail only tells you that a letter has arrived, never what is in it. "
    "Do not reply to this e-mail."
)
SMS_NEW_FELLES = N_("New letter from %(sender)s. Read it at %(link)s")
SMS_REMINDER_FELLES = N_("Reminder: unopened letter from %(sender)s. Read it at %(link)s")
SMS_NEW_PROVIDER = N_("New letter from %(sender)s in your digital mailbox at %(provider)s.")
SMS_REMINDER_PROVIDER = N_(
    "Reminder: unopened letter from %(sender)s in your digital mailbox at %(provider)s."
)


@dataclass(frozen=True, slots=True)
class Message:
    """What to send for one notification (address and text: never logged)."""

    channel: str  # email, sms
    to: str
    subject: str
    text: str


def compose(
    channel: str,
    repetition: int,
    *,
    sender: str,
    provider: str | None,
    lang: str,
    base_url: str,
) -> tuple[str, str]:
    """The subject (e-mail only) and text of a notification in `lang`."""
    _ = translations(lang).gettext
    values: dict[str, Any] = {
        "sender": sender,
        "link": f"{base_url}/mailbox",
        "provider": PROVIDERS.get(provider or "", provider or ""),
    }
    own = provider in (None, "felles")
    reminder = repetition >= 1
    if channel == "sms":
        if own:
            text = _(SMS_REMINDER_FELLES if reminder else SMS_NEW_FELLES)
        else:
            text = _(SMS_REMINDER_PROVIDER if reminder else SMS_NEW_PROVIDER)
        return "", text % values
    subject = _(REMINDER_SUBJECT if reminder else EMAIL_SUBJECT) % values
    paragraphs = [
        _(EMAIL_REMINDER if reminder else EMAIL_NEW),
        _(EMAIL_READ_FELLES if own else EMAIL_READ_PROVIDER),
        _(EMAIL_FOOTER),
    ]
    return subject, "\n\n".join(p % values for p in paragraphs) + "\n"


def sms_allowed_from(now: datetime) -> datetime | None:
    """None if an SMS may go now; otherwise the next 08:00 in Oslo (as UTC)."""
    local = now.astimezone(OSLO)
    if SMS_FROM <= local.time() < SMS_UNTIL:
        return None
    day = local.date() if local.time() < SMS_FROM else local.date() + timedelta(days=1)
    return datetime.combine(day, SMS_FROM, tzinfo=OSLO).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    letter_id: str
    channel: str
    repetition: int
    attempts: int  # this claim included


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to write for one claimed notification."""

    claimed: Claimed
    status: str  # sent, failed, skipped, or pending (to be tried again at `due_at`)
    due_at: datetime | None = None
    error: str | None = None
    give_back: bool = False  # not an attempt: skipped, put off, or never started
    tried: bool = True  # False: the round ran out of time before it

    @property
    def kind(self) -> str:
        """For the log: sent, failed, skipped, retried, put_off or untried."""
        if self.status != "pending":
            return self.status
        if not self.tried:
            return "untried"
        return "put_off" if self.give_back else "retried"


async def send_due(
    db: Database, settings: Settings, *, now: datetime | None = None, limit: int = LIMIT
) -> int:
    """Send the notifications due (up to `limit`); how many were handled (sent, failed,
    skipped, put off till morning, or to be retried). Call again while it returns
    `limit`: a round that ran out of time returns less (what it never tried is due again
    at once, for the next round or another worker)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    notifier = Notifier.from_settings(settings)  # a bad FELLES_SMTP_URL claims nothing
    async with db.session(autocommit=True) as session:
        anything = await session.scalar(
            select(Notification.id)
            .where(Notification.status == "pending", Notification.due_at <= now)
            .limit(1)
        )
    if anything is None:
        return 0
    lease_until = now + LEASE
    async with db.session() as session:
        claimed = await _claim(session, now, lease_until, limit)
        if not claimed:
            return 0
        outcomes, messages = await _plan(session, claimed, now, settings)
    outcomes += await _send(notifier, messages, now)
    async with db.session() as session:
        counts = await _record(session, outcomes, lease_until, now)
    log.info("mailbox_notifications", claimed=len(claimed), **counts)
    return len(claimed) - counts.get("untried", 0)


async def _claim(
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int
) -> list[Claimed]:
    N = Notification
    lease = leasing(
        N.id,
        due=N.due_at,
        attempts=N.attempts,
        now=now,
        until=lease_until,
        limit=limit,
        where=[N.status == "pending"],
        order_by=[N.due_at, N.id],
    )
    rows = await session.execute(
        lease.returning(N.id, N.letter_id, N.channel, N.repetition, N.attempts)
    )
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


async def _plan(
    session: AsyncSession, claimed: Sequence[Claimed], now: datetime, settings: Settings
) -> tuple[list[Outcome], list[tuple[Claimed, Message]]]:
    """Decide each claimed notification from its letter and the person's contact
    details now (one query): skip, give up, put off, fail for want of an address, or
    the message to send."""
    rows = await session.execute(
        select(
            Letter.id,
            Letter.sender_orgnr,
            Letter.channel,
            Letter.status,
            Letter.provider,
            Letter.opened_at,
            Letter.read_at,
            Letter.deleted_at,
            Person.deceased_on,
            ContactInfo.email,
            ContactInfo.mobile,
            ContactInfo.language,
        )
        .outerjoin(Person, Person.pid == Letter.recipient_pid)
        .outerjoin(ContactInfo, ContactInfo.pid == Letter.recipient_pid)
        .where(Letter.id.in_({c.letter_id for c in claimed}))
    )
    letters = {row.id: row for row in rows}
    senders: dict[tuple[str, str], str] = {}
    sms_from = sms_allowed_from(now)
    outcomes: list[Outcome] = []
    messages: list[tuple[Claimed, Message]] = []
    for c in claimed:
        letter = letters.get(c.letter_id)
        if letter is None or not _still_worth_telling(letter):
            outcomes.append(Outcome(c, "skipped", give_back=True))
            continue
        if c.attempts > MAX_ATTEMPTS:  # claimed that often without an outcome
            outcomes.append(Outcome(c, "failed", error=GAVE_UP))
            continue
        to = letter.email if c.channel == "email" else letter.mobile
        if not to:
            outcomes.append(Outcome(c, "failed", error=NO_ADDRESS))
            continue
        if c.channel == "sms" and sms_from is not None:
            outcomes.append(Outcome(c, "pending", due_at=sms_from, give_back=True))
            continue
        lang = letter.language if letter.language in LANGUAGES else "nb"
        key = (letter.sender_orgnr, lang)
        if key not in senders:
            senders[key] = await registry.agency_name(session, *key)
        subject, text = compose(
            c.channel,
            c.repetition,
            sender=senders[key],
            provider=letter.provider,
            lang=lang,
            base_url=settings.base_url,
        )
        messages.append((c, Message(c.channel, to, subject, text)))
    return outcomes, messages


def _still_worth_telling(letter: Any) -> bool:
    """The letter is in the person's digital mailbox, unopened, not deleted, and the
    person is alive. (A reminder, too, goes only for a letter still unopened.)"""
    opened = letter.opened_at or letter.read_at or letter.status == "opened"
    return (
        letter.channel == "digital"
        and letter.status in DELIVERABLE
        and not opened
        and letter.deleted_at is None
        and letter.deceased_on is None
    )


async def _send(
    notifier: Notifier, messages: Sequence[tuple[Claimed, Message]], now: datetime
) -> list[Outcome]:
    """Hand the messages over, a few at a time; one outcome each."""
    if not messages:
        return []
    slots = asyncio.Semaphore(CONCURRENCY)
    started = monotonic()

    async def one(c: Claimed, message: Message) -> Outcome:
        async with slots:
            if monotonic() - started > SEND_BUDGET:  # give it back, untried
                return Outcome(c, "pending", due_at=now, give_back=True, tried=False)
            try:
                if message.channel == "email":
                    sending = notifier.send_email(message.to, message.subject, message.text)
                else:
                    sending = notifier.send_sms(message.to, message.text)
                await asyncio.wait_for(sending, SEND_TIMEOUT)
            except ValueError:  # the register holds something that is no address
                return Outcome(c, "failed", error="invalid address")
            except NotificationError as exc:
                return _failure(c, str(exc), now)
            except TimeoutError:
                return _failure(c, f"{message.channel}: no answer in {SEND_TIMEOUT:.0f} s", now)
            except Exception as exc:  # one odd message must not lose the round's outcomes
                return _failure(c, f"{message.channel}: {type(exc).__name__}", now)
            return Outcome(c, "sent")

    return list(await asyncio.gather(*(one(c, m) for c, m in messages)))


def _failure(c: Claimed, error: str, now: datetime) -> Outcome:
    """Try again later, or give up after the last attempt. `error` never holds an
    address or text (NotificationError's messages name only the server and the kind)."""
    if c.attempts >= MAX_ATTEMPTS:
        return Outcome(c, "failed", error=error[:200])
    retry_after = RETRY_AFTER[min(c.attempts, len(RETRY_AFTER)) - 1]
    return Outcome(c, "pending", due_at=now + retry_after, error=error[:200])


async def _record(
    session: AsyncSession, outcomes: Sequence[Outcome], lease_until: datetime, now: datetime
) -> dict[str, int]:
    """Write the outcomes of rows still under our lease, then what they mean for their
    letters (and the senders' events). How many went each way."""
    N = Notification
    touched = sorted({o.claimed.letter_id for o in outcomes if o.status in ("sent", "failed")})
    if touched and dialect_name(session) == "postgresql":
        # Letters first, in one order: a letter's outcomes are judged one worker at a
        # time, so two workers failing its e-mail and SMS at once still see both.
        await session.execute(
            select(Letter.id).where(Letter.id.in_(touched)).order_by(Letter.id).with_for_update()
        )
    groups: dict[tuple[str, datetime | None, str | None, bool, bool], list[Outcome]]
    groups = defaultdict(list)
    for o in outcomes:
        groups[(o.status, o.due_at, o.error, o.give_back, o.tried)].append(o)
    counts: dict[str, int] = defaultdict(int)
    sent: set[str] = set()
    first_failed: set[str] = set()
    for (status, due_at, error, give_back, _), group in groups.items():
        values: dict[str, Any] = {"status": status, "error": error}
        if status == "sent":
            values["sent_at"] = now
        if due_at is not None:
            values["due_at"] = due_at
        if give_back:
            values["attempts"] = N.attempts - 1
        rows = await session.execute(
            update(N)
            .where(
                N.id.in_([o.claimed.id for o in group]),
                N.status == "pending",
                N.due_at == lease_until,
            )
            .values(**values)
            .returning(N.id, N.letter_id, N.repetition)
            .execution_options(synchronize_session=False)
        )
        applied = rows.all()
        counts[group[0].kind] += len(applied)
        if status == "sent":
            sent.update(r.letter_id for r in applied)
        elif status == "failed":
            first_failed.update(r.letter_id for r in applied if r.repetition == 0)
            if applied:
                log.warning("mailbox_notifications_failed", count=len(applied), error=error)
    if sent:
        await _notified(session, sorted(sent), now)
    if first_failed:
        await _notification_failed(session, sorted(first_failed))
    return dict(counts)


_EVENT_COLUMNS = (
    Letter.id,
    Letter.sender_orgnr,
    Letter.sender_ref,
    Letter.batch_id,
    Letter.channel,
    Letter.reason,
)


async def _notified(session: AsyncSession, letter_ids: list[str], now: datetime) -> None:
    """The first notification sent: `notified` (unless already opened or printed),
    and the event, once per letter."""
    rows = await session.execute(
        update(Letter)
        .where(Letter.id.in_(letter_ids), Letter.notified_at.is_(None))
        .values(
            notified_at=now,
            status=case((Letter.status == "delivered", "notified"), else_=Letter.status),
        )
        .returning(*_EVENT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    for row in rows.all():
        await letter_changed(session, dict(row._mapping), "notified")


async def _notification_failed(session: AsyncSession, letter_ids: list[str]) -> None:
    """Every first notification of the letter failed: flag it, and tell the sender once
    (they may want to send it on paper)."""
    N = Notification
    pending_or_sent = exists().where(
        N.letter_id == Letter.id, N.repetition == 0, N.status != "failed"
    )
    rows = await session.execute(
        update(Letter)
        .where(
            Letter.id.in_(letter_ids),
            Letter.notification_failed.is_(False),
            ~pending_or_sent,
        )
        .values(notification_failed=True)
        .returning(*_EVENT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    for row in rows.all():
        await letter_changed(session, dict(row._mapping), "notification_failed")
