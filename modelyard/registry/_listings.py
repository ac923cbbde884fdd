"""Reads that browsing needs and the registry's operations do not offer, each one query: audit
events newest first with filters (a page of a 100,000-event log), the versions a set of runs
made, and the step history of every metric of a few runs.

    >>> events = audit_page(registry.database, actor="ana", action="alias", limit=50)
    >>> older = audit_page(registry.database, actor="ana", action="alias", before=events[-1].seq)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select

from modelyard.registry._audit import utc
from modelyard.registry._database import Database
from modelyard.registry._numbers import int64
from modelyard.registry._records import AuditEvent
from modelyard.registry._tables import audit_events, models, run_metrics, versions

MAX_AUDIT_PAGE = 1000
"""The most events one page may hold."""


def audit_page_query(
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Select[Any]:
    """The query for `audit_page` (strings bound, never pasted in)."""
    query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
    if target:
        column = audit_events.c.target
        # A model's own events, its versions' (`name:3`) and its aliases' (`name@prod`).
        query = query.where(
            or_(
                column == target,
                column.startswith(f"{target}:", autoescape=True),
                column.startswith(f"{target}@", autoescape=True),
            )
        )
    if actor:
        query = query.where(audit_events.c.actor == actor)
    if action:  # `alias` finds `alias.set` and `alias.delete`; `alias.set` only itself
        query = query.where(
            or_(
                audit_events.c.action == action,
                audit_events.c.action.startswith(f"{action}.", autoescape=True),
            )
        )
    if since is not None:
        query = query.where(audit_events.c.at >= since.astimezone(UTC))
    if until is not None:
        query = query.where(audit_events.c.at < until.astimezone(UTC))
    if before is not None:
        query = query.where(audit_events.c.seq < before)
    return query


def audit_page(
    database: Database,
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[AuditEvent]:
    """Up to `limit` audit events, newest first: about `target` (a model with its versions and
    aliases, or one version `name:N`), by `actor`, of `action` (or its kind: `alias`), at
    `since` or later and before `until`, with a sequence number below `before` (the last
    event of the page before, to page on)."""
    int64(limit, what="limit", low=1, high=MAX_AUDIT_PAGE)
    if before is not None:
        int64(before, what="before", low=0)
    query = audit_page_query(target=target, actor=actor, action=action, since=since,
                             until=until, before=before, limit=limit)  # fmt: skip
    with database.read() as connection:
        return [
            AuditEvent.model_validate({**row._mapping, "at": utc(row.at)})
            for row in connection.execute(query)
        ]


def run_versions_query(run_ids: Collection[str]) -> Select[Any]:
    """The query for `versions_by_run`."""
    return (
        select(versions.c.run_id, models.c.name, versions.c.number)
        .join(models, models.c.id == versions.c.model_id)
        .where(versions.c.run_id.in_(list(run_ids)))
        .order_by(models.c.name, versions.c.number)
    )


def versions_by_run(database: Database, run_ids: Collection[str]) -> dict[str, list[str]]:
    """The versions (`name:N`) each of `run_ids` made; runs that made none are left out."""
    made: dict[str, list[str]] = defaultdict(list)
    if not run_ids:
        return {}
    with database.read() as connection:
        for run_id, name, number in connection.execute(run_versions_query(run_ids)):
            made[run_id].append(f"{name}:{number}")
    return dict(made)


def metric_histories_query(run_ids: Collection[str]) -> Select[Any]:
    """The query for `metric_histories` (in the order of the run, key and step index)."""
    return (
        select(run_metrics.c.run_id, run_metrics.c.key, run_metrics.c.step, run_metrics.c.value)
        .where(run_metrics.c.run_id.in_(list(run_ids)))
        .order_by(run_metrics.c.run_id, run_metrics.c.key, run_metrics.c.step, run_metrics.c.id)
    )


def metric_histories(
    database: Database, run_ids: Collection[str]
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every metric's `(step, value)` history of each run, by run id and key, in step order;
    a step logged twice keeps its last value (as `get_run` reads it)."""
    histories: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
    if not run_ids:
        return {}
    with database.read() as connection:
        for run_id, key, step, value in connection.execute(metric_histories_query(run_ids)):
            histories[run_id].setdefault(key, {})[int(step)] = float(value)
    return {
        run_id: {key: list(points.items()) for key, points in keys.items()}
        for run_id, keys in histories.items()
    }
