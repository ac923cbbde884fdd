from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from modelyard.registry import Database, Registry
from modelyard.registry._tables import audit_head, metadata


def _autocommit(url: str, statement: str) -> None:
    admin = Database(url)
    admin.open()
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(statement))
    finally:
        admin.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "registry.db"
    database = Database(f"sqlite:///{path}")
    database.open()
    database.migrate()
    database.close()
    return path


@pytest.fixture(scope="session")
def postgres_migrated(database_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database for this session; emptied after each test."""
    name = f"registry_{uuid.uuid4().hex[:8]}"
    _autocommit(database_url, f'CREATE DATABASE "{name}"')
    url = f"{database_url.rpartition('/')[0]}/{name}"
    database = Database(url)
    database.open()
    database.migrate()
    database.close()
    yield url
    _autocommit(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database of each kind."""
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "registry.db")
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url: str = request.getfixturevalue("postgres_migrated")
    yield url
    # Emptying the tables is ten times faster than a new database per test.
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    database = Database(url)
    database.open()
    with database.write() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(audit_head.insert().values(id=1, seq=0, hash="0" * 64))
    database.close()


@pytest.fixture
def database(database_url_for: str) -> Iterator[Database]:
    database = Database(database_url_for)
    database.open()
    yield database
    database.close()


@pytest.fixture
def registry(database: Database) -> Registry:
    return Registry(database, actor="ana")


@pytest.fixture
def reviewer(database: Database) -> Registry:
    """The same registry, used by someone else."""
    return Registry(database, actor="ben")
