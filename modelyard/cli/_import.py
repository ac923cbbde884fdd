"""`modelyard import mlflow`: bring an MLflow registry's models, versions, aliases and runs in."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, reports_errors

import_app = typer.Typer(help="Bring models in from other registries.", no_args_is_help=True)


@import_app.command("mlflow")
@reports_errors
def mlflow(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="The MLflow tracking server, http(s)://host:port (MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME/PASSWORD authenticate, as for MLflow's own client).",
        ),
    ],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A registered model (repeatable; all).")
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Import pickled models (sklearn pickles, pytorch): scanned against an "
            "allow-list, but only for models whose origin you trust.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be imported; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import registered models, their versions (converted to modelyard flavors), aliases,
    tags, descriptions and runs from an MLflow tracking server; a second run imports only
    what is new."""
    from modelyard.ingest import MlflowServer, import_mlflow

    server = MlflowServer.from_env(tracking_uri, os.environ)
    ctx.call_on_close(server.close)
    steps = import_mlflow(
        yard_of(ctx), server, models=model, trust_pickle=trust_pickle, dry_run=dry_run,
        on_step=None if as_json else lambda step: typer.echo(step.line()),
    )  # fmt: skip
    if as_json:
        emit_json([step.__dict__ for step in steps])
    elif not steps:
        typer.echo(f"nothing to import from {server.uri}")
