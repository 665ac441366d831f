"""a watch may turn the default FP8 KV cache off

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:08:44.192241
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kv_cache", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.drop_column("kv_cache")
