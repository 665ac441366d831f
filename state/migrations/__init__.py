"""Alembic migrations of the quantbot schema; run them with `state.migrate(url)`."""
