"""Telling a person by e-mail that their submission arrived (if the contact register has
their address); the e-mail says who received what, never what was sent.

The receipt worker stores a `ReceiptNotice` row with each receipt, in the same
transaction, so the receipt page never waits on the mail server and no e-mail is lost.
`send_due` then hands the e-mails over in rounds, like the mailbox's notifications:
**claim** due rows in one short transaction (leasing them: `due_at` moves `LEASE`
ahead, `attempts` goes up; on PostgreSQL skipping rows another worker holds), **send**
outside any transaction, **record** only where our lease still holds: a handed-over
e-mail's row is deleted, a failed one is due again after `RETRY_AFTER`, and after
`MAX_ATTEMPTS` it is given up (logged by submission id). No send starts once
`SEND_BUDGET` has passed (those rows are given back untried), so a round with a slow
mail server ends inside its lease. A worker that dies between sending and recording
leaves its rows to come due again when the lease runs out: at least once. The address
is looked up when the e-mail is sent, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import Database, leasing
from felles.notifications.service import NotificationError, Notifier
from felles.portal import catalogue
from felles.portal.models import ReceiptNotice, Submission
from felles.registry import service as registry
from felles.web.i18n import translations
from felles.web.observability import log

ACCESS = registry.Access(accessed_by="felles-portal", purpose="receipt notification")
LIMIT = 100
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3
SEND_BUDGET = 120.0  # seconds: no send starts later than this in a round
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5))  # after attempt 1, 2

# Owe an e-mail for each of `ids` whose receipt this worker stored just now (stamped
# `at`): a submission another worker stored first is not owed twice.
OWE = insert(ReceiptNotice).from_select(
    ["submission_id", "due_at", "attempts"],
    select(Submission.id, Submission.receipt_ready_at, literal(0)).where(
        Submission.id.in_(bindparam("ids", expanding=True)),
        Submission.receipt_ready_at == bindparam("at"),
    ),
)


def N_(message: str) -> str:
    return message


SUBJECT = N_("Receipt: %(service)s")
BODY = N_(
    "You have sent “%(service)s” to %(agency)s.\n\n"
    "Reference number: %(reference)s\n\n"
    "Log in to the portal to see the receipt and your answers: %(link)s\n\n"
    "This e-mail says only that something arrived. It never contains what you sent."
)


@dataclass(frozen=True, slots=True)
class Notice:
    to: str
    subject: str
    text: str
    reference: str
    submission_id: str


async def receipt_notices(
    session: AsyncSession, submissions: list[Submission], settings: Settings
) -> list[Notice]:
    """The e-mails for these submissions' senders who have an address (looked up in one
    go, and recorded as the portal's lookups)."""
    contacts = await registry.contacts(session, [s.submitted_by for s in submissions], ACCESS)
    agencies: dict[tuple[str, str], str] = {}
    notices = []
    for submission in submissions:
        contact = contacts.get(submission.submitted_by)
        if contact is None or not contact.email:
            continue
        lang = contact.language if contact.language in ("nb", "nn", "en") else "nb"
        definition = await catalogue.definition(
            session, submission.service_code, submission.service_version
        )
        key = (submission.owner_orgnr, lang)
        if key not in agencies:
            agencies[key] = await registry.agency_name(session, key[0], lang)
        gettext = translations(lang).gettext
        values: dict[str, Any] = {
            "service": definition.name(lang),
            "agency": agencies[key],
            "reference": submission.reference,
            "link": f"{settings.base_url}/portal/submissions/{submission.id}/receipt",
        }
        notices.append(
            Notice(
                contact.email,
                gettext(SUBJECT) % values,
                gettext(BODY) % values,
                submission.reference,
                submission.id,
            )
        )
    return notices


async def send_due(
    db: Database, settings: Settings, *, now: datetime | None = None, limit: int = LIMIT
) -> int:
    """Send the receipt e-mails due (up to `limit`); how many rows were handled. Call
    again while it returns `limit`."""
    now = now or datetime.now(UTC)
    notifier = Notifier.from_settings(settings)  # a bad FELLES_SMTP_URL claims nothing
    async with db.session(autocommit=True) as session:  # a read: no write lock for nothing
        due = select(ReceiptNotice.submission_id).where(ReceiptNotice.due_at <= now).limit(1)
        if await session.scalar(due) is None:
            return 0
    lease_until = now + LEASE
    started = monotonic()
    async with db.session() as session:
        claimed = await _claim(session, now, lease_until, limit)
        if not claimed:
            return 0
        given_up = {sid for sid, attempts in claimed.items() if attempts > MAX_ATTEMPTS}
        live = [sid for sid in claimed if sid not in given_up]
        submissions = list(
            (await session.scalars(select(Submission).where(Submission.id.in_(live)))).all()
        )
        notices = await receipt_notices(session, submissions, settings) if submissions else []
    failed: set[str] = set()
    untried: set[str] = set()
    for notice in notices:
        if monotonic() - started > SEND_BUDGET:
            untried.add(notice.submission_id)
            continue
        try:
            await notifier.send_email(notice.to, notice.subject, notice.text)
        except NotificationError as exc:
            failed.add(notice.submission_id)
            log.warning("receipt notice not sent", reference=notice.reference, reason=str(exc))
    retry = {sid for sid in failed if claimed[sid] < MAX_ATTEMPTS}
    for sid in sorted(given_up | (failed - retry)):
        log.warning("receipt notice given up", submission=sid, attempts=MAX_ATTEMPTS)
    async with db.session() as session:
        ours = ReceiptNotice.due_at == lease_until  # rows whose lease ran out are not ours
        done = [sid for sid in claimed if sid not in retry and sid not in untried]
        if untried:  # due again at once, the attempt given back
            await session.execute(
                update(ReceiptNotice)
                .where(ReceiptNotice.submission_id.in_(untried), ours)
                .values(due_at=now, attempts=ReceiptNotice.attempts - 1)
            )
        if done:
            await session.execute(
                delete(ReceiptNotice).where(ReceiptNotice.submission_id.in_(done), ours)
            )
        for sid in retry:
            await session.execute(
                update(ReceiptNotice)
                .where(ReceiptNotice.submission_id == sid, ours)
                .values(due_at=now + RETRY_AFTER[claimed[sid] - 1])
            )
    return len(claimed)


async def _claim(
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int
) -> dict[str, int]:
    """Lease up to `limit` due rows; their attempts (this one included), by submission."""
    R = ReceiptNotice
    lease = leasing(
        R.submission_id, due=R.due_at, attempts=R.attempts, now=now, until=lease_until, limit=limit
    )
    rows = await session.execute(lease.returning(R.submission_id, R.attempts))
    return {sid: attempts for sid, attempts in rows}
