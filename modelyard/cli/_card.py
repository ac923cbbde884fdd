"""`modelyard card REF [--output FILE]`: a version's model card, as Markdown in the Hugging
Face model-card layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._context import yard_of
from modelyard.cli._output import reports_errors


@reports_errors
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version, e.g. fraud@production or fraud:3.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write the card to this file."),
    ] = None,
) -> None:
    """Print a version's model card (description, intended use, metrics, importance,
    lineage, signature, environment) as Markdown with YAML front matter.

    Say what the card cannot infer with tags, on the version or its model: `intended_use`,
    `out_of_scope` and `license`.

        modelyard card fraud@production --output MODEL_CARD.md
    """
    from modelyard._model_card import build_card

    text = build_card(yard_of(ctx), ref).markdown()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote the card of {ref} to {output}", err=True)
