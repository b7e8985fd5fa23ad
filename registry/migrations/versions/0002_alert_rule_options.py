"""Alert rules: quiet period, event level, signed rate; alert list indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as b:
        b.add_column(sa.Column("clear_after_s", sa.Float(), nullable=False, server_default="0"))
        b.add_column(sa.Column("level", sa.String(16), nullable=True))
        b.add_column(sa.Column("absolute", sa.Boolean(), nullable=False, server_default=sa.text("true")))


def downgrade() -> None:
    with op.batch_alter_table("alert_rules") as b:
        b.drop_column("absolute")
        b.drop_column("level")
        b.drop_column("clear_after_s")
