"""The runs pages: `/runs` (search with the run filter language), `/runs/{id}` (one run, its
metrics as step charts, the versions it made) and `/runs/compare?run=A&run=B` (side by side).

Runs belong to no single model: as for the REST routes, reading them needs the reader role on
some model; the versions a run made are listed only for models the viewer may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import ConfigurationError, InvalidFilter
from modelyard.registry import Registry, Run, metric_histories, versions_by_run
from modelyard.security import Role
from modelyard.ui._pages import Pages
from modelyard.ui._run_charts import Chart, best, metric_chart
from modelyard.ui._viewer import Viewer

PAGE = 50
"""Runs per page; "more" shows as many again."""

MAX_SHOWN = 1000
"""The most runs the list shows at once (narrow the search to see others)."""

MAX_COMPARE = 10
"""The most runs one comparison holds."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the list shows it."""

    run: Run
    duration: str
    made: list[str]


def add_routes(router: APIRouter, pages: Pages) -> None:
    """Add `GET /runs`, `GET /runs/compare` and `GET /runs/{run_id}` to `router`."""
    viewing = Depends(pages.viewer)  # the signed-in viewer, else a redirect to /login

    @router.get("/runs")
    @pages.page
    def runs(
        request: Request,
        q: str = "",
        order: str = "",
        limit: str = str(PAGE),
        viewer: Viewer = viewing,
    ) -> Response:
        """Runs matching a filter, newest first unless `order` says, `limit` at a time."""
        registry = viewer.need_somewhere(Role.READER).registry
        shown = whole(limit, what="limit", low=1, high=MAX_SHOWN)
        try:
            found = registry.search_runs(q.strip() or None, order_by=order.strip() or None,
                                         limit=shown + 1)  # fmt: skip
        except InvalidFilter as error:
            return pages.render(request, "runs.html", viewer=viewer, q=q, order=order, rows=[],
                                problem=error.message, more=None, capped=False,
                                status_code=400)  # fmt: skip
        more = min(shown + PAGE, MAX_SHOWN) if len(found) > shown and shown < MAX_SHOWN else None
        rows = run_rows(viewer, registry, found[:shown])
        return pages.render(request, "runs.html", viewer=viewer, q=q, order=order, rows=rows,
                            problem="", more=more, capped=len(found) > shown)  # fmt: skip

    @router.get("/runs/compare")
    @pages.page
    def compare(
        request: Request,
        run: list[str] = Query(default=[]),  # noqa: B008 - FastAPI reads defaults this way
        viewer: Viewer = viewing,
    ) -> Response:
        """Runs side by side: params, final metrics, one chart per metric."""
        registry = viewer.need_somewhere(Role.READER).registry
        ids = list(dict.fromkeys(run_id.strip() for run_id in run if run_id.strip()))
        if not ids or len(ids) > MAX_COMPARE:
            raise ConfigurationError(f"pick from 1 to {MAX_COMPARE} runs to compare; "
                                     f"{len(ids)} were picked")  # fmt: skip
        chosen = [registry.get_run(run_id) for run_id in ids]
        labels = run_labels(chosen)
        histories = metric_histories(registry.database, ids)
        keys = sorted({key for run in chosen for key in histories.get(run.id, {})})
        charts = [
            metric_chart(key, {labels[r.id]: histories.get(r.id, {}).get(key, []) for r in chosen})
            for key in keys
        ]
        return pages.render(request, "runs_compare.html", viewer=viewer, runs=chosen,
                            labels=labels, params=param_rows(chosen),
                            metrics=metric_rows(chosen), charts=charts)  # fmt: skip

    @router.get("/runs/{run_id}")
    @pages.page
    def run_page(request: Request, run_id: str, viewer: Viewer = viewing) -> Response:
        """One run: what it logged, its metrics' step history, the versions it made."""
        registry = viewer.need_somewhere(Role.READER).registry
        run = registry.get_run(run_id)
        histories = metric_histories(registry.database, [run.id]).get(run.id, {})
        charts: list[Chart] = [metric_chart(key, {run.name or "value": points})
                               for key, points in sorted(histories.items())]  # fmt: skip
        row = run_rows(viewer, registry, [run])[0]
        return pages.render(request, "run.html", viewer=viewer, run=run, row=row,
                            charts=charts)  # fmt: skip


def whole(text: str, *, what: str, low: int, high: int) -> int:
    """`text` as a whole number in `[low, high]`, else a 400 saying so."""
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise ConfigurationError(f"{what} must be a whole number from {low} to {high}, "
                                 f"not {text[:40]!r}")  # fmt: skip
    return int(text)


def run_rows(viewer: Viewer, registry: Registry, found: Sequence[Run]) -> list[RunRow]:
    """The list's rows: each run with its duration and the versions it made that the viewer
    may read (one query for all of them)."""
    made = versions_by_run(registry.database, [run.id for run in found])
    readable: dict[str, bool] = {}

    def may_read(ref: str) -> bool:
        name = ref.rpartition(":")[0]
        if name not in readable:
            readable[name] = viewer.may(Role.READER, name)
        return readable[name]

    return [
        RunRow(
            run=run,
            duration=duration(run.started_at, run.ended_at),
            made=[ref for ref in made.get(run.id, []) if may_read(ref)],
        )  # fmt: skip
        for run in found
    ]


def duration(started: datetime, ended: datetime | None, *, now: datetime | None = None) -> str:
    """How long a run took (or has taken so far): `850 ms`, `42 s`, `3 min 5 s`, `2 h 10 min`."""
    seconds = ((ended or now or datetime.now(UTC)) - started).total_seconds()
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute} min"


def run_labels(chosen: Sequence[Run]) -> dict[str, str]:
    """A short label per run (its name and id prefix, so two runs named alike differ)."""
    return {run.id: f"{run.name} · {run.id[:8]}" if run.name else run.id[:8] for run in chosen}


@dataclass(frozen=True, slots=True)
class CompareRow:
    """One param or metric across the compared runs."""

    key: str
    values: list[str | float | None]
    differs: bool
    best: float | None = None


def param_rows(chosen: Sequence[Run]) -> list[CompareRow]:
    """Every param any run logged, with each run's value (None: not logged)."""
    keys = sorted({key for run in chosen for key in run.params})
    rows = []
    for key in keys:
        values: list[str | float | None] = [run.params.get(key) for run in chosen]
        rows.append(CompareRow(key=key, values=values, differs=len(set(values)) > 1))
    return rows


def metric_rows(chosen: Sequence[Run]) -> list[CompareRow]:
    """Every metric's final value per run, the best of each row marked."""
    keys = sorted({key for run in chosen for key in run.metrics})
    rows = []
    for key in keys:
        values = [run.metrics.get(key) for run in chosen]
        numbers = [None if value is None else float(value) for value in values]
        rows.append(CompareRow(key=key, values=list(values), differs=len(set(values)) > 1,
                               best=best(key, numbers)))  # fmt: skip
    return rows
