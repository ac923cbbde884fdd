"""`modelyard monitor report`: drift of a served version's traffic against its reference."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_table, reports_errors

if TYPE_CHECKING:
    from modelyard.monitoring import DriftReport, MultivariateDrift, QualityReport

monitor_app = typer.Typer(
    help="Monitoring: drift reports over served traffic.", no_args_is_help=True
)


@monitor_app.command("report")
@reports_errors
def report(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The served version, e.g. fraud@production.")],
    window: Annotated[str, typer.Option(help="How far back: 30s, 15m, 1h, 2d.")] = "1h",
    out: Annotated[
        Path | None, typer.Option(help="Also write report.json and report.html (plots) here.")
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option(help="An input column (country, x[2]): drift and accuracy per value too."),
    ] = None,
    domain_classifier: Annotated[
        bool,
        typer.Option(
            help="Also train a classifier to tell the window from the reference "
            "(multivariate; slower, needs scikit-learn)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare the last WINDOW of logged requests with the version's reference profile."""
    page = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        page = out / "report.html"
    result = yard_of(ctx).monitor(ref, window=parse_window(window), page=page, segment=segment,
                                  domain_classifier=domain_classifier)  # fmt: skip
    if out is not None:
        (out / "report.json").write_text(result.model_dump_json(indent=2) + "\n")
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    typer.echo(
        f"{result.model}:{result.version}: {result.requests} requests, {result.rows} rows "
        f"from {result.since:%Y-%m-%d %H:%M:%S} to {result.until:%Y-%m-%d %H:%M:%S} UTC"
    )
    if result.unreadable_lines:
        count = result.unreadable_lines
        typer.echo(f"skipped {count} unreadable log line{'' if count == 1 else 's'} "
                   "(damaged records)")  # fmt: skip
    for title, drift in (("inputs", result.inputs), ("predictions", result.predictions)):
        if drift is not None:
            _table(title, drift)
    if result.quality is not None:
        _quality(result.quality)
    if result.multivariate is not None:
        _multivariate(result.multivariate)
    if result.rows == 0:
        typer.echo("no requests logged in the window (serve with --log-sample)")
    if result.performance is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.performance.metrics.items())
        typer.echo(f"\nperformance on {result.performance.rows} labelled rows: {metrics}")
    for title, drifts in (("embeddings (MMD test)", result.embeddings),
                          ("text (descriptor tests)", result.text)):  # fmt: skip
        if drifts:
            typer.echo(f"\n{title}: {sum(d.drifted for d in drifts)} of {len(drifts)} drifted")
            emit_table(drifts[0].HEADERS, [d.cells() for d in drifts])
    if result.segments:
        column = result.segments[0].column
        typer.echo(f"\nsegments by {column}, each against the whole reference:")
        emit_table(result.segments[0].HEADERS, [s.summary() for s in result.segments])


def _table(title: str, drift: DriftReport) -> None:
    typer.echo(f"\n{title}: {drift.verdict()}")
    emit_table(
        ["column", "test", "score", "p-value", "threshold", "drift"],
        [
            (c.column, c.test, f"{c.score:.4g}", "-" if c.p_value is None else f"{c.p_value:.3g}",
             c.threshold, "yes" if c.drifted else "")
            for c in drift.columns
        ],
    )  # fmt: skip


def _multivariate(drift: MultivariateDrift) -> None:
    typer.echo(f"\nmultivariate: {drift.verdict()}")
    emit_table(*drift.table())


def _quality(quality: QualityReport) -> None:
    typer.echo(f"\ndata quality: {quality.verdict()}")
    headers, rows = quality.table()
    if rows:
        emit_table(headers, rows)


def parse_window(text: str) -> timedelta:
    """`30s`, `15m`, `1h`, `2d` as a timedelta (the durations alert rules take)."""
    from modelyard.monitoring import duration

    try:
        return duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


@monitor_app.command("export")
@reports_errors
def export(
    out: Annotated[Path, typer.Option(help="Folder to write into (created).")] = Path("."),
    rules: Annotated[
        Path | None, typer.Option(help="Alert rules file whose rules become Prometheus rules.")
    ] = None,
) -> None:
    """Write prometheus-rules.yml (check it with `promtool check rules`) and
    grafana-dashboard.json for the metrics a modelyard server exports."""
    import json

    import yaml

    from modelyard.monitoring import grafana_dashboard, load_rules, prometheus_rules

    # Webhooks do not matter here: only the conditions become Prometheus rules.
    loaded = load_rules(rules, allowed_webhooks=None) if rules is not None else []
    out.mkdir(parents=True, exist_ok=True)
    (out / "prometheus-rules.yml").write_text(
        yaml.safe_dump(prometheus_rules(loaded), sort_keys=False)
    )
    (out / "grafana-dashboard.json").write_text(json.dumps(grafana_dashboard(), indent=2) + "\n")
    typer.echo(f"wrote {out / 'prometheus-rules.yml'} and {out / 'grafana-dashboard.json'}")
