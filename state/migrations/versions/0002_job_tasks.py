"""job tasks: the remote tasks a job fans out to (Celery executor)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 20:49:58.925639
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sm", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "sent",
                "started",
                "succeeded",
                "failed",
                "revoked",
                "lost",
                name=op.f("ck_job_tasks_state"),
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_tasks_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_job_tasks_task_id")),
    )
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_tasks_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_tasks_job_id"))

    op.drop_table("job_tasks")
