"""submissions keep what their receipt shows besides the answers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:00:00

Names and sources are known when a form is sent; keeping them with the submission lets
receipts be rendered in batches without looking anyone up again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("portal_submission", sa.Column("receipt_facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("portal_submission") as batch:
        batch.drop_column("receipt_facts")
