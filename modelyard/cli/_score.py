"""`modelyard score`: batch scoring of Parquet or CSV files on Dask, into Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, reports_errors


@reports_errors
def score(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="The version to score with: iris:3, fraud@production.")
    ],
    input: Annotated[
        str, typer.Option("--input", help="Parquet or CSV: a file, a folder of files or a glob.")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", help="Folder for the Parquet part files (one per partition)."),
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(help="A Dask scheduler (tcp://host:port); default: a LocalCluster here."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="LocalCluster worker processes (default: one per CPU).")
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option(help="Rows handed to the model at a time (default 65536).")
    ] = None,
    partition_rows: Annotated[
        int | None,
        typer.Option(help="Rows of a Parquet file per partition and part file (default 250000)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the part files an earlier job wrote to --output.")
    ] = False,
    trust: Annotated[
        bool, typer.Option(help="Allow pickle-based files and stored code (scanned first).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Score Parquet or CSV files with a version on Dask; write Parquet; report the drift.

    Inputs are checked against the version's signature, the model's outputs are appended as
    columns, and the batch's drift against the version's reference profile is reported.

        modelyard score fraud@production --input 'data/*.parquet' --output scored/
        modelyard score fraud:3 --input data.csv --output scored/ --scheduler tcp://10.0.0.5:8786
    """
    report = yard_of(ctx).score(
        ref,
        input,
        output,
        scheduler=scheduler,
        workers=workers,
        batch_rows=batch_rows,
        partition_rows=partition_rows,
        overwrite=overwrite,
        trust=trust,
    )
    if as_json:
        emit_json(report.to_dict())
        return
    typer.echo(report.summary())
