"""Sparkplug B births: each edge node's and device's alias table and bdSeq, kept across restarts
and shared by workers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sparkplug_births",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("bd_seq", sa.String(20), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("born_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sparkplug_births")
