"""Writing a new version's rows: the version itself, its key/value search rows and its lineage
edges.

On PostgreSQL every statement is a round trip, and a version with params, metrics and tags
took five. There they go as one statement: the version is the main INSERT and the other rows
are data-modifying WITH queries over arrays (`unnest`). Foreign keys are checked at the end of
the statement, when all the rows are in. SQLite has no data-modifying WITH and no round trips
to save, so it keeps one INSERT per table (`executemany` for the search rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, Connection, Integer, String, Table, bindparam, func, insert, select

from modelyard.registry._tables import (
    lineage,
    version_metrics,
    version_params,
    version_tags,
    versions,
)

_PAIRS = {"params": version_params, "metrics": version_metrics, "tags": version_tags}
_INSERT_VERSION = insert(versions)
_INSERT_PAIRS = {kind: insert(table) for kind, table in _PAIRS.items()}
_INSERT_LINEAGE = insert(lineage)


def insert_version_rows(
    connection: Connection,
    values: Mapping[str, Any],
    *,
    pairs: Mapping[str, Mapping[str, Any]],
    parents: Sequence[str],
    relation: str | None = None,
) -> None:
    """Insert the version row `values`, its search rows (`pairs`: params, metrics and tags,
    each key -> value) and an edge to each parent id, in order, named `relation` (by default
    `parent`, or `merge` for several parents)."""
    relation = relation or _relation(parents)
    if connection.dialect.name == "postgresql":
        connection.execute(_INSERT_ALL, _arrays(values, pairs, parents, relation))
        return
    connection.execute(_INSERT_VERSION, values)
    for kind, table_pairs in pairs.items():
        if table_pairs:
            rows = [
                {"version_id": values["id"], "key": k, "value": v} for k, v in table_pairs.items()
            ]
            connection.execute(_INSERT_PAIRS[kind], rows)
    if parents:
        edges = [
            {"child_id": values["id"], "parent_id": parent, "position": i,
             "relation": relation, "details": {}}
            for i, parent in enumerate(parents)
        ]  # fmt: skip
        connection.execute(_INSERT_LINEAGE, edges)


def _unnest_insert(table: Table, name: str, *, owner: str, arrays: dict[str, Any]) -> Any:
    """`INSERT INTO table SELECT :new_id, … FROM unnest(:name_a, :name_b, …)`: one row per
    element of the arrays (`arrays` maps a column to its element type), `owner` the column that
    holds the new version's id; SQLAlchemy fills the other columns with their defaults."""
    parameters = [
        bindparam(f"{name}_{column}", type_=ARRAY(kind)) for column, kind in arrays.items()
    ]
    source = func.unnest(*parameters).table_valued(*arrays).render_derived()
    rows = select(bindparam("new_id", type_=String), *(source.c[column] for column in arrays))
    return insert(table).from_select([owner, *arrays], rows).cte(name)


def _build_insert_all() -> Any:
    ctes = [
        _unnest_insert(table, kind, owner="version_id",
                       arrays={"key": String, "value": table.c.value.type})
        for kind, table in _PAIRS.items()
    ]  # fmt: skip
    edges = {"parent_id": String, "position": Integer, "relation": String}
    ctes.append(_unnest_insert(lineage, "edges", owner="child_id", arrays=edges))
    version = {c.name: bindparam(f"version_{c.name}", type_=c.type) for c in versions.c}
    return insert(versions).values(version).add_cte(*ctes)


_INSERT_ALL = _build_insert_all()


def _arrays(
    values: Mapping[str, Any],
    pairs: Mapping[str, Mapping[str, Any]],
    parents: Sequence[str],
    relation: str,
) -> dict[str, Any]:
    arguments: dict[str, Any] = {f"version_{key}": value for key, value in values.items()}
    arguments["new_id"] = values["id"]
    for kind in _PAIRS:
        table_pairs = pairs.get(kind, {})
        arguments[f"{kind}_key"] = list(table_pairs)
        arguments[f"{kind}_value"] = list(table_pairs.values())
    arguments["edges_parent_id"] = list(parents)
    arguments["edges_position"] = list(range(len(parents)))
    arguments["edges_relation"] = [relation] * len(parents)
    return arguments


def _relation(parents: Sequence[str]) -> str:
    """How a version relates to its parents: made from one, or a merge of several."""
    return "merge" if len(parents) > 1 else "parent"
