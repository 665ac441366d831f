"""jobs remember a transient failure: when the step tries again, since when and how often the Hub failed it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("transient_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("transient_tries", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("transient_tries")
        batch_op.drop_column("transient_since")
        batch_op.drop_column("retry_at")
