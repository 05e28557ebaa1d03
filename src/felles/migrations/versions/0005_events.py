"""events: outbox, webhook subscriptions, deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:00:00

On PostgreSQL the outbox's `seq` comes from `events_next_seq()`, which gives the
transaction its id before it takes a number, and `horizon` records the next transaction
id right after: the pull feed shows an event once every transaction older than its
horizon has ended, so it never skips a slower transaction's lower number.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NEXT_SEQ = """
CREATE FUNCTION events_next_seq() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_current_xact_id();
  RETURN nextval('events_outbox_seq_seq');
END $$
"""


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    seq_default = None
    horizon_default = None
    if postgresql:
        op.execute("CREATE SEQUENCE events_outbox_seq_seq")
        op.execute(NEXT_SEQ)
        seq_default = sa.text("events_next_seq()")
        horizon_default = sa.text("(pg_snapshot_xmax(pg_current_snapshot())::text::bigint)")
    op.create_table(
        "events_outbox",
        sa.Column("seq", SEQ, server_default=seq_default, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("recipient_orgnr", sa.String(length=9), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("fanned_out", sa.Boolean(), nullable=False),
        sa.Column("horizon", sa.BigInteger(), server_default=horizon_default, nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_outbox_event_id")),
        sqlite_autoincrement=True,
    )
    if postgresql:
        op.execute("ALTER SEQUENCE events_outbox_seq_seq OWNED BY events_outbox.seq")
    op.create_index(
        "ix_events_outbox_recipient_orgnr_seq", "events_outbox", ["recipient_orgnr", "seq"]
    )
    op.create_index(
        "ix_events_outbox_unfanned",
        "events_outbox",
        ["seq"],
        postgresql_where=sa.text("NOT fanned_out"),
        sqlite_where=sa.text("fanned_out = 0"),
    )
    op.create_index("ix_events_outbox_time", "events_outbox", ["time"])

    op.create_table(
        "events_subscription",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("orgnr", sa.String(length=9), nullable=False),
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events_subscription")),
    )
    op.create_index("ix_events_subscription_orgnr", "events_subscription", ["orgnr"])

    op.create_table(
        "events_delivery",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("seq", SEQ, nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("last_status_code", sa.SmallInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["events_subscription.id"],
            name=op.f("fk_events_delivery_subscription_id_events_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["events_outbox.seq"],
            name=op.f("fk_events_delivery_seq_events_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "seq", name=op.f("pk_events_delivery")),
    )
    op.create_index(
        "ix_events_delivery_due",
        "events_delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_events_delivery_seq", "events_delivery", ["seq"])
    op.create_index("ix_events_delivery_finished_at", "events_delivery", ["finished_at"])


def downgrade() -> None:
    op.drop_table("events_delivery")
    op.drop_table("events_subscription")
    op.drop_table("events_outbox")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS events_next_seq()")
