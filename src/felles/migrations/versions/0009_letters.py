"""mailbox batches, letters, their encrypted content and notifications

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 14:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _where(condition: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "mailbox_batch",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=9), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("letters", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("committed_at", TS, nullable=True),
        sa.Column("released_at", TS, nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_batch")),
        sa.UniqueConstraint(
            "sender_orgnr", "reference", name=op.f("uq_mailbox_batch_sender_orgnr")
        ),
    )
    op.create_index(
        "ix_mailbox_batch_committed",
        "mailbox_batch",
        ["committed_at"],
        **_where("status = 'committed'"),
    )
    op.create_table(
        "mailbox_letter",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=9), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("recipient_pid", sa.String(length=11), nullable=False),
        sa.Column("sender_ref", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=40), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("repeat_after_days", sa.Integer(), nullable=True),
        sa.Column("print_allowed", sa.Boolean(), nullable=False),
        sa.Column("visible_from", TS, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=True),
        sa.Column("mailbox_address", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("notification_failed", sa.Boolean(), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("notified_at", TS, nullable=True),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("printed_at", TS, nullable=True),
        sa.Column("failed_at", TS, nullable=True),
        sa.Column("folder", sa.String(length=10), nullable=False),
        sa.Column("read_at", TS, nullable=True),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["mailbox_batch.id"],
            name=op.f("fk_mailbox_letter_batch_id_mailbox_batch"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_letter")),
        sa.UniqueConstraint("batch_id", "seq", name=op.f("uq_mailbox_letter_batch_id")),
    )
    op.create_index("ix_mailbox_letter_sender", "mailbox_letter", ["sender_orgnr", "created_at"])
    op.create_index(
        "ix_mailbox_letter_recipient",
        "mailbox_letter",
        ["recipient_pid", "provider", "created_at"],
    )
    op.create_index(
        "ix_mailbox_letter_waiting",
        "mailbox_letter",
        ["batch_id", "seq"],
        **_where("status = 'accepted'"),
    )
    op.create_index(
        "ix_mailbox_letter_print",
        "mailbox_letter",
        ["created_at"],
        **_where("channel = 'print' AND status = 'delivered'"),
    )
    op.create_table(
        "mailbox_letter_content",
        sa.Column("letter_id", sa.String(length=36), nullable=False),
        sa.Column("cms", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["mailbox_letter.id"],
            name=op.f("fk_mailbox_letter_content_letter_id_mailbox_letter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("letter_id", name=op.f("pk_mailbox_letter_content")),
    )
    op.create_table(
        "mailbox_notification",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("letter_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("repetition", sa.Integer(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["mailbox_letter.id"],
            name=op.f("fk_mailbox_notification_letter_id_mailbox_letter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_notification")),
    )
    op.create_index("ix_mailbox_notification_letter", "mailbox_notification", ["letter_id"])
    op.create_index(
        "ix_mailbox_notification_due",
        "mailbox_notification",
        ["due_at"],
        **_where("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_table("mailbox_notification")
    op.drop_table("mailbox_letter_content")
    op.drop_table("mailbox_letter")
    op.drop_table("mailbox_batch")
