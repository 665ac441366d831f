"""Alembic environment: runs on the connection `state.migrate` hands over (no alembic.ini needed).

To add a revision after changing `state/models.py`:
`python -c "from state.migrate import new_revision; new_revision('what changed')"`, then read and edit it.
"""

from __future__ import annotations

from alembic import context

from state.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
