"""`modelyard ui`: the web UI (and the registry API behind it) over the local home."""

from __future__ import annotations

import os
import sys
import threading
from typing import Annotated

import typer

from modelyard.cli._context import settings_of
from modelyard.cli._output import reports_errors
from modelyard.cli._server import check_exposure


@reports_errors
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless --auth.")] = (
        "127.0.0.1"
    ),
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Sign in with API tokens (default: MODELYARD_AUTH, off).",
        ),
    ] = None,
    open_browser: Annotated[
        bool,
        typer.Option("--open/--no-open", help="Open the UI in a web browser, when there is one."),
    ] = True,
) -> None:
    """Start the web UI over the local registry, print its URL and serve it until Ctrl-C.

    It is `modelyard server` with quieter logs (problems only): the pages at `/`, the REST
    API under `/api/v1`. Without auth every visitor acts as you with every role, so it binds
    loopback only unless `--auth` is on."""
    from modelyard.api import listen

    settings = settings_of(ctx)
    if auth is not None:
        settings = settings.model_copy(update={"auth": auth})
    check_exposure(host, auth=settings.auth, insecure=False)
    settings = settings.model_copy(update={"server_log_level": "warning"})
    listener = listen(host, port)  # a port in use fails now, before the slow imports
    url = f"{listener.url()}/"
    typer.echo(f"modelyard UI at {url}", err=True)
    if open_browser and _has_display():
        # In a thread: a browser that is slow to start must not hold up the server, and a
        # request it makes meanwhile waits in the socket's queue.
        threading.Thread(target=_open, args=(url,), daemon=True).start()
    from modelyard.api import serve_registry

    serve_registry(settings, listener=listener)


def _has_display() -> bool:
    """Whether a graphical browser could open: without one, `webbrowser` would start a text
    browser in this terminal, over the server's output."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open(url: str) -> None:
    import webbrowser

    webbrowser.open(url)
