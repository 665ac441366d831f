"""Migrations: an empty database upgrades to the newest schema, twice is harmless, it matches the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from state import WatchKind, migrate, open_store, sqlite_url
from state.db import make_engine
from state.migrate import HEAD, alembic_config, current_revision, head_revision
from state.models import Base

TABLES = {"events", "watches", "jobs", "job_events", "releases", "commands", "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path, postgres) -> Iterator[str]:
    """A database with nothing in it."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "fresh")
        return
    if postgres is None:
        pytest.skip("PostgreSQL not reachable")
    url = postgres.create()
    yield url
    postgres.drop(url)


def test_upgrade_from_empty_then_again(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert current_revision(engine) is None

    migrate(empty_url)
    migrate(empty_url)  # a restart: nothing to do, nothing breaks

    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_a_database_at_0001_keeps_its_watches_and_gains_their_kv_cache_option(empty_url: str) -> None:
    """0004 adds `watches.kv_cache`: a watch made before it keeps the planner's default (NULL)."""
    from alembic import command

    engine = make_engine(empty_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO watches (kind, target, formats, sms, approval, created_at)"
                " VALUES ('repo', 'org/model', '[]', '[]', 'auto', '2026-01-01')"
            )
        )
    assert current_revision(engine) == "0001"

    migrate(empty_url)

    assert current_revision(engine) == HEAD
    store = open_store(empty_url)
    watch = store.watches.find(WatchKind.REPO, "org/model")
    assert watch is not None and watch.kv_cache is None
    store.watches.add(WatchKind.REPO, "org/model", kv_cache="none")
    assert store.watches.list()[0].kv_cache == "none"
    store.close()
    engine.dispose()


def test_schema_matches_the_models(empty_url: str) -> None:
    migrate(empty_url)
    engine = make_engine(empty_url)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == [], "models changed without a migration: run state.migrate.new_revision(...)"


def test_open_store_creates_the_sqlite_file_in_wal_mode(tmp_path) -> None:
    data_dir = tmp_path / "data" / "dir"
    store = open_store(sqlite_url(data_dir))

    assert (data_dir / "quantbot.db").is_file()
    with store.db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() > 0
    store.close()


def test_a_status_outside_the_enum_is_refused_by_the_database(tmp_path) -> None:
    store = open_store(sqlite_url(tmp_path))
    with pytest.raises(Exception, match="CHECK constraint"), store.db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (build_key, repo, label, spec, status, attempts, progress, created_at,"
                " updated_at) VALUES ('k', 'r', '', '{}', 'exploded', 0, 0, '2026-01-01', '2026-01-01')"
            )
        )
    store.close()


def test_head_constant_names_the_newest_script() -> None:
    assert head_revision() == HEAD, "a migration was added: set state.migrate.HEAD to its revision"
