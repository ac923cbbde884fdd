"""Leases on SQLite and PostgreSQL: one holder at a time, renewals, expiry, release, and a race
of many threads for a free lease that exactly one wins."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from modelyard.errors import ConfigurationError
from modelyard.registry import Database, Lease, Registry
from modelyard.registry._leases import acquire_statement, release_statement


def test_the_statement_takes_or_renews_in_one_upsert() -> None:
    moment = datetime(2026, 12, 3, tzinfo=UTC)
    for dialect, name in ((postgresql.dialect(), "postgresql"), (sqlite.dialect(), "sqlite")):
        statement = acquire_statement(name, "alerts:1", holder="a", moment=moment, seconds=9)
        sql = str(statement.compile(dialect=dialect))
        assert "ON CONFLICT (name) DO UPDATE" in sql
        assert "WHERE leases.holder = excluded.holder OR leases.expires_at <=" in sql
        assert "RETURNING" in sql
    sql = str(release_statement("alerts:1", holder="a").compile(dialect=sqlite.dialect()))
    assert sql == "DELETE FROM leases WHERE leases.name = ? AND leases.holder = ?"


def test_one_holder_until_it_releases(registry: Registry) -> None:
    first = registry.acquire_lease("alerts:x", holder="a:1", seconds=60)
    assert first.holder == "a:1" and first.expires_at > first.acquired_at
    assert registry.acquire_lease("alerts:x", holder="b:2", seconds=60).holder == "a:1"
    renewed = registry.acquire_lease("alerts:x", holder="a:1", seconds=60)
    assert renewed.acquired_at == first.acquired_at and renewed.expires_at >= first.expires_at
    registry.release_lease("alerts:x", holder="b:2")  # not b's: nothing happens
    assert registry.acquire_lease("alerts:x", holder="b:2", seconds=60).holder == "a:1"
    registry.release_lease("alerts:x", holder="a:1")
    taken = registry.acquire_lease("alerts:x", holder="b:2", seconds=60)
    assert taken.holder == "b:2" and taken.acquired_at >= first.acquired_at
    other = registry.acquire_lease("alerts:y", holder="a:1", seconds=60)  # names are separate
    assert other.holder == "a:1"


def test_an_expired_lease_goes_to_the_next_taker(registry: Registry) -> None:
    registry.acquire_lease("alerts:x", holder="a:1", seconds=0.2)
    assert registry.acquire_lease("alerts:x", holder="b:2", seconds=5).holder == "a:1"
    time.sleep(0.3)
    taken = registry.acquire_lease("alerts:x", holder="b:2", seconds=5)
    assert taken.holder == "b:2"
    assert registry.acquire_lease("alerts:x", holder="a:1", seconds=5).holder == "b:2"


def test_a_race_for_a_free_lease_has_one_winner(database: Database) -> None:
    start = threading.Barrier(8)

    def take(index: int) -> Lease:
        start.wait()
        return Registry(database, actor="x").acquire_lease(
            "alerts:race", holder=f"h:{index}", seconds=60
        )

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(take, range(8)))
    winners = {lease.holder for lease in seen}
    assert len(winners) == 1, winners


@pytest.mark.parametrize(
    ("name", "holder", "seconds"),
    [
        ("", "a", 1.0),
        ("a b", "a", 1.0),
        ("../x", "a", 1.0),
        ("x" * 129, "a", 1.0),
        ("alerts:x", "", 1.0),
        ("alerts:x", "a b", 1.0),
        ("alerts:x", "a\n", 1.0),
        ("alerts:x", "h" * 256, 1.0),
        ("alerts:x", "a", 0.0),
        ("alerts:x", "a", -1.0),
        ("alerts:x", "a", float("nan")),
        ("alerts:x", "a", float("inf")),
        ("alerts:x", "a", 86_401.0),
    ],
)
def test_bad_leases_are_refused(registry: Registry, name: str, holder: str, seconds: float) -> None:
    with pytest.raises(ConfigurationError):
        registry.acquire_lease(name, holder=holder, seconds=seconds)
