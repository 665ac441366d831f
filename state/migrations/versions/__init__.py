"""One module per schema revision, oldest first (Alembic reads them; they are not imported directly)."""
