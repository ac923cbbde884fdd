"""The lineage graph's layout: the versions nearest the current one (at most `MAX_NODES`), in
layers by generation, as boxes and edges a template draws as inline SVG (no script library).

A chain of 10,000 versions still draws 41 boxes: the nearest ancestors and descendants, in
the order the registry walked them (breadth first), and a note of how many more there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.registry import Lineage, LineageEdge

MAX_SIDE = 20
"""Ancestors, and descendants, drawn at most (nearest first)."""

MAX_NODES = 2 * MAX_SIDE + 1

BOX_WIDTH, BOX_HEIGHT = 130, 30
COLUMN, ROW = 160, 64  # distance between boxes side by side, and between generations
MARGIN = 12
GUTTER = 110  # room on the right for edges that skip a generation, and their labels
RELATION_NOTED = "parent"  # the plain relation gets no label; quantize, merge, … do


@dataclass(frozen=True, slots=True)
class Box:
    """A version's box: its reference, top-left corner and whether it is the one shown."""

    ref: str
    x: int
    y: int
    current: bool

    @property
    def middle(self) -> int:
        """The x of its centre line."""
        return self.x + BOX_WIDTH // 2


@dataclass(frozen=True, slots=True)
class Arrow:
    """An edge from a parent's bottom to a child's top, with its relation as a label."""

    parent: str
    child: str
    relation: str
    path: str
    label_x: int
    label_y: int

    @property
    def label(self) -> str:
        """What to write beside it: the relation unless it is the plain `parent`."""
        return "" if self.relation == RELATION_NOTED else self.relation


@dataclass(frozen=True, slots=True)
class Graph:
    """The drawing: boxes, arrows, its size, and the versions left out each way."""

    boxes: list[Box]
    arrows: list[Arrow]
    width: int
    height: int
    more_ancestors: int
    more_descendants: int


def layout(lineage: Lineage) -> Graph:
    """Lay out the versions of `lineage` nearest its root, oldest generation on top."""
    ancestors, descendants = lineage.ancestors[:MAX_SIDE], lineage.descendants[:MAX_SIDE]
    kept = {lineage.root, *ancestors, *descendants}
    edges = [e for e in lineage.edges if e.parent in kept and e.child in kept]
    layers = _generations([lineage.root, *ancestors, *descendants], edges)
    boxes = _boxes(layers, lineage.root)
    where = {box.ref: box for box in boxes}
    arrows = [_arrow(where[e.parent], where[e.child], e.relation) for e in edges]
    width = max(len(layer) for layer in layers) * COLUMN - COLUMN + BOX_WIDTH + 2 * MARGIN + GUTTER
    return Graph(
        boxes=boxes,
        arrows=arrows,
        width=width,
        height=len(layers) * ROW - ROW + BOX_HEIGHT + 2 * MARGIN,
        more_ancestors=len(lineage.ancestors) - len(ancestors),
        more_descendants=len(lineage.descendants) - len(descendants),
    )


def _generations(refs: list[str], edges: list[LineageEdge]) -> list[list[str]]:
    """Layers by longest path from a source, so a child always sits below its parents."""
    parents: dict[str, list[str]] = {ref: [] for ref in refs}
    for edge in edges:
        parents[edge.child].append(edge.parent)
    depth: dict[str, int] = {}
    for _ in range(len(refs) + 1):  # relax to a fixed point; a DAG needs at most len(refs)
        changed = False
        for ref in refs:
            level = max((depth.get(p, 0) + 1 for p in parents[ref]), default=0)
            if depth.get(ref) != level:
                depth[ref], changed = level, True
        if not changed:
            break
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for ref in sorted(refs, key=_order):
        layers[depth[ref]].append(ref)
    return layers


def _order(ref: str) -> tuple[str, int]:
    name, _, number = ref.rpartition(":")
    return (name, int(number)) if number.isdigit() else (ref, 0)


def _boxes(layers: list[list[str]], root: str) -> list[Box]:
    widest = max(len(layer) for layer in layers)
    boxes = []
    for row, layer in enumerate(layers):
        indent = (widest - len(layer)) * COLUMN // 2  # centre narrow generations
        for column, ref in enumerate(layer):
            x = MARGIN + indent + column * COLUMN
            boxes.append(Box(ref=ref, x=x, y=MARGIN + row * ROW, current=ref == root))
    return boxes


def _arrow(parent: Box, child: Box, relation: str) -> Arrow:
    if child.y - parent.y > ROW:  # skips a generation: bend out to the right, past the boxes
        x1, x2 = parent.x + BOX_WIDTH, child.x + BOX_WIDTH
        y1, y2 = parent.y + BOX_HEIGHT // 2, child.y + BOX_HEIGHT // 2
        bulge = max(x1, x2) + 60
        path = f"M{x1},{y1} C{bulge},{y1} {bulge},{y2} {x2},{y2}"
        label_x, label_y = max(x1, x2) + 48, (y1 + y2) // 2 + 4
    else:
        x1, y1 = parent.middle, parent.y + BOX_HEIGHT
        x2, y2 = child.middle, child.y
        bend = (y2 - y1) // 2
        path = f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"
        label_x, label_y = (x1 + x2) // 2 + 6, (y1 + y2) // 2 + 4
    return Arrow(parent=parent.ref, child=child.ref, relation=relation, path=path,
                 label_x=label_x, label_y=label_y)  # fmt: skip
