"""The e-mail that tells a person their submission arrived is owed from the moment the
receipt is stored, and sent at least once: a worker that dies after claiming it, or a
mail server that refuses it, delays it but does not lose it. Against a real SMTP server
and the database of this run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import delete, select

from felles.config import Settings
from felles.db import Database
from felles.portal import notify, receipts
from felles.portal.models import ReceiptNotice, Submission
from felles.registry.models import ContactInfo
from tests.mailbox.test_notifying import RejectingSmtp
from tests.notifications.test_notifications import SmtpSink
from tests.portal.factories import make_submission
from tests.portal.test_receipts import KINDERGARTEN


@pytest.fixture
def mail_settings(settings: Settings) -> Settings:
    """A copy of the run's settings, e-mail going to whatever SMTP server a test sets."""
    return settings.model_copy()


async def someone_with_email(db: Database, *, email: bool = True) -> str:
    async with db.session() as session:
        has_email = ContactInfo.email.is_not(None) if email else ContactInfo.email.is_(None)
        pid = await session.scalar(
            select(ContactInfo.pid).where(has_email, ContactInfo.reserved.is_(False)).limit(1)
        )
    assert pid, "the demo country has such a person"
    return pid


async def submitted_with_receipt(db: Database, *, email: bool = True) -> Submission:
    """A submission whose receipt is stored (and its e-mail owed), nothing sent yet."""
    pid = await someone_with_email(db, email=email)
    submission = await make_submission(
        db,
        "kindergarten-place",
        KINDERGARTEN,
        submitted_by=pid,
        submitted_at=datetime(1991, 1, 1, tzinfo=UTC),
    )
    while await receipts.generate_pending(db, limit=200) > 0:
        pass
    async with db.session() as session:
        assert await session.get(ReceiptNotice, submission.id) is not None
    return submission


def mails_about(smtp: SmtpSink, submission: Submission) -> int:
    return sum(
        submission.reference in m.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        for m in smtp.messages
    )


async def owed(db: Database, submission: Submission) -> ReceiptNotice | None:
    async with db.session() as session:
        return await session.get(ReceiptNotice, submission.id)


async def test_the_email_goes_once_and_is_then_no_longer_owed(
    db: Database, mail_settings: Settings
) -> None:
    submission = await submitted_with_receipt(db)
    with SmtpSink() as smtp:
        mail_settings.smtp_url = SecretStr(smtp.url)
        while await notify.send_due(db, mail_settings) == notify.LIMIT:
            pass
        assert mails_about(smtp, submission) == 1
        assert await owed(db, submission) is None
        await notify.send_due(db, mail_settings)
        assert mails_about(smtp, submission) == 1


async def test_a_worker_that_dies_after_claiming_leaves_it_to_the_next_after_the_lease(
    db: Database, mail_settings: Settings
) -> None:
    submission = await submitted_with_receipt(db)
    now = datetime.now(UTC)
    async with db.session() as session:  # a worker claims, then dies before sending
        claimed = await notify._claim(session, now, now + notify.LEASE, limit=10_000)
    assert submission.id in claimed
    with SmtpSink() as smtp:
        mail_settings.smtp_url = SecretStr(smtp.url)
        await notify.send_due(db, mail_settings, now=now + timedelta(minutes=1))
        assert mails_about(smtp, submission) == 0, "still under the dead worker's lease"
        later = now + notify.LEASE + timedelta(seconds=1)
        while await notify.send_due(db, mail_settings, now=later, limit=10_000) == 10_000:
            pass
        assert mails_about(smtp, submission) == 1
    assert await owed(db, submission) is None


async def test_a_refusing_mail_server_is_retried_then_given_up(
    db: Database, mail_settings: Settings
) -> None:
    submission = await submitted_with_receipt(db)
    now = datetime.now(UTC)
    with RejectingSmtp() as smtp:
        mail_settings.smtp_url = SecretStr(smtp.url)
        tried = []
        for at, attempts_after, due_after in (
            (now, 1, now + timedelta(minutes=1)),
            (now + timedelta(minutes=1), 2, now + timedelta(minutes=6)),
            (now + timedelta(minutes=6), 3, None),
        ):
            await notify.send_due(db, mail_settings, now=at, limit=10_000)
            row = await owed(db, submission)
            if due_after is None:
                assert row is None, "given up after the last attempt"
            else:
                assert row is not None
                assert (row.attempts, row.due_at.replace(tzinfo=UTC)) == (attempts_after, due_after)
            tried.append(len(smtp.envelopes))
    assert tried[0] >= 1 and tried == sorted(tried) and len(set(tried)) == 3


async def test_no_address_nothing_sent_and_nothing_owed(
    db: Database, mail_settings: Settings
) -> None:
    submission = await submitted_with_receipt(db, email=False)
    with SmtpSink() as smtp:
        mail_settings.smtp_url = SecretStr(smtp.url)
        while await notify.send_due(db, mail_settings, limit=10_000) == 10_000:
            pass
        assert mails_about(smtp, submission) == 0
    assert await owed(db, submission) is None


async def test_a_receipt_another_worker_stored_first_is_not_owed_twice(db: Database) -> None:
    submission = await submitted_with_receipt(db)
    async with db.session() as session:
        await session.execute(
            delete(ReceiptNotice).where(ReceiptNotice.submission_id == submission.id)
        )
        # A second worker rendered the same receipt, but its store found it stored: its
        # stamp is not the receipt's, so it owes nothing.
        await (await session.connection()).execute(
            notify.OWE, {"ids": [submission.id], "at": datetime.now(UTC)}
        )
    assert await owed(db, submission) is None


async def test_a_round_out_of_time_gives_back_what_it_never_tried(
    db: Database, mail_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission = await submitted_with_receipt(db)
    now = datetime.now(UTC)
    monkeypatch.setattr(notify, "SEND_BUDGET", -1.0)  # out of time before the first send
    with SmtpSink() as smtp:
        mail_settings.smtp_url = SecretStr(smtp.url)
        await notify.send_due(db, mail_settings, now=now, limit=10_000)
        assert mails_about(smtp, submission) == 0
        row = await owed(db, submission)
        assert row is not None and row.attempts == 0, "due again, the attempt given back"
        monkeypatch.setattr(notify, "SEND_BUDGET", 120.0)
        while await notify.send_due(db, mail_settings, limit=10_000) == 10_000:
            pass
        assert mails_about(smtp, submission) == 1
