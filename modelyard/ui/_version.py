"""The version page (`/version?ref=fraud:3`: metrics, params, signature, files, environment,
lineage, importance), the diff of two versions (`/diff?a=…&b=…`, whole or as the fragment htmx
swaps in) and the model card (`/version/card?ref=…`, and as Markdown at `/version/card.md`).

Each page asks the role the REST route asks (reader on the model) and reads through the same
registry; files come from the manifest and two small files at most, never the model's blobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from modelyard._model_card import ModelCard, build_card, read_facts
from modelyard.diff import version_diff
from modelyard.errors import InvalidReference, ModelyardError
from modelyard.registry import Lineage, Model, ModelVersion, Registry, Run
from modelyard.security import Role
from modelyard.store import BlobStore
from modelyard.ui._lineage import MAX_SIDE, Graph, layout
from modelyard.ui._pages import Pages
from modelyard.ui._viewer import Viewer

NEARBY = 10
"""Versions offered on each side of this one in the diff form's list."""

SHOWN_ROWS = 200
"""Signature fields and files listed at most (a model of 10,000 files lists the first)."""

STEPS_NOT_OPTIMISING = ("parent", "merge")


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add the version page, the diff and the model card to `router`."""
    viewer = Depends(pages.viewer)

    def store() -> BlobStore:  # the yard opens its store on first use, not at mount
        return pages.yard.store

    @router.get("/version")
    @pages.page
    def version(request: Request, ref: str = "", viewer: Viewer = viewer) -> Response:
        shown = version_context(viewer, store(), _required(ref, "ref"))
        return pages.render(request, "version.html", viewer=viewer, **shown)

    @router.get("/diff")
    @pages.page
    def diff(
        request: Request, a: str = "", b: str = "", other: str = "", viewer: Viewer = viewer
    ) -> Response:
        try:
            first, second = _required(a, "a"), _required(other.strip() or b, "b")
            viewer.need_ref(Role.READER, first).need_ref(Role.READER, second)
            found = version_diff(viewer.registry, store(), first, second)
        except ModelyardError as error:
            if not _fragment(request):
                raise
            # htmx swaps only 2xx answers: the error goes where the diff would have
            return pages.render(request, "_version_diff_error.html", viewer=viewer, error=error)
        template = "_version_diff.html" if _fragment(request) else "diff.html"
        return pages.render(request, template, viewer=viewer, diff=found, a=first, b=second)

    @router.get("/version/card")
    @pages.page
    def card(request: Request, ref: str = "", viewer: Viewer = viewer) -> Response:
        built = card_of(viewer, store(), _required(ref, "ref"))
        return pages.render(request, "card.html", viewer=viewer, card=built,
                            graph=layout(built.lineage), shown_rows=SHOWN_ROWS,
                            signature=signature_rows(built.version)[:SHOWN_ROWS])  # fmt: skip

    @router.get("/version/card.md")
    @pages.page
    def card_markdown(request: Request, ref: str = "", viewer: Viewer = viewer) -> Response:
        built = card_of(viewer, store(), _required(ref, "ref"))
        filename = f"{built.version.name}-{built.version.number}-card.md"
        disposition = f'attachment; filename="{filename}"'
        return Response(built.markdown(), media_type="text/markdown; charset=utf-8",
                        headers={"content-disposition": disposition})  # fmt: skip


def _required(value: str, what: str) -> str:
    if not value.strip():
        raise InvalidReference(value, expected=f"a version reference in `{what}` (fraud:3)")
    return value.strip()


def _fragment(request: Request) -> bool:
    """Whether htmx asked for the diff alone (not a history restore, which needs the page)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and "hx-history-restore-request" not in headers


@dataclass(frozen=True, slots=True)
class _Source:
    """The card's `CardSource` over the viewer's registry and the server's store."""

    registry: Registry
    store: BlobStore

    def get_model(self, name: str) -> Model:
        return self.registry.get_model(name)

    def get_version(self, ref: str) -> ModelVersion:
        return self.registry.get_version(ref)

    def get_run(self, run_id: str) -> Run:
        return self.registry.get_run(run_id)

    def lineage(self, ref: str) -> Lineage:
        return self.registry.lineage(ref)


def card_of(viewer: Viewer, store: BlobStore, ref: str) -> ModelCard:
    """The card of `ref`, once the viewer may read its model."""
    return build_card(_Source(viewer.need_ref(Role.READER, ref).registry, store), ref)


def version_context(viewer: Viewer, store: BlobStore, ref: str) -> dict[str, Any]:
    """What the version page shows."""
    registry = viewer.need_ref(Role.READER, ref).registry
    version = registry.get_version(ref)
    model = registry.get_model(version.name)
    # One generation past what the graph shows, to know whether there is more.
    graph = layout(registry.lineage(version.ref, depth=MAX_SIDE + 1))
    facts = read_facts(store, version)
    return {
        "this": version,
        "model": model,
        "aliases": sorted(a for a, n in model.aliases.items() if n == version.number),
        "transitions": registry.transitions(version.ref),
        "graph": graph,
        "steps": optimisation_steps(registry, graph),
        "facts": facts,
        "files": facts.files[:SHOWN_ROWS],
        "signature": signature_rows(version)[:SHOWN_ROWS],
        "nearby": nearby(registry, version),
        "default_other": version.parents[0] if version.parents else "",
        "shown_rows": SHOWN_ROWS,
    }


def signature_rows(version: ModelVersion) -> list[tuple[str, str, str, str]]:
    """(side, name, datatype, shape) of each input and output."""
    signature = version.signature or {}
    return [
        (side, str(spec.get("name", "")), str(spec.get("datatype", "")),
         " × ".join(str(d) for d in spec.get("shape") or []))
        for side in ("inputs", "outputs")
        for spec in signature.get(side) or []
        if isinstance(spec, dict)
    ]  # fmt: skip


def nearby(registry: Registry, version: ModelVersion) -> list[ModelVersion]:
    """The versions of the same model numbered closest to `version` (one query)."""
    low, high = max(1, version.number - NEARBY), version.number + NEARBY
    found = registry.search_versions(
        f"name = '{version.name}' and number >= {low} and number <= {high}",
        order_by="number desc",
        limit=2 * NEARBY + 1,
    )
    return [v for v in found.versions if v.number != version.number]


@dataclass(frozen=True, slots=True)
class Step:
    """An optimisation step in the graph and what it traded (the child's `optimize.*`)."""

    parent: str
    child: str
    relation: str
    metrics: dict[str, float]


def optimisation_steps(registry: Registry, graph: Graph) -> list[Step]:
    """The graph's quantize/prune/tune/… edges with their trade-offs, in one query."""
    arrows = [a for a in graph.arrows if a.relation not in STEPS_NOT_OPTIMISING]
    if not arrows:
        return []
    by_model: dict[str, set[str]] = {}
    for arrow in arrows:
        name, _, number = arrow.child.rpartition(":")
        by_model.setdefault(name, set()).add(number)
    parts = [f"(name = '{name}' and number in ({', '.join(sorted(numbers))}))"
             for name, numbers in sorted(by_model.items())]  # fmt: skip
    found = registry.search_versions(" or ".join(parts), limit=len(arrows))
    metrics = {v.ref: v.metrics for v in found.versions}
    return [
        Step(a.parent, a.child, a.relation,
             {k: float(v) for k, v in metrics.get(a.child, {}).items()})
        for a in arrows
    ]  # fmt: skip
