"""The registry and Optuna's studies share one database: each keeps its schema revision in its
own table, and a database from before that is adopted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from modelyard.registry import Database, Registry
from modelyard.registry._database import LEGACY_VERSION_TABLE, VERSION_TABLE

MIGRATIONS = [
    "0001_initial",
    "0002_principals",
    "0003_idempotency",
    "0004_webhooks",
    "0005_prediction_log",
    "0006_leases",
    "0007_tag_statistics",
]
HEAD = MIGRATIONS[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind, empty: no registry, no study."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url: str = request.getfixturevalue("fresh_postgres")  # migrated: emptied here
        with _opened(url) as database, database.write() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        yield url


@contextmanager
def _opened(url: str) -> Iterator[Database]:
    database = Database(url)
    database.open()
    try:
        yield database
    finally:
        database.close()


def _versions(database: Database, table: str) -> list[str] | None:
    """The revisions recorded in `table`, or None when it does not exist."""
    with database.read() as connection:
        if not inspect(connection).has_table(table):
            return None
        return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {table}"))]


def make_old_style(database: Database, extra: str | None = None, *, keep: bool = False) -> None:
    """Record the revision where modelyard did before it kept a table of its own (`keep`: and
    in ours too), with an `extra` revision beside it."""
    with database.write() as connection:
        if not keep:
            connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        connection.execute(
            text(f"CREATE TABLE {LEGACY_VERSION_TABLE} (version_num VARCHAR(32) PRIMARY KEY)")
        )
        for revision in [HEAD, *([extra] if extra else [])]:
            connection.execute(
                text(f"INSERT INTO {LEGACY_VERSION_TABLE} VALUES (:r)"), {"r": revision}
            )


def _study(url: str, name: str) -> int:
    """Run two trials of the study `name` in the database at `url`; return its trial count."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={})
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)
    count = len(study.trials)
    storage.engine.dispose()
    return count


def test_migrations_are_recorded_in_a_table_of_our_own(fresh_url: str) -> None:
    with _opened(fresh_url) as database:
        assert database.pending() == MIGRATIONS
        assert database.migrate() == MIGRATIONS
        assert _versions(database, VERSION_TABLE) == [HEAD]
        assert _versions(database, LEGACY_VERSION_TABLE) is None
        assert database.pending() == [] and database.migrate() == []


def test_an_old_style_database_is_adopted(fresh_url: str) -> None:
    with _opened(fresh_url) as database:
        database.migrate()
        Registry(database, actor="ana").create_version("fraud", metrics={"auc": 0.9})
        make_old_style(database)
        assert database.pending() == []  # its schema is current: it keeps working as it is
        assert database.migrate() == []  # nothing applied, the revision moved
        assert _versions(database, VERSION_TABLE) == [HEAD]
        assert _versions(database, LEGACY_VERSION_TABLE) is None
        assert Registry(database, actor="ana").get_version("fraud:1").metrics == {"auc": 0.9}
    assert _study(fresh_url, "after-adoption") == 2


@pytest.mark.parametrize("keep", [False, True])
def test_adoption_leaves_revisions_that_are_not_ours(tmp_path: Path, keep: bool) -> None:
    with _opened(f"sqlite:///{tmp_path / 'mixed.db'}") as database:
        database.migrate()
        make_old_style(database, extra="v3.2.0.a", keep=keep)
        assert database.legacy_revisions() == [HEAD]
        database.migrate()
        assert database.legacy_revisions() == []
        assert _versions(database, VERSION_TABLE) == [HEAD]
        assert _versions(database, LEGACY_VERSION_TABLE) == ["v3.2.0.a"]


def test_optuna_then_the_registry_in_one_database(fresh_url: str) -> None:
    _study(fresh_url, "first")
    with _opened(fresh_url) as database:
        optuna_revision = _versions(database, LEGACY_VERSION_TABLE)
        assert optuna_revision and optuna_revision[0] != "0001_initial"
        assert database.migrate() == MIGRATIONS
        assert _versions(database, LEGACY_VERSION_TABLE) == optuna_revision  # left alone
        Registry(database, actor="ana").create_version("fraud")
    assert _study(fresh_url, "first") == 4


def test_the_registry_then_optuna_in_one_database(fresh_url: str) -> None:
    with _opened(fresh_url) as database:
        database.migrate()
    _study(fresh_url, "second")
    with _opened(fresh_url) as database:
        assert database.pending() == [] and database.migrate() == []
        registry = Registry(database, actor="ana")
        run = registry.create_run(name="trial")
        assert registry.end_run(run.id, "pruned").status == "pruned"
