"""Runs: one training or tuning run: params, step metrics, dataset digests, code revision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, func, insert, select, update

from modelyard.errors import ConfigurationError, RunNotFound
from modelyard.registry._audit import utc
from modelyard.registry._numbers import finite_values, int64
from modelyard.registry._records import MetricPoint, Run
from modelyard.registry._tables import run_metrics, runs
from modelyard.registry._versions import new_id, now

STATUSES = ("running", "finished", "failed", "killed", "pruned")
"""A run's states: `running`, then one of the others when it ends (`pruned`: a tuning trial
stopped early because it was doing worse than the others)."""


def create_run(
    connection: Connection,
    *,
    name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any],
    datasets: Mapping[str, str],
    code_revision: str | None,
    actor: str,
) -> str:
    """Insert a running run; return its id."""
    run_id = new_id()
    connection.execute(
        insert(runs).values(
            id=run_id,
            name=name,
            status="running",
            params={str(k): str(v) for k, v in params.items()},
            tags={str(k): str(v) for k, v in tags.items()},
            datasets=dict(datasets),
            artifacts={},
            code_revision=code_revision,
            created_by=actor,
            started_at=now(),
        )
    )
    return run_id


def run_row(connection: Connection, run_id: str) -> Row[Any]:
    """The run's row, or `RunNotFound`."""
    row = connection.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise RunNotFound(run_id)
    return row


def merge_fields(
    connection: Connection, run_id: str, field: str, values: Mapping[str, Any]
) -> None:
    """Add `values` to the run's params, tags or datasets."""
    row = run_row(connection, run_id)
    merged = {**getattr(row, field), **{str(k): str(v) for k, v in values.items()}}
    connection.execute(update(runs).where(runs.c.id == run_id).values({field: merged}))


def log_metrics(
    connection: Connection,
    run_id: str,
    metrics: Mapping[str, float],
    *,
    step: int | None,
    timestamp: datetime | None = None,
) -> None:
    """Record metric values at `step` (default: one past the last step of each metric)."""
    values = finite_values(metrics, what="metric")
    if step is not None:
        int64(step, what="step")
    run_row(connection, run_id)
    moment = timestamp or now()
    rows = []
    for key, number in values.items():
        at = step if step is not None else _next_step(connection, run_id, key)
        rows.append(
            {"run_id": run_id, "key": str(key), "step": at, "value": number, "timestamp": moment}
        )
    if rows:
        connection.execute(insert(run_metrics), rows)


def _next_step(connection: Connection, run_id: str, key: str) -> int:
    last = connection.execute(
        select(func.max(run_metrics.c.step)).where(
            run_metrics.c.run_id == run_id, run_metrics.c.key == key
        )
    ).scalar()
    return 0 if last is None else int64(int(last) + 1, what=f"the next step of metric {key!r}")


def finish(connection: Connection, run_id: str, status: str) -> None:
    """Close the run with `status`."""
    if status not in STATUSES[1:]:
        raise ConfigurationError(f"run status {status!r} is not one of {', '.join(STATUSES[1:])}")
    run_row(connection, run_id)
    connection.execute(
        update(runs).where(runs.c.id == run_id).values(status=status, ended_at=now())
    )


def to_run(connection: Connection, row: Row[Any]) -> Run:
    """A `Run` record, with each metric's latest value."""
    return to_runs(connection, [row])[0]


def to_runs(connection: Connection, rows: Sequence[Row[Any]]) -> list[Run]:
    """`Run` records for rows of `runs`, with each metric's latest value (one query per
    thousand runs, not one per run)."""
    latest: dict[str, dict[str, float]] = {row.id: {} for row in rows}
    ids = list(latest)
    for start in range(0, len(ids), 1000):
        for run_id, key, value in connection.execute(_latest_values(ids[start : start + 1000])):
            latest[run_id][key] = value
    return [_record(row, latest[row.id]) for row in rows]


def _latest_values(ids: list[str]) -> Select[Any]:
    last = (
        select(run_metrics.c.run_id, run_metrics.c.key, func.max(run_metrics.c.step).label("step"))
        .where(run_metrics.c.run_id.in_(ids))
        .group_by(run_metrics.c.run_id, run_metrics.c.key)
        .subquery()
    )
    matches = (
        (last.c.run_id == run_metrics.c.run_id)
        & (last.c.key == run_metrics.c.key)
        & (last.c.step == run_metrics.c.step)
    )
    return (
        select(run_metrics.c.run_id, run_metrics.c.key, run_metrics.c.value)
        .join(last, matches)
        .order_by(run_metrics.c.id)
    )


def _record(row: Row[Any], metrics: dict[str, float]) -> Run:
    return Run(
        id=row.id,
        name=row.name,
        status=row.status,
        params=row.params,
        tags=row.tags,
        datasets=row.datasets,
        artifacts=row.artifacts,
        code_revision=row.code_revision,
        created_by=row.created_by,
        started_at=utc(row.started_at),
        ended_at=utc(row.ended_at) if row.ended_at else None,
        metrics=metrics,
    )


def metric_history(connection: Connection, run_id: str, key: str) -> list[MetricPoint]:
    """Every value of one metric of a run, by step."""
    run_row(connection, run_id)
    rows = connection.execute(
        select(run_metrics)
        .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
        .order_by(run_metrics.c.step, run_metrics.c.id)
    ).all()
    return [
        MetricPoint(key=r.key, step=r.step, value=r.value, timestamp=utc(r.timestamp)) for r in rows
    ]
