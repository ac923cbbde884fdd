"""Search: filters and orderings compiled to SQLAlchemy (strings always bound, never pasted in).

`tags.team != 'x'` matches versions that have the tag with another value, as in MLflow; use
`not tags.team = 'x'` to include versions without the tag.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    exists,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from modelyard.errors import InvalidFilter
from modelyard.registry._filters import (
    MAX_LENGTH,
    Compare,
    Logical,
    Node,
    check_characters,
    parse_filter,
)
from modelyard.registry._numbers import INT32_MAX, INT32_MIN
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
MAX_ORDER_FIELDS = 8
"""The most fields one ordering may name."""


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
    condition = _value_condition(node, kind, table.c.value)
    if drive:
        matching = select(table.c.version_id).where(table.c.key == key, condition)
        return versions.c.id.in_(matching)
    probe = exists().where(table.c.version_id == versions.c.id, table.c.key == key)
    return probe.where(condition)


def _value_condition(node: Compare, kind: str, column: Any) -> ColumnElement[bool]:
    """The comparison of a metrics/params/tags value `column` with the node's value."""
    if kind == "metrics":
        return _apply(column, node.op, _written_out(_numbers(node)))
    if kind == "params" and node.op in ("<", "<=", ">", ">=") and isinstance(node.value, float):
        return _apply(NumericText(column), node.op, node.value)
    return _apply(column, node.op, _strings(node))


def _anchor(node: Node, order_by: str | None) -> tuple[Compare, bool] | None:
    """The comparison a search can walk in order, and whether the walk is descending: when the
    ordering starts with `metrics.KEY` and the filter's driving comparison (the first keyed one
    of a top-level `and`, or the whole filter) is on that metric. Such a search reads the
    metric's (key, value) index from the best value on and stops once the page is full, rather
    than fetching, probing and sorting every match (10x the matches made it 10x slower)."""
    words = (order_by or "").split(",")[0].split()
    if not words or not words[0].startswith("metrics.") or len(words) > 2:
        return None
    parts = node.parts if isinstance(node, Logical) and node.op == "and" else (node,)
    keyed = [p for p in parts if isinstance(p, Compare) and "." in p.field]
    if not keyed or keyed[0].field.partition(".")[0] != "metrics":
        return None
    if keyed[0].field.partition(".")[2].strip("`") != words[0][8:]:
        return None
    return keyed[0], len(words) == 2 and words[1].lower() == "desc"


class NumericText(FunctionElement[float]):
    """A text column read as a number, for `params.lr < 0.1`. SQLite's CAST reads what is not a
    number as 0 (`params.lr < 0.1` matched 'adam'); PostgreSQL's raises (one version with
    `params.opt = 'adam'` made every such search fail). So on both only text that is a number
    is cast (on PostgreSQL: within float range), and the rest is NULL (matching nothing)."""

    type = Float()
    inherit_cache = True


@compiles(NumericText)
def _cast(element: NumericText, compiler: Any, **options: Any) -> str:
    return compiler.process(cast(list(element.clauses)[0], Float), **options)  # type: ignore[no-any-return]


@compiles(NumericText, "postgresql")
def _guarded_cast(element: NumericText, compiler: Any, **options: Any) -> str:
    column = list(element.clauses)[0]
    guarded = case((column.regexp_match(_NUMBER_TEXT), cast(column, Float)), else_=None)
    return compiler.process(guarded, **options)  # type: ignore[no-any-return]


@compiles(NumericText, "sqlite")
def _sqlite_guarded_cast(element: NumericText, compiler: Any, **options: Any) -> str:
    # SQLite's CAST reads 'adam' as 0, so `params.lr < 0.1` matched it: only text made of a
    # number's characters (with a digit) is cast there too; the rest is NULL, matching nothing.
    column = list(element.clauses)[0]
    digit, other = column.op("GLOB", is_comparison=True), column.op("NOT GLOB", is_comparison=True)
    numeric = and_(digit("*[0-9]*"), other("*[^0-9eE.+ -]*"))
    guarded = case((numeric, cast(column, Float)), else_=None)
    return compiler.process(guarded, **options)  # type: ignore[no-any-return]


_NUMBER_TEXT = r"^\s*[-+]?([0-9]{1,200}(\.[0-9]{0,200})?|\.[0-9]{1,200})([eE][-+]?[0-9]{1,2})?\s*$"
"""Decimal text whose value stays inside a double's range (at most about 1e299)."""


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
    whole = node.field.lower() in ("version", "number")
    values = [_version_number(node.field, v) if whole else v for v in _each(node)]
    return tuple(values) if isinstance(node.value, tuple) else values[0]


def _version_number(field: str, value: float) -> int:
    """A version number to compare with: whole and within the column's range (32 bits)."""
    if not (value.is_integer() and INT32_MIN <= value <= INT32_MAX):
        raise InvalidFilter(
            f"{field} compares with whole numbers from {INT32_MIN} to {INT32_MAX}, not {value!r}"
        )
    return int(value)


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
    parts = (text or "created desc").split(",")
    if len(text or "") > MAX_LENGTH or len(parts) > MAX_ORDER_FIELDS:
        raise InvalidFilter(
            f"an ordering may name at most {MAX_ORDER_FIELDS} fields in {MAX_LENGTH} characters"
        )
    check_characters(text or "")
    for part in parts:
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


MAX_LIMIT = 10_000
"""The most versions one page holds."""

MAX_OFFSET = 2**53
"""The furthest a page may start: far past any registry, well inside 64 bits."""


def search_query(
    filter: str | None, *, order_by: str | None, limit: int, page_token: str | None, key: bytes
) -> Select[Any]:
    """The SELECT for one page of versions (limit + 1 rows, to tell whether more follow);
    `key` checks the page token (see `next_page_token`).

    >>> search_query("metrics.auc > 0.9", order_by="created", limit=50, page_token=None, key=k)
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidFilter(f"limit must be between 1 and {MAX_LIMIT}, not {limit!r}")
    offset = _offset(page_token, filter, order_by, key=key)
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
    node = parse_filter(filter) if filter and filter.strip() else None
    anchor = _anchor(node, order_by) if node is not None else None
    if node is not None and anchor is not None:
        return _walked_query(source, node, anchor, order_by)
    query = select(versions, models.c.name, PARENT_REFS).select_from(source)
    if node is not None:
        query = query.where(compile_filter(node))
    return query.order_by(*compile_order(order_by))


def _walked_query(
    source: Any, node: Node, anchor: tuple[Compare, bool], order_by: str | None
) -> Select[Any]:
    # The anchored metric is joined (one row per version: (version_id, key) is its key) and
    # ordered by its own column, NOT NULL, with no NULLS LAST, so the index order is the order.
    compare, descending = anchor
    metric = version_metrics.alias("ordered_metric")
    key = compare.field.partition(".")[2].strip("`")
    source = source.join(metric, and_(metric.c.version_id == versions.c.id, metric.c.key == key))
    parts = node.parts if isinstance(node, Logical) else (node,)
    conditions = [
        _value_condition(compare, "metrics", metric.c.value)
        if part is compare
        else compile_filter(part, drive=False)
        for part in parts
    ]
    leading = metric.c.value.desc() if descending else metric.c.value.asc()
    rest = compile_order(order_by)[1:]  # the first clause is the anchored metric's
    query = select(versions, models.c.name, PARENT_REFS).select_from(source)
    return query.where(and_(*conditions)).order_by(leading, *rest)


def next_page_token(filter: str | None, order_by: str | None, *, offset: int, key: bytes) -> str:
    """An opaque token for the page starting at `offset` of this search: the offset and the
    search's fingerprint, signed with `key` (HMAC-SHA256), so a client cannot forge or edit it.
    """
    payload = base64.urlsafe_b64encode(
        json.dumps({"o": offset, "h": _fingerprint(filter, order_by)}).encode()
    ).rstrip(b"=")
    return (payload + b"." + _signature(payload, key)).decode()


def page_offset(
    page_token: str | None, filter: str | None, order_by: str | None, *, key: bytes
) -> int:
    """Where the page a token names starts (0 without a token)."""
    return _offset(page_token, filter, order_by, key=key)


def _offset(page_token: str | None, filter: str | None, order_by: str | None, *, key: bytes) -> int:
    if not page_token:
        return 0
    invalid = InvalidFilter(
        "page token is not valid: pass back the next_page_token of the previous page unchanged "
        "(tokens are signed by the server that made them)"
    )
    payload, _, signature = page_token.encode("utf-8", "replace").partition(b".")
    if len(page_token) > 512 or not hmac.compare_digest(signature, _signature(payload, key)):
        raise invalid
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        offset, fingerprint = decoded["o"], str(decoded["h"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise invalid
    if fingerprint != _fingerprint(filter, order_by):
        raise InvalidFilter("page token does not belong to this search (filter or order changed)")
    return offset


def _signature(payload: bytes, key: bytes) -> bytes:
    digest = hmac.new(key, b"page-token:" + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def _fingerprint(filter: str | None, order_by: str | None) -> str:
    return hashlib.sha256(json.dumps([filter or "", order_by or ""]).encode()).hexdigest()[:16]
