"""How `Database` opens connections: the page cache of SQLite, and reads without a transaction
on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from modelyard.registry import Database, Registry
from modelyard.registry._database import CACHE_KIB


def test_reads_take_a_snapshot_on_sqlite_and_autocommit_on_postgresql(database: Database) -> None:
    with database.read() as connection:
        driver = connection.connection.driver_connection
        if database.dialect == "sqlite":
            assert driver is not None and driver.in_transaction  # one snapshot for the read
            size = connection.exec_driver_sql("PRAGMA cache_size").scalar()
            assert size == -CACHE_KIB
        else:  # READ COMMITTED: a transaction would only add BEGIN and COMMIT round trips
            assert getattr(driver, "autocommit", None) is True
            assert connection.execute(text("SELECT 1")).scalar() == 1
    with database.write() as connection:  # likely the same pooled connection, reset
        driver = connection.connection.driver_connection
        if database.dialect == "postgresql":
            assert getattr(driver, "autocommit", None) is False


def test_a_read_after_a_write_sees_it(registry: Registry) -> None:
    registry.create_version("fraud", metrics={"auc": 0.9})
    registry.set_alias("fraud", "production", "fraud:1")
    assert registry.get_version("fraud@production").metrics == {"auc": 0.9}
    assert registry.get_model("fraud").aliases == {"production": 1}
