"""The portal's tables: published services, drafts, submissions, attachments, the inbox's
messages, delegations and the log of access decisions.

A *party* is whom a person acts for: themself (`person`, a national identity number) or
a business (`organisation`, an organisation number). Drafts, submissions and messages
belong to a party; `acted_by` says which person did it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from felles.db import Base


class PartyKind(StrEnum):
    person = "person"
    organisation = "organisation"


class SubmissionStatus(StrEnum):
    received = "received"  # stored; the agency has not fetched it yet
    acknowledged = "acknowledged"  # the agency has it
    decided = "decided"  # the agency sent a decision


class MessageKind(StrEnum):
    receipt = "receipt"  # the portal's copy of a submission's receipt
    feedback = "feedback"  # an agency's answer to a submission, not final
    decision = "decision"  # an agency's decision on a submission
    correspondence = "correspondence"  # a standalone message from an agency


class ScanStatus(StrEnum):
    pending = "pending"
    clean = "clean"
    infected = "infected"


class ServiceVersion(Base):
    """One published version of a service definition (versions are never changed)."""

    __tablename__ = "portal_service_version"

    code: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(9), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str] = mapped_column(String(100))


class Service(Base):
    """The catalogue entry of a service: its current version and what search looks in."""

    __tablename__ = "portal_service"

    code: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(9), index=True)
    current_version: Mapped[int] = mapped_column(Integer)
    # Lower-case names, descriptions and keywords in all languages, for catalogue search.
    search_text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Draft(Base):
    """A form being filled in, saved at every page; becomes a submission once."""

    __tablename__ = "portal_draft"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(63))
    service_version: Mapped[int] = mapped_column(Integer)
    party_kind: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[str] = mapped_column(String(11))
    created_by: Mapped[str] = mapped_column(String(11))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Field -> source of each value the registers filled in ("population register").
    prefilled: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Pages the person has completed, in order.
    pages_done: Mapped[list[str]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_portal_draft_party", "party_kind", "party_id", "updated_at"),)


class Submission(Base):
    """What a party sent to an agency, with its receipt. At most one per draft."""

    __tablename__ = "portal_submission"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    draft_id: Mapped[str] = mapped_column(String(32), unique=True)
    service_code: Mapped[str] = mapped_column(String(63))
    service_version: Mapped[int] = mapped_column(Integer)
    owner_orgnr: Mapped[str] = mapped_column(String(9))
    party_kind: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[str] = mapped_column(String(11))
    submitted_by: Mapped[str] = mapped_column(String(11))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the receipt shows besides the answers, as it was when sent: the names of the
    # sender and the party, the labels of choices drawn from the registers, and where
    # prefilled values came from. The receipt is rendered later without lookups.
    receipt_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=SubmissionStatus.received.value)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    receipt_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    receipt_ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_portal_submission_owner", "owner_orgnr", "status", "submitted_at"),
        Index("ix_portal_submission_party", "party_kind", "party_id", "submitted_at"),
        Index(
            "ix_portal_submission_receipt_todo",
            "receipt_ready_at",
            "submitted_at",
        ),
    )


class Attachment(Base):
    """A file added to a draft (then its submission) or to an agency's message."""

    __tablename__ = "portal_attachment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    draft_id: Mapped[str | None] = mapped_column(String(32), index=True)
    submission_id: Mapped[str | None] = mapped_column(String(36), index=True)
    message_id: Mapped[str | None] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    scan_status: Mapped[str] = mapped_column(String(10), default=ScanStatus.pending.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """Something in a party's inbox from an agency (or the portal's own receipt copy)."""

    __tablename__ = "portal_message"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_kind: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[str] = mapped_column(String(11))
    kind: Mapped[str] = mapped_column(String(16))
    sender_orgnr: Mapped[str] = mapped_column(String(9))
    submission_id: Mapped[str | None] = mapped_column(
        ForeignKey("portal_submission.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    sender_reference: Mapped[str | None] = mapped_column(String(100))
    confirm_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_by: Mapped[str | None] = mapped_column(String(11))

    __table_args__ = (Index("ix_portal_message_party", "party_kind", "party_id", "created_at"),)


class Delegation(Base):
    """A business's general manager lets a person use one service for the business."""

    __tablename__ = "portal_delegation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    orgnr: Mapped[str] = mapped_column(String(9))
    service_code: Mapped[str] = mapped_column(String(63))
    to_pid: Mapped[str] = mapped_column(String(11), index=True)
    granted_by: Mapped[str] = mapped_column(String(11))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(11))

    __table_args__ = (Index("ix_portal_delegation_org", "orgnr", "service_code"),)


class AccessDecision(Base):
    """Every decision `authz` made: who, acting for whom, on what, allowed or not, why."""

    __tablename__ = "portal_access_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    pid: Mapped[str] = mapped_column(String(11))
    party_kind: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[str] = mapped_column(String(11))
    service_code: Mapped[str | None] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(30))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(100))


class PendingPost(Base):
    """A page posted after the login session expired: kept until the person logs in
    again, then applied to their draft, so nothing typed is lost."""

    __tablename__ = "portal_pending_post"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    draft_id: Mapped[str] = mapped_column(String(32))
    page_id: Mapped[str] = mapped_column(String(41))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ReceiptNotice(Base):
    """An e-mail owed to the sender of a submission whose receipt is stored. Written with
    the receipt and deleted once the e-mail is handed over (or given up), so a worker
    that dies in between leaves it to be sent after its lease: at least once."""

    __tablename__ = "portal_receipt_notice"

    submission_id: Mapped[str] = mapped_column(
        ForeignKey("portal_submission.id", ondelete="CASCADE"), primary_key=True
    )
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
