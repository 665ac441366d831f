"""task spend: the runtime and cost of a task run as a Hugging Face Job

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_tasks") as batch:
        batch.add_column(sa.Column("running_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_tasks") as batch:
        batch.drop_column("cost_usd")
        batch.drop_column("running_s")
