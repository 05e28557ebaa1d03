"""receipt e-mails owed, kept until they are handed over

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_receipt_notice",
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["portal_submission.id"],
            name=op.f("fk_portal_receipt_notice_submission_id_portal_submission"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("submission_id", name=op.f("pk_portal_receipt_notice")),
    )
    op.create_index(op.f("ix_portal_receipt_notice_due_at"), "portal_receipt_notice", ["due_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_receipt_notice_due_at"), table_name="portal_receipt_notice")
    op.drop_table("portal_receipt_notice")
