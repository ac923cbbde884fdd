"""Search over runs with the filter language of version search (`_filters`), compiled to SQL.

    metrics.loss < 0.3 and params.lr = '0.1' and status = 'finished' and tags.`tune.study` = 's'

A run's metric is its latest value (the one at the highest step, as `get_run` shows it). Params
and tags live in JSON columns: a comparison on a key the run lacks is false, so, as for versions,
`not tags.team = 'x'` also matches runs without the tag. Strings are always bound, never pasted in.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, and_, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from modelyard.errors import InvalidFilter
from modelyard.registry._filters import (
    MAX_LENGTH,
    Compare,
    Logical,
    Node,
    check_characters,
    parse_filter,
)
from modelyard.registry._search import (
    MAX_LIMIT,
    MAX_ORDER_FIELDS,
    NumericText,
    _apply,
    _dates,
    _numbers,
    _strings,
    _written_out,
)
from modelyard.registry._tables import run_metrics, runs

COLUMNS: dict[str, Any] = {
    "id": runs.c.id,
    "name": runs.c.name,
    "status": runs.c.status,
    "created_by": runs.c.created_by,
    "code_revision": runs.c.code_revision,
    "started": runs.c.started_at,
    "created": runs.c.started_at,
    "ended": runs.c.ended_at,
}
DATES = {"started", "created", "ended"}
KNOWN = ", ".join([*COLUMNS, "metrics.KEY", "params.KEY", "tags.KEY"])


def latest_metric(key: str) -> Any:
    """A run's latest value of metric `key` (NULL when it has none), for the run in the row."""
    return (
        select(run_metrics.c.value)
        .where(run_metrics.c.run_id == runs.c.id, run_metrics.c.key == key)
        .order_by(run_metrics.c.step.desc(), run_metrics.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _keyed_column(field: str) -> tuple[str, Any]:
    kind, _, key = field.partition(".")
    key = key.strip("`")
    if kind not in ("metrics", "params", "tags") or not key:
        raise InvalidFilter(f"unknown field {field!r}; known fields for runs: {KNOWN}")
    if kind == "metrics":
        return kind, latest_metric(key)
    if '"' in key or "\\" in key:  # a JSON path cannot name them portably
        raise InvalidFilter(f"a run's {kind} key may not contain quotes or backslashes: {key!r}")
    return kind, getattr(runs.c, kind)[key].as_string()


def compile_run_filter(node: Node) -> ColumnElement[bool]:
    """The SQL condition over `runs` for a parsed filter."""
    if isinstance(node, Logical):
        join = and_ if node.op == "and" else or_
        return join(*(compile_run_filter(part) for part in node.parts))
    if not isinstance(node, Compare):
        return not_(compile_run_filter(node.part))
    if "." in node.field:
        kind, column = _keyed_column(node.field)
        if kind == "metrics":
            value = _written_out(_numbers(node))
        elif node.op in ("<", "<=", ">", ">=") and isinstance(node.value, float):
            column, value = NumericText(column), node.value
        else:
            value = _strings(node)
        # Spelled out, so a missing key is false rather than NULL, and `not` then matches it.
        return and_(column.is_not(None), _apply(column, node.op, value))
    field = node.field.lower()
    column = COLUMNS.get(field)
    if column is None:
        raise InvalidFilter(f"unknown field {node.field!r}; known fields for runs: {KNOWN}")
    value = _dates(node) if field in DATES else _strings(node)
    return and_(column.is_not(None), _apply(column, node.op, value))


def compile_run_order(text: str | None) -> list[Any]:
    """Order-by clauses for e.g. `metrics.loss, started desc` (default: newest first).
    Missing values sort last either way; the run id breaks ties."""
    parts = (text or "started desc").split(",")
    if len(text or "") > MAX_LENGTH or len(parts) > MAX_ORDER_FIELDS:
        raise InvalidFilter(
            f"an ordering may name at most {MAX_ORDER_FIELDS} fields in {MAX_LENGTH} characters"
        )
    check_characters(text or "")
    clauses: list[Any] = []
    for part in parts:
        words = part.split()
        if not words or len(words) > 2 or words[1:] not in ([], ["asc"], ["desc"]):
            raise InvalidFilter(f"cannot order by {part.strip()!r}; use FIELD [asc|desc], …")
        field = words[0]
        if "." in field:
            column = _keyed_column(field)[1]
        elif field.lower() in COLUMNS:
            column = COLUMNS[field.lower()]
        else:
            raise InvalidFilter(f"cannot order by {field!r}; use one of {KNOWN}")
        ordered = column.desc() if words[1:] == ["desc"] else column.asc()
        clauses.append(ordered.nulls_last())
    clauses.append(runs.c.id.asc())
    return clauses


def check_limit(limit: int) -> int:
    """`limit` when it is a whole number from 1 to `MAX_LIMIT`, else `InvalidFilter`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidFilter(f"limit must be between 1 and {MAX_LIMIT}, not {limit!r}")
    return limit


@functools.lru_cache(maxsize=256)
def run_search_query(filter: str | None, order_by: str | None, limit: int) -> Select[Any]:
    """The SELECT of the runs matching `filter`, ordered, at most `limit` of them (the same
    statement object for the same search, so SQLAlchemy reuses its compiled form)."""
    query = select(runs)
    if filter and filter.strip():
        query = query.where(compile_run_filter(parse_filter(filter)))
    return query.order_by(*compile_run_order(order_by)).limit(check_limit(limit))
