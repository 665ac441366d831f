"""releases follow their upstream: a cooldown per watch, jobs that wait for it, dashboards per upstream,
releases verified again

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cooldown_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("dashboard", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verified_table", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("verified_ok", sa.Boolean(), nullable=True))
    op.create_table(
        "dashboards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(length=200), nullable=False),
        sa.Column("discussion_num", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboards")),
        sa.UniqueConstraint("upstream", name=op.f("uq_dashboards_upstream")),
    )


def downgrade() -> None:
    op.drop_table("dashboards")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("verified_ok")
        batch_op.drop_column("verified_table")
        batch_op.drop_column("verified_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.drop_column("dashboard")
        batch_op.drop_column("cooldown_minutes")
