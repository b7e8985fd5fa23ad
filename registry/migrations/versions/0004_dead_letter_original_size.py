"""Dead letters: original size and SHA-256 of a payload kept only as a bounded prefix.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as b:
        b.add_column(sa.Column("original_size", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("payload_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as b:
        b.drop_column("payload_sha256")
        b.drop_column("original_size")
