"""Tables of the events part: the outbox, webhook subscriptions and their deliveries."""

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
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from felles.db import Base

# A 64-bit number on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
Seq = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    """One event, written in the transaction of the change it tells about.

    `seq` only grows (SQLite: AUTOINCREMENT; PostgreSQL: a sequence), so subscribers page
    through the feed with `after=<seq>`. On PostgreSQL `horizon` is the next transaction id
    when the event took its number: the feed shows an event only once every transaction
    older than that has ended, so a slow transaction's lower `seq` is never skipped.
    """

    __tablename__ = "events_outbox"

    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(500))
    recipient_orgnr: Mapped[str] = mapped_column(String(9))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[Any] = mapped_column(JSON, nullable=True)  # a CloudEvent may have no data
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)
    horizon: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_events_outbox_recipient_orgnr_seq", "recipient_orgnr", "seq"),
        # Only the few rows the dispatcher still has to fan out.
        Index(
            "ix_events_outbox_unfanned",
            "seq",
            postgresql_where=text("NOT fanned_out"),
            sqlite_where=text("fanned_out = 0"),
        ),
        Index("ix_events_outbox_time", "time"),
        {"sqlite_autoincrement": True},
    )


class Subscription(Base):
    """An organisation's webhook: where to POST which of its events, and the shared secret
    (AES-GCM under the events key, bound to the subscription's id)."""

    __tablename__ = "events_subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    orgnr: Mapped[str] = mapped_column(String(9), index=True)
    endpoint: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    types: Mapped[list[str]] = mapped_column(JSON)  # type prefixes
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One event on its way to one subscription; `lease_until` marks a dispatcher's claim."""

    __tablename__ = "events_delivery"

    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("events_subscription.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(
        Seq, ForeignKey("events_outbox.seq", ondelete="CASCADE"), primary_key=True
    )
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_events_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_events_delivery_seq", "seq"),
        Index("ix_events_delivery_finished_at", "finished_at"),
    )
