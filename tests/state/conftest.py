"""Stores for the state tests: every test runs on SQLite and, when one is reachable, on PostgreSQL.

PostgreSQL comes from `QUANTBOT_TEST_POSTGRES` (default: the local server, trust auth). One database is
migrated per session and emptied before each test (TRUNCATE is ~20 ms where CREATE DATABASE is ~600 ms);
tests of migrations get fresh empty databases. The PostgreSQL cases are skipped, saying why, when no
server answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from state import Store, open_store, sqlite_url

TABLES = ("events", "watches", "jobs", "job_events", "releases", "commands")
PG_URL = os.environ.get("QUANTBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _admin(url: str):  # -> psycopg.Connection | None
    try:
        import psycopg
    except ImportError:
        return None
    try:
        return psycopg.connect(url, connect_timeout=2, autocommit=True)
    except psycopg.OperationalError:
        return None


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


class Postgres:
    """Throw-away databases on the test server: one shared and migrated, others empty on demand."""

    def __init__(self, admin) -> None:  # admin: psycopg.Connection
        self.admin = admin
        self.shared = self.create()
        open_store(self.shared).close()  # migrated once

    def create(self) -> str:
        name = f"qb_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        return _with_database(PG_URL, name)

    def emptied(self) -> str:
        """The shared database with every table emptied and every id sequence reset."""
        import psycopg

        with psycopg.connect(self.shared, autocommit=True) as connection:
            connection.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        return self.shared

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.drop(self.shared)
        self.admin.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres | None]:
    admin = _admin(PG_URL)
    if admin is None:
        yield None
        return
    pg = Postgres(admin)
    yield pg
    pg.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path, postgres: Postgres | None) -> Iterator[str]:
    """A URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if postgres is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} (set QUANTBOT_TEST_POSTGRES)")
    yield postgres.emptied()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = open_store(db_url)
    yield store
    store.close()
