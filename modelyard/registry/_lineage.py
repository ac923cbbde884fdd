"""Lineage: the DAG of versions through their parent edges (merges have two parents)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Integer, Row, func, literal_column, select

from modelyard import _html
from modelyard.registry._tables import lineage, models, versions


class LineageEdge(BaseModel):
    """`child` was made from `parent` (`relation`: parent, merge, quantize, …)."""

    model_config = ConfigDict(frozen=True)

    parent: str
    child: str
    relation: str


class Lineage(BaseModel):
    """Ancestors and descendants of a version, as nodes (`name:number`) and edges."""

    model_config = ConfigDict(frozen=True)

    root: str
    ancestors: list[str]
    descendants: list[str]
    edges: list[LineageEdge]

    def _repr_html_(self) -> str:
        before, after = (
            map(_html.escape, reversed(self.ancestors)),
            map(_html.escape, self.descendants),
        )
        line = " → ".join([*before, f"<b>{_html.escape(self.root)}</b>", *after])
        edges = [(e.parent, e.child, e.relation) for e in self.edges]
        return _html.card(
            self.root,
            f"<div style='margin:4px 0'>{line}</div>",
            _html.section("edges", _html.table(["parent", "child", "relation"], edges)),
            note="lineage",
        )


def lineage_of(connection: Connection, version: Row[Any], *, depth: int | None = None) -> Lineage:
    """Walk parent edges up and child edges down from `version` (at most `depth` generations
    each way)."""
    refs: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    limit = MAX_DEPTH if depth is None else min(depth, MAX_DEPTH)
    ancestors = _walk(connection, version.id, up=True, depth=limit, refs=refs, edges=edges)
    descendants = _walk(connection, version.id, up=False, depth=limit, refs=refs, edges=edges)
    return Lineage(
        root=f"{version.name}:{version.number}",
        ancestors=[refs[i] for i in ancestors],
        descendants=[refs[i] for i in descendants],
        edges=sorted(
            (LineageEdge(parent=refs[p], child=refs[c], relation=r) for p, c, r in edges),
            key=lambda edge: (edge.parent, edge.child),
        ),
    )


MAX_DEPTH = 1_000_000
"""How many generations a walk follows at most (a guard: lineage is acyclic by construction)."""


def _walk(
    connection: Connection,
    start: str,
    *,
    up: bool,
    depth: int,
    refs: dict[str, str],
    edges: set[tuple[str, str, str]],
) -> list[str]:
    """The versions reached from `start` one way, nearest generation first, at most `depth`
    generations away, in one recursive query (a level-by-level walk took two queries a
    generation: 1 s for a chain of 2,000)."""
    near, far = (
        (lineage.c.child_id, lineage.c.parent_id)
        if up
        else (lineage.c.parent_id, lineage.c.child_id)
    )
    # The first row comes from the versions table and the depth is an inline 0, so both
    # columns have one type in both terms (PostgreSQL refuses a bound text or smallint there).
    walk = (
        select(versions.c.id.label("id"), literal_column("0", Integer).label("depth"))
        .where(versions.c.id == start)
        .cte("walk", recursive=True)
    )
    walk = walk.union(
        select(far.label("id"), (walk.c.depth + 1).label("depth")).where(
            near == walk.c.id, walk.c.depth < depth - 1
        )
    )
    reached = (
        select(walk.c.id, func.min(walk.c.depth).label("depth")).group_by(walk.c.id).cte("reached")
    )
    rows = connection.execute(
        select(near.label("near"), far.label("far"), lineage.c.relation, reached.c.depth,
               versions.c.number, models.c.name)
        .join_from(lineage, reached, near == reached.c.id)
        .join(versions, versions.c.id == far)
        .join(models, models.c.id == versions.c.model_id)
    ).all()  # fmt: skip
    _name(connection, [start], refs)
    order: dict[str, tuple[int, str, int]] = {}
    for row in rows:
        refs[row.far] = f"{row.name}:{row.number}"
        parent, child = (row.far, row.near) if up else (row.near, row.far)
        edges.add((parent, child, row.relation))
        key = (row.depth + 1, row.name, row.number)
        if row.far != start and (row.far not in order or key < order[row.far]):
            order[row.far] = key
    return sorted(order, key=order.__getitem__)


def _name(connection: Connection, ids: list[str], refs: dict[str, str]) -> None:
    missing = [i for i in ids if i not in refs]
    if missing:
        rows = connection.execute(
            select(versions.c.id, versions.c.number, models.c.name)
            .join(models, models.c.id == versions.c.model_id)
            .where(versions.c.id.in_(missing))
        )
        refs.update({row.id: f"{row.name}:{row.number}" for row in rows})
