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
    """Serve the registry REST API (OpenAPI at /openapi.json) until interrupted."""
    import uvicorn

    from modelyard.api import create_app

    app = create_app(settings_of(ctx))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
