"""The prediction log and feedback as rows of the registry's database, for servers and replicas
that share one (PostgreSQL): every replica's batches land in one table, so any reader sees the
whole window.

A row keeps the record's JSON bytes as the log file holds them, beside the columns a read
filters on (model, version, time) and the request id feedback joins on. A batch is one
`executemany`. The statements are built by the `*_statement` functions, apart from the code
that runs them, so their SQL can be read and tested alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, literal, select

from modelyard.registry._database import Database
from modelyard.registry._tables import prediction_feedback, prediction_records

SPREAD = 10_007
"""A sample keeps the rows whose `(id * 7919) % SPREAD` falls under a threshold: a fixed,
well-spread pick (the same page twice shows the same numbers), decided in the index scan."""


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One prediction record to store: the filter columns and the record's JSON bytes."""

    model: str
    version: str
    time: datetime
    request_id: str
    record: bytes


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback record to store."""

    model: str
    time: datetime
    request_id: str
    record: bytes


@dataclass(frozen=True, slots=True)
class WindowCount:
    """A window's rows: how many, and from how many replicas."""

    requests: int
    replicas: int


def insert_predictions(database: Database, rows: Sequence[PredictionRow], *, replica: str) -> None:
    """Store a batch of prediction records written by `replica` (one executemany)."""
    if rows:
        values = [
            {"model": r.model, "version": r.version, "time": r.time,
             "request_id": r.request_id[:255], "replica": replica[:255], "record": r.record}
            for r in rows
        ]  # fmt: skip
        with database.write() as connection:
            connection.execute(prediction_records.insert(), values)


def insert_feedback(database: Database, rows: Sequence[FeedbackRow]) -> None:
    """Store a batch of feedback records (one executemany)."""
    if rows:
        values = [
            {"model": r.model, "time": r.time, "request_id": r.request_id[:255],
             "record": r.record}
            for r in rows
        ]  # fmt: skip
        with database.write() as connection:
            connection.execute(prediction_feedback.insert(), values)


def _window(model: str, version: str, since: datetime, until: datetime) -> Any:
    table = prediction_records.c
    return and_(table.model == model, table.version == version, table.time >= since,
                table.time < until)  # fmt: skip


def records_statement(
    model: str, version: str, since: datetime, until: datetime, *, share: float = 1.0
) -> Select[Any]:
    """The records of a version in [since, until), oldest first; with `share` < 1 a fixed
    sample of about that share of them."""
    statement = select(prediction_records.c.record).where(_window(model, version, since, until))
    if share < 1.0:
        spread = (prediction_records.c.id * 7919) % SPREAD
        statement = statement.where(spread < literal(max(1, int(share * SPREAD))))
    return statement.order_by(prediction_records.c.time, prediction_records.c.id)


def count_statement(model: str, version: str, since: datetime, until: datetime) -> Select[int, int]:
    """How many records a version has in [since, until), and from how many replicas."""
    return select(func.count(), func.count(prediction_records.c.replica.distinct())).where(
        _window(model, version, since, until)
    )


def read_predictions(
    database: Database, model: str, version: str, *, since: datetime, until: datetime,
    share: float = 1.0,
) -> list[bytes]:  # fmt: skip
    """The JSON bytes of a version's records in [since, until) (see `records_statement`)."""
    with database.read() as connection:
        statement = records_statement(model, version, since, until, share=share)
        found: list[bytes] = list(connection.execute(statement).scalars())
        return found


def count_predictions(
    database: Database, model: str, version: str, *, since: datetime, until: datetime
) -> WindowCount:
    """How many records a version has in [since, until), from how many replicas."""
    with database.read() as connection:
        requests, replicas = connection.execute(count_statement(model, version, since, until)).one()
    return WindowCount(int(requests), int(replicas))


def last_prediction(database: Database, model: str, version: str) -> datetime | None:
    """The time of a version's newest record (None when it has none)."""
    table = prediction_records.c
    statement = select(func.max(table.time)).where(table.model == model, table.version == version)
    with database.read() as connection:
        found: datetime | None = connection.execute(statement).scalar()
    return found


def predicted_versions(database: Database) -> list[tuple[str, str]]:
    """(model, version) of every version with a logged record, sorted."""
    table = prediction_records.c
    statement = select(table.model, table.version).distinct().order_by(table.model, table.version)
    with database.read() as connection:
        return [(str(m), str(v)) for m, v in connection.execute(statement)]


def read_feedback_rows(database: Database, model: str, *, since: datetime) -> list[bytes]:
    """The JSON bytes of `model`'s feedback that arrived since `since`, oldest first."""
    table = prediction_feedback.c
    statement = (
        select(table.record)
        .where(table.model == model, table.time >= since)
        .order_by(table.time, table.id)
    )
    with database.read() as connection:
        return list(connection.execute(statement).scalars())
