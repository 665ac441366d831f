"""the poller keeps how far it has read each of the Hub's listings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "listing_marks",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("seen_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_listing_marks")),
    )


def downgrade() -> None:
    op.drop_table("listing_marks")
