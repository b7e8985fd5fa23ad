"""Alert notifications: channels, the outbox and delivery attempts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_channels",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("secret_name", sa.String(128), nullable=True),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("site", sa.String(128), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("renotify_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel_id", BigId, sa.ForeignKey("notify_channels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index("ix_notify_outbox_due", "notify_outbox", ["status", "due_at"])
    op.create_index("ix_notify_outbox_alert_id", "notify_outbox", ["alert_id"])
    op.create_index("ix_notify_outbox_channel_id", "notify_outbox", ["channel_id"])
    op.create_table(
        "notify_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", BigId, sa.ForeignKey("notify_outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
    )
    op.create_index("ix_notify_attempts_outbox_id", "notify_attempts", ["outbox_id"])


def downgrade() -> None:
    op.drop_table("notify_attempts")
    op.drop_table("notify_outbox")
    op.drop_table("notify_channels")
