"""`modelyard runs list|search|show|compare`: find training and tuning runs and compare them.

A run is shown by the first 12 digits of its id; any unique prefix of 4 or more digits finds it
again (as git's abbreviated commits do). A metric is its latest value; `show` draws each
metric's steps as a sparkline, and `compare --plot` draws them with matplotlib.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._context import JsonFlag, emit_records, yard_of
from modelyard.cli._output import emit_json, emit_table, reports_errors

if TYPE_CHECKING:
    from modelyard._yard import Yard
    from modelyard.registry import MetricPoint, Run

runs_app = typer.Typer(help="Runs: list, search, show, compare.", no_args_is_help=True)

SHORT = 12
"""How many digits of a run's id the tables show."""

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40
"""The most points a sparkline draws (longer histories are sampled evenly)."""

Limit = Annotated[int, typer.Option(help="The most runs shown.")]
RunIds = Annotated[list[str], typer.Argument(help="Run ids (or unique prefixes of 4+ digits).")]


@runs_app.command("list")
@reports_errors
def list_runs(
    ctx: typer.Context,
    study: Annotated[
        str | None, typer.Option(help="Only the trials of this `modelyard tune` study.")
    ] = None,
    limit: Limit = 20,
    as_json: JsonFlag = False,
) -> None:
    """List the newest runs (tuning trials included)."""
    filter = None if study is None else f"tags.`tune.study` = {quoted(study)}"
    _emit_runs(yard_of(ctx).search_runs(filter, limit=limit), as_json=as_json)


def quoted(text: str) -> str:
    """`text` as a string of the filter language, whatever quotes or backslashes it holds."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@runs_app.command("search")
@reports_errors
def search_runs(
    ctx: typer.Context,
    filter: Annotated[
        str, typer.Argument(help="e.g. \"metrics.loss < 0.3 and params.lr = '0.1'\"")
    ] = "",
    order_by: Annotated[
        str | None, typer.Option(help="e.g. 'metrics.loss, started desc' (default: newest).")
    ] = None,
    limit: Limit = 100,
    as_json: JsonFlag = False,
) -> None:
    """Search runs: fields name, status, id, created_by, code_revision, started (or created),
    ended, params.KEY, metrics.KEY (the latest value) and tags.KEY."""
    found = yard_of(ctx).search_runs(filter or None, order_by=order_by, limit=limit)
    _emit_runs(found, as_json=as_json)


@runs_app.command("show")
@reports_errors
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix of 4+ digits).")],
    steps: Annotated[bool, typer.Option(help="Print every step of each metric too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one run: its fields, params, tags, final metrics and each metric's steps."""
    yard = yard_of(ctx)
    run = find_run(yard, run_id)
    histories = {key: yard.metric_history(run.id, key) for key in run.metrics}
    if as_json:
        record = run.model_dump(mode="json")
        record["history"] = {k: [[p.step, p.value] for p in h] for k, h in histories.items()}
        emit_json(record)
        return
    fields = run.model_dump(mode="json", exclude={"params", "metrics", "tags", "datasets"})
    for key, value in fields.items():
        typer.echo(f"{key:>16}: {'-' if value in (None, {}) else value}")
    for section in ("params", "tags", "datasets"):
        for key, value in getattr(run, section).items():
            typer.echo(f"{section + '.' + key:>16}: {value}")
    for key, history in histories.items():
        typer.echo(f"{'metrics.' + key:>16}: {run.metrics[key]:.6g}  {describe(history)}")
    for key, history in histories.items() if steps else ():
        typer.echo(f"\n{key}")
        emit_table(["step", "value"], [(p.step, p.value) for p in history])


@runs_app.command("compare")
@reports_errors
def compare_runs(
    ctx: typer.Context,
    run_ids: RunIds,
    plot: Annotated[
        Path | None, typer.Option(help="Draw each metric's steps into this PNG (matplotlib).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare runs side by side: params, tags and final metrics; `≠` marks what differs."""
    yard = yard_of(ctx)
    runs = [find_run(yard, run_id) for run_id in run_ids]
    rows = comparison(runs)
    if plot is not None:
        keys = sorted({key for run in runs for key in run.metrics})
        histories = [
            {k: yard.metric_history(r.id, k) for k in keys if k in r.metrics} for r in runs
        ]
        draw(runs, histories, plot)
    if as_json:
        emit_json({
            "runs": [run.model_dump(mode="json") for run in runs],
            "differs": [field for differs, field, *_ in rows if differs],
            "plot": str(plot) if plot else None,
        })  # fmt: skip
        return
    headers = ["", "field", *(f"{run.id[:SHORT]} {run.name}".strip() for run in runs)]
    emit_table(headers, [("≠" if differs else "", *rest) for differs, *rest in rows])
    if plot is not None:
        typer.echo(f"plot: {plot}")


def find_run(yard: Yard, run_id: str) -> Run:
    """The run with this id, or the one run whose id starts with it (4+ hex digits)."""
    from modelyard.errors import RunNotFound

    try:
        return yard.get_run(run_id)
    except RunNotFound:
        if re.fullmatch(r"[0-9a-f]{4,31}", run_id) is None:
            raise
    found = yard.search_runs(f"id like '{run_id}%'", limit=2)
    if len(found) != 1:
        raise RunNotFound(run_id) if not found else _ambiguous(run_id)
    return found[0]


def _ambiguous(prefix: str) -> Exception:
    from modelyard.errors import InvalidReference

    return InvalidReference(prefix, expected="a prefix that only one run's id starts with")


def _emit_runs(runs: list[Run], *, as_json: bool) -> None:
    if as_json:
        emit_records(runs)
        return
    rows = [
        (
            run.id[:SHORT],
            run.name,
            run.status,
            _clip(", ".join(f"{k}={v:.4g}" for k, v in run.metrics.items())),
            _clip(", ".join(f"{k}={v}" for k, v in run.params.items())),
            run.started_at.strftime("%Y-%m-%d %H:%M"),
        )
        for run in runs
    ]
    emit_table(["id", "name", "status", "metrics", "params", "started"], rows)


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def sparkline(values: list[float]) -> str:
    """`[3, 1, 2]` -> `█▁▅`: each value's height between the smallest and the largest."""
    if len(values) > SPARK_WIDTH:
        values = [values[i * (len(values) - 1) // (SPARK_WIDTH - 1)] for i in range(SPARK_WIDTH)]
    low, high = min(values), max(values)
    span = high - low
    if not span > 0:  # flat, or NaN somewhere
        return BLOCKS[3] * len(values)
    return "".join(BLOCKS[round((v - low) / span * (len(BLOCKS) - 1))] for v in values)


def describe(history: list[MetricPoint]) -> str:
    """A sparkline with the first and last step, e.g. `▇▃▁ steps 0–10, min 0.25 at 10`."""
    if len(history) < 2:
        return ""
    best = min(history, key=lambda point: point.value)
    line = sparkline([point.value for point in history])
    span = f"steps {history[0].step}–{history[-1].step}"
    return f"{line}  {span}, min {best.value:.4g} at {best.step}"


def comparison(runs: list[Run]) -> list[tuple[Any, ...]]:
    """Rows of (differs, field, value per run): name, status, then params, tags and metrics."""
    rows: list[tuple[Any, ...]] = []
    for field in ("name", "status"):
        values = [getattr(run, field) for run in runs]
        rows.append((len(set(values)) > 1, field, *values))
    for section in ("params", "tags", "metrics"):
        keys = sorted({key for run in runs for key in getattr(run, section)})
        for key in keys:
            values = [getattr(run, section).get(key) for run in runs]
            shown = [
                "-" if v is None else f"{v:.6g}" if section == "metrics" else v for v in values
            ]
            rows.append((len(set(shown)) > 1, f"{section}.{key}", *shown))
    return rows


def draw(runs: list[Run], histories: list[dict[str, list[MetricPoint]]], path: Path) -> None:
    """One panel per metric, one line per run, written to `path` as a PNG."""
    from modelyard._imports import require

    require("matplotlib", extra="plot")
    from matplotlib.figure import Figure

    keys = sorted({key for history in histories for key in history})
    if not keys:
        from modelyard.errors import NotFound

        raise NotFound("nothing to plot: none of these runs logged a metric")
    figure = Figure(figsize=(8, 2.4 * len(keys)), dpi=100, layout="constrained")
    for index, key in enumerate(keys, start=1):
        axes = figure.add_subplot(len(keys), 1, index)
        for run, history in zip(runs, histories, strict=True):
            points = history.get(key, [])
            label = f"{run.id[:SHORT]} {run.name}".strip()
            axes.plot([p.step for p in points], [p.value for p in points], marker=".", label=label)
        axes.set_title(key, loc="left")
        axes.set_xlabel("step")
        axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
