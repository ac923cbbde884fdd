"""Alias moves are announced on PostgreSQL (NOTIFY, at commit) to a listener that reconnects."""

from __future__ import annotations

import time
from pathlib import Path

from sklearn.linear_model import LinearRegression
from sqlalchemy.dialects import postgresql

from modelyard import Settings, Yard
from modelyard.registry import AliasListener, AliasMove
from modelyard.registry._notify import CHANNEL, libpq_url, notify_statement
from tests.serving.test_follow_notify import X, terminate


def test_the_notify_statement_carries_the_move_as_json() -> None:
    statement = notify_statement(AliasMove("m", "production", 2))
    compiled = statement.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    assert "pg_notify" in str(compiled)
    assert list(compiled.params.values()) == [
        CHANNEL,
        '{"model": "m", "alias": "production", "version": 2}',
    ]
    assert libpq_url("postgresql+psycopg://u:p@h:5/db?sslmode=require") == (
        "postgresql://u:p@h:5/db?sslmode=require"
    )


def wait_until(condition: object, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the limit"
        time.sleep(0.01)


def test_a_listener_hears_every_kind_of_move_and_comes_back(
    tmp_path: Path, fresh_postgres: str
) -> None:
    heard: list[AliasMove | None] = []
    listener = AliasListener(fresh_postgres, backoff=(0.05, 0.1))
    listener.start(heard.append)
    try:
        with Yard(Settings(home=tmp_path / "home", database_url=fresh_postgres)) as yard:
            wait_until(lambda: listener.pid is not None)
            for k in (1, 2):
                yard.log_model(LinearRegression().fit(X, k * X.sum(axis=1)), name="m",
                               alias="production")  # fmt: skip
            yard.rollback("m", "production")
            yard.delete_alias("m", "production")
            moves = [AliasMove("m", "production", v) for v in (1, 2, 1, None)]
            wait_until(lambda: heard[1:] == moves)
            assert heard[0] is None  # the first connect: check everything
            terminate(fresh_postgres, listener.pid or 0)
            wait_until(lambda: listener.connects == 2)
            yard.set_alias("m", "staging", "m:2")
            wait_until(lambda: heard[-1] == AliasMove("m", "staging", 2))
            assert heard[-2] is None  # the reconnect, too
    finally:
        listener.stop()
    assert listener.pid is None
