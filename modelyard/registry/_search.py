"""Search: filters and orderings compiled to SQLAlchemy (strings always bound, never pasted in).

`tags.team != 'x'` matches versions that have the tag with another value, as in MLflow; use
`not tags.team = 'x'` to include versions without the tag.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, Select, and_, bindparam, cast, exists, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from modelyard.registry._filters import Compare, InvalidFilter, Logical, Node, parse_filter
from modelyard.registry._tables import (
    models,
    version_metrics,
    version_params,
    version_tags,
    versions,
)
from modelyard.registry._versions import PARENT_REFS

COLUMNS: dict[str, Any] = {
    "name": models.c.name,
    "version": versions.c.number,
    "number": versions.c.number,
    "state": versions.c.state,
    "flavor": versions.c.flavor,
    "created_by": versions.c.created_by,
    "run": versions.c.run_id,
    "description": versions.c.description,
    "id": versions.c.id,
    "created": versions.c.created_at,
    "updated": versions.c.updated_at,
}
KEYED = {"metrics": version_metrics, "params": version_params, "tags": version_tags}
KNOWN = ", ".join([*COLUMNS, "metrics.KEY", "params.KEY", "tags.KEY"])


def compile_filter(node: Node, *, drive: bool = True) -> ColumnElement[bool]:
    """The SQL condition for a parsed filter.

    In each `and`, the first metrics/params/tags comparison becomes `id IN (matching rows)`, so
    the database starts from its index; the others become correlated EXISTS probes, one
    primary-key lookup per candidate. Write the most selective comparison first.

    >>> compile_filter(parse_filter("metrics.auc >= 0.9 and tags.team = 'risk'"))
    """
    if isinstance(node, Logical) and node.op == "and":
        keyed = [isinstance(part, Compare) and "." in part.field for part in node.parts]
        first = keyed.index(True) if drive and True in keyed else -1
        return and_(*(compile_filter(p, drive=i == first) for i, p in enumerate(node.parts)))
    if isinstance(node, Logical):
        return or_(*(compile_filter(part, drive=False) for part in node.parts))
    if not isinstance(node, Compare):
        return not_(compile_filter(node.part, drive=False))
    if "." in node.field:
        return _keyed(node, drive=drive)
    column = COLUMNS.get(node.field.lower())
    if column is None:
        raise InvalidFilter(f"unknown field {node.field!r}; known fields: {KNOWN}")
    if node.field.lower() in ("created", "updated"):
        return _apply(column, node.op, _dates(node))
    if node.field.lower() in ("version", "number"):
        return _apply(column, node.op, _numbers(node))
    return _apply(column, node.op, _strings(node))


def _keyed(node: Compare, *, drive: bool) -> ColumnElement[bool]:
    kind, _, key = node.field.partition(".")
    table = KEYED.get(kind)
    if table is None or not key:
        raise InvalidFilter(f"unknown field {node.field!r}; known fields: {KNOWN}")
    key = key.strip("`")
    value_column: Any = table.c.value
    if kind == "metrics":
        value = _written_out(_numbers(node))
    elif kind == "params" and node.op in ("<", "<=", ">", ">=") and isinstance(node.value, float):
        value_column, value = cast(table.c.value, Float), node.value
    else:
        value = _strings(node)
    condition = _apply(value_column, node.op, value)
    if drive:
        matching = select(table.c.version_id).where(table.c.key == key, condition)
        return versions.c.id.in_(matching)
    probe = exists().where(table.c.version_id == versions.c.id, table.c.key == key)
    return probe.where(condition)


def _written_out(value: Any) -> Any:
    """A metric's threshold as part of the SQL text rather than a parameter: PostgreSQL then
    keeps one plan per threshold (psycopg prepares repeated statements), where a bound one, its
    selectivity unknown, is planned anew on every search: 0.5 ms of a 1.3 ms search. A parsed,
    finite float cannot carry anything but a number; strings stay bound."""
    if isinstance(value, float) and math.isfinite(value):
        return bindparam(None, value, type_=Float, literal_execute=True)
    return value


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    operations: dict[str, Any] = {
        "=": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
        ">": column.__gt__, ">=": column.__ge__, "like": column.like, "in": column.in_,
        "not in": column.not_in,
    }  # fmt: skip
    return operations[op](value)  # type: ignore[no-any-return]


def _each(node: Compare) -> Sequence[Any]:
    return node.value if isinstance(node.value, tuple) else (node.value,)


def _numbers(node: Compare) -> Any:
    if node.op == "like" or not all(isinstance(v, float) for v in _each(node)):
        raise InvalidFilter(f"{node.field} compares with numbers, not {node.value!r}")
    values = [int(v) if node.field.lower() in ("version", "number") else v for v in _each(node)]
    return tuple(values) if isinstance(node.value, tuple) else values[0]


def _strings(node: Compare) -> Any:
    values = [v if isinstance(v, str) else _number_text(v) for v in _each(node)]
    return tuple(values) if isinstance(node.value, tuple) else values[0]


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _dates(node: Compare) -> Any:
    values = []
    for value in _each(node):
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidFilter(
                f"{node.field} compares with dates like '2026-01-31' or "
                f"'2026-01-31T12:00:00+00:00', not {value!r}"
            ) from None
        values.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)
    return tuple(values) if isinstance(node.value, tuple) else values[0]


def compile_order(text: str | None) -> list[Any]:
    """Order-by clauses for e.g. `metrics.auc desc, created`.

    Missing metric values sort last either way; `versions.id` breaks ties so pages are stable.
    A metric is read by a correlated subquery rather than an outer join: the same work for the
    database, and one join fewer for PostgreSQL's planner to order (a third of its planning).
    """
    clauses: list[Any] = []
    for part in (text or "created desc").split(","):
        words = part.split()
        if (
            not words
            or len(words) > 2
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise InvalidFilter(f"cannot order by {part.strip()!r}; use FIELD [asc|desc], …")
        field, descending = words[0], len(words) == 2 and words[1].lower() == "desc"
        if field.startswith("metrics."):
            column: Any = (
                select(version_metrics.c.value)
                .where(version_metrics.c.version_id == versions.c.id)
                .where(version_metrics.c.key == field[8:])
                .scalar_subquery()
            )
        elif field in COLUMNS:
            column = COLUMNS[field]
        else:
            raise InvalidFilter(f"cannot order by {field!r}; use one of {KNOWN} (params/tags: no)")
        ordered = column.desc() if descending else column.asc()
        clauses.append(ordered.nulls_last() if field.startswith("metrics.") else ordered)
    clauses.append(versions.c.id.asc())
    return clauses


def search_query(
    filter: str | None, *, order_by: str | None, limit: int, page_token: str | None
) -> Select[Any]:
    """The SELECT for one page of versions (limit + 1 rows, to tell whether more follow).

    >>> search_query("metrics.auc > 0.9", order_by="created", limit=50, page_token=None)
    """
    if not 1 <= limit <= 10_000:
        raise InvalidFilter(f"limit must be between 1 and 10000, not {limit}")
    offset = _offset(page_token, filter, order_by)
    return _page_query(filter, order_by, offset, limit)


@functools.lru_cache(maxsize=256)
def _page_query(filter: str | None, order_by: str | None, offset: int, limit: int) -> Select[Any]:
    # The same statement object each time, so SQLAlchemy reuses its cache key too (computing
    # it walks the whole statement: a tenth of a search on SQLite). The page's bounds are
    # written out like thresholds (`_written_out`): bound, they leave PostgreSQL guessing how
    # much of the result a page takes, and it re-plans every search.
    return (
        _ordered_query(filter, order_by)
        .offset(bindparam(None, offset, type_=Integer, literal_execute=True))
        .limit(bindparam(None, limit + 1, type_=Integer, literal_execute=True))
    )


@functools.lru_cache(maxsize=256)
def _ordered_query(filter: str | None, order_by: str | None) -> Select[Any]:
    # Parsing and building take longer than SQLite takes to answer; statements are immutable,
    # so the same search reuses its statement (and SQLAlchemy its compiled form).
    source = versions.join(models, models.c.id == versions.c.model_id)
    query = select(versions, models.c.name, PARENT_REFS).select_from(source)
    if filter and filter.strip():
        query = query.where(compile_filter(parse_filter(filter)))
    return query.order_by(*compile_order(order_by))


def next_page_token(filter: str | None, order_by: str | None, *, offset: int) -> str:
    """An opaque token for the page starting at `offset` of this search."""
    payload = json.dumps({"o": offset, "h": _fingerprint(filter, order_by)}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def page_offset(page_token: str | None, filter: str | None, order_by: str | None) -> int:
    """Where the page a token names starts (0 without a token)."""
    return _offset(page_token, filter, order_by)


def _offset(page_token: str | None, filter: str | None, order_by: str | None) -> int:
    if not page_token:
        return 0
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
        offset, fingerprint = int(payload["o"]), str(payload["h"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidFilter(f"page token {page_token!r} is not valid") from None
    if fingerprint != _fingerprint(filter, order_by) or offset < 0:
        raise InvalidFilter("page token does not belong to this search (filter or order changed)")
    return offset


def _fingerprint(filter: str | None, order_by: str | None) -> str:
    return hashlib.sha256(json.dumps([filter or "", order_by or ""]).encode()).hexdigest()[:16]
