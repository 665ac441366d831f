"""Schema migrations, run from code: `migrate(url)` brings any quantbot database to the newest schema.

The Alembic scripts ship inside the package (`state/migrations`), so an installed bot migrates itself on
start; there is no alembic.ini to find. A database already at `HEAD` is recognised with one query and
without importing Alembic (a third of the server's start-up time otherwise). On PostgreSQL an advisory
lock keeps two starting bots from migrating at once; on SQLite the write transaction does the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from state.db import make_engine

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).parent / "migrations"
HEAD = "0010"  # the newest script's revision; tests/state/test_migrations.py checks it against the scripts
_LOCK_ID = 0x71756E74  # "qunt": any constant shared by every quantbot process


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the shipped scripts, on `connection` (tests upgrade to old revisions)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def migrate(target: str | Engine) -> None:
    """Upgrade the database at `target` (a URL or an engine) to the newest revision."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        if current_revision(engine) == HEAD:
            return
        from alembic import command

        with engine.connect() as connection:
            connection = connection.execution_options(quantbot_write=True)
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
                command.upgrade(alembic_config(connection), "head")
    finally:
        if isinstance(target, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest revision the shipped scripts know."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts shipped"
    return head


def new_revision(message: str, url: str = "sqlite:///:memory:") -> None:
    """For developers: write a revision script from what differs between the models and `url`'s schema."""
    from alembic import command

    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
        command.revision(alembic_config(connection), message=message, autogenerate=True)
