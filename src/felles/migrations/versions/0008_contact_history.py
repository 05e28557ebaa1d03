"""the contact register keeps every change as history

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_contact_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pid", sa.String(length=11), nullable=False),
        sa.Column("field", sa.String(length=30), nullable=False),
        sa.Column("old_value", sa.String(length=254), nullable=True),
        sa.Column("new_value", sa.String(length=254), nullable=True),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_contact_change")),
    )
    op.create_index(
        "ix_registry_contact_change_pid",
        "registry_contact_change",
        ["pid", "changed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_registry_contact_change_pid", table_name="registry_contact_change")
    op.drop_table("registry_contact_change")
