"""Gateways: the gateway a device publishes through (``devices.gateway``) and the gateway
credentials the broker export gives a topic prefix each (``gateways``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as b:
        b.add_column(sa.Column("gateway", sa.String(64), nullable=True))
        b.create_index("ix_devices_gateway", ["gateway"])
    op.create_table(
        "gateways",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(256), nullable=False),
        sa.Column("site", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
    )
    op.create_index("ix_gateways_site", "gateways", ["site"])


def downgrade() -> None:
    op.drop_index("ix_gateways_site", table_name="gateways")
    op.drop_table("gateways")
    with op.batch_alter_table("devices") as b:
        b.drop_index("ix_devices_gateway")
        b.drop_column("gateway")
