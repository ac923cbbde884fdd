"""`modelyard server`: the registry REST API over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._context import settings_of
from modelyard.cli._output import reports_errors


@reports_errors
def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless told otherwise.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
) -> None:
    """Serve the registry REST API (OpenAPI at /openapi.json) until SIGTERM or Ctrl-C, then
    finish in-flight requests and exit 0."""
    from modelyard.api import create_app
    from modelyard.api._running import run

    run(create_app(settings_of(ctx)), host=host, port=port)
