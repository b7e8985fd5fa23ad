"""Dead letters: idempotency key, so a redelivered message updates its row instead of adding one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as b:
        b.add_column(sa.Column("key", sa.String(64), nullable=True))
        b.create_unique_constraint("uq_dead_letters_key", ["key"])


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as b:
        b.drop_constraint("uq_dead_letters_key", type_="unique")
        b.drop_column("key")
