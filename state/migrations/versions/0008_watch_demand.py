"""demand: a base-model watch that builds its most popular fine-tunes within a monthly budget, and the
ranking it made last

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:25:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("demand", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("monthly_budget", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ranking", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.drop_column("ranking")
        batch_op.drop_column("monthly_budget")
        batch_op.drop_column("demand")
