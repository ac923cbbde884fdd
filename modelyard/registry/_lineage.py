"""Lineage: the DAG of versions through their parent edges (merges have two parents)."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Row, select

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


def lineage_of(connection: Connection, version: Row[Any]) -> Lineage:
    """Walk parent edges up and child edges down from `version`."""
    refs: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    ancestors = _walk(connection, version.id, up=True, refs=refs, edges=edges)
    descendants = _walk(connection, version.id, up=False, refs=refs, edges=edges)
    return Lineage(
        root=f"{version.name}:{version.number}",
        ancestors=[refs[i] for i in ancestors],
        descendants=[refs[i] for i in descendants],
        edges=sorted(
            (LineageEdge(parent=refs[p], child=refs[c], relation=r) for p, c, r in edges),
            key=lambda edge: (edge.parent, edge.child),
        ),
    )


def _walk(
    connection: Connection,
    start: str,
    *,
    up: bool,
    refs: dict[str, str],
    edges: set[tuple[str, str, str]],
) -> list[str]:
    near, far = (
        (lineage.c.child_id, lineage.c.parent_id)
        if up
        else (lineage.c.parent_id, lineage.c.child_id)
    )
    seen: list[str] = []
    queue = deque([start])
    visited = {start}
    _name(connection, [start], refs)
    while queue:
        frontier = [queue.popleft() for _ in range(len(queue))]
        rows = connection.execute(
            select(near, far, lineage.c.relation).where(near.in_(frontier))
        ).all()
        _name(connection, [row[1] for row in rows], refs)
        for row in rows:
            parent, child = (row[1], row[0]) if up else (row[0], row[1])
            edges.add((parent, child, row.relation))
            if row[1] not in visited:
                visited.add(row[1])
                seen.append(row[1])
                queue.append(row[1])
    return seen


def _name(connection: Connection, ids: list[str], refs: dict[str, str]) -> None:
    missing = [i for i in ids if i not in refs]
    if missing:
        rows = connection.execute(
            select(versions.c.id, versions.c.number, models.c.name)
            .join(models, models.c.id == versions.c.model_id)
            .where(versions.c.id.in_(missing))
        )
        refs.update({row.id: f"{row.name}:{row.number}" for row in rows})
