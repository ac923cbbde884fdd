"""`modelyard server`: the registry REST API over HTTP."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
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
    import uvicorn

    from modelyard.api import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after draining, so the exit status would say
            # "killed"; for this server a SIGTERM is the normal way to stop.
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    app = create_app(settings_of(ctx))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    Server(config).run()
