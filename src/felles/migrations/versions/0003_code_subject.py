"""authorization codes carry the client's pairwise subject

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 07:05:00

The token endpoint turns a code into a refresh token in one statement; the refresh
token needs the subject, so the code keeps it (computed once, at the login).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "identity_authorization_code", sa.Column("sub", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("identity_authorization_code") as batch:
        batch.drop_column("sub")
