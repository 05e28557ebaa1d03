"""The mailbox's tables: providers and their certificates, batches, letters (metadata
apart from the encrypted content) and the notifications due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from felles.db import Base


class MailboxProvider(Base):
    """A digital mailbox provider (Felles' own, Digipost, e-Boks): senders encrypt each
    letter to the provider's certificate, so only the provider can read it."""

    __tablename__ = "mailbox_provider"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    certificate_pem: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """A sender's bulk mailing: created, filled with letters, then committed (all its
    letters are released together) or cancelled. `reference` is the sender's own name
    for it, unique per sender, so a crashed upload finds its batch again and resumes."""

    __tablename__ = "mailbox_batch"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_orgnr: Mapped[str] = mapped_column(String(9))
    reference: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))  # open, committed, released, cancelled
    letters: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    committed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("sender_orgnr", "reference"),
        Index(
            "ix_mailbox_batch_committed",
            "committed_at",
            postgresql_where=text("status = 'committed'"),
            sqlite_where=text("status = 'committed'"),
        ),
    )


class Letter(Base):
    """One letter to one person, and what became of it. Only metadata lives here: the
    documents are in `LetterContent`, encrypted for whoever delivers them."""

    __tablename__ = "mailbox_letter"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_orgnr: Mapped[str] = mapped_column(String(9))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("mailbox_batch.id", ondelete="CASCADE"))
    seq: Mapped[int | None] = mapped_column(Integer)  # its line in the batch
    recipient_pid: Mapped[str] = mapped_column(String(11))
    sender_ref: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(40))  # the login level needed to open it
    notify: Mapped[bool] = mapped_column(Boolean)
    repeat_after_days: Mapped[int | None] = mapped_column(Integer)
    print_allowed: Mapped[bool] = mapped_column(Boolean)
    visible_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(8))  # digital, print, none
    reason: Mapped[str | None] = mapped_column(String(40))  # why print or none
    provider: Mapped[str | None] = mapped_column(String(20))
    mailbox_address: Mapped[str | None] = mapped_column(String(100))
    # accepted, delivered, notified, opened, printed, failed
    status: Mapped[str] = mapped_column(String(10))
    notification_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    documents: Mapped[Any] = mapped_column(JSON)  # [{name, type, size, main}]
    size: Mapped[int] = mapped_column(Integer)  # of the encrypted content
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    printed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The owner's side, in Felles' own mailbox:
    folder: Mapped[str] = mapped_column(String(10), default="inbox")  # inbox, archive
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("batch_id", "seq"),
        Index("ix_mailbox_letter_sender", "sender_orgnr", "created_at"),
        Index("ix_mailbox_letter_recipient", "recipient_pid", "provider", "created_at"),
        # A batch's letters still waiting for release, in line order: each release
        # chunk reads the next ones without passing the released ones again.
        Index(
            "ix_mailbox_letter_waiting",
            "batch_id",
            "seq",
            postgresql_where=text("status = 'accepted'"),
            sqlite_where=text("status = 'accepted'"),
        ),
        Index(
            "ix_mailbox_letter_print",
            "created_at",
            postgresql_where=text("channel = 'print' AND status = 'delivered'"),
            sqlite_where=text("channel = 'print' AND status = 'delivered'"),
        ),
    )


class LetterContent(Base):
    """A letter's documents as CMS EnvelopedData for the mailbox provider (or the print
    provider): the sending side of Felles never keeps a readable letter."""

    __tablename__ = "mailbox_letter_content"

    letter_id: Mapped[str] = mapped_column(
        ForeignKey("mailbox_letter.id", ondelete="CASCADE"), primary_key=True
    )
    cms: Mapped[bytes] = mapped_column(LargeBinary)


class Notification(Base):
    """One e-mail or SMS telling a person a letter came (never what it says), due at
    `due_at`; a repetition is a second row, skipped if the letter was opened by then."""

    __tablename__ = "mailbox_notification"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    letter_id: Mapped[str] = mapped_column(ForeignKey("mailbox_letter.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(5))  # email, sms
    repetition: Mapped[int] = mapped_column(Integer)  # 0 first, 1 the reminder
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(8))  # pending, sent, failed, skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_mailbox_notification_letter", "letter_id"),
        Index(
            "ix_mailbox_notification_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
