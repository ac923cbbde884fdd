"""`modelyard build`: a registered version as a container image that serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from modelyard.cli._context import yard_of
from modelyard.cli._output import reports_errors


@reports_errors
def build(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to package: iris:3, fraud@production.")],
    tag: Annotated[str, typer.Option(help="Image name and tag to build: localhost/iris:3.")],
    base: Annotated[
        str | None,
        typer.Option(help="Base image (default python:X.Y-slim-bookworm for the saved Python)."),
    ] = None,
    context: Annotated[
        Path | None,
        typer.Option(help="Write the build context here and keep it (default: a temp folder)."),
    ] = None,
    wheels: Annotated[
        Path | None,
        typer.Option(
            "--wheels",
            "--wheelhouse",
            help="A folder of wheels (modelyard's and the model's): installed with no index, "
            "and the build runs with no network.",
        ),
    ] = None,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Only write the build context.")
    ] = False,
    builder: Annotated[
        Literal["podman", "buildah"] | None,
        typer.Option(help="Build with this tool (default: podman, else buildah)."),
    ] = None,
) -> None:
    """Build a container image serving a version over the Open Inference Protocol.

    The image runs `modelyard serve --model-dir /models` on port 8080 as a non-root user,
    with a health check on /v2/health/ready; it needs no registry.

        modelyard build iris:1 --tag localhost/iris:1 --wheels wheelhouse/
    """
    built = yard_of(ctx).build_image(
        ref,
        tag=tag,
        base=base,
        context=context,
        wheels=wheels,
        builder=builder,
        build=not no_build,
    )
    if built.image_id is None:
        typer.echo(f"build context written to {built.context.path}", err=True)
        typer.echo(str(built.context.path))
        return
    if context is not None:
        typer.echo(f"build context kept at {built.context.path}", err=True)
    typer.echo(f"built {tag}", err=True)
    typer.echo(built.image_id)
