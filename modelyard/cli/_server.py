"""`modelyard server`: the registry REST API over HTTP."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

import typer

from modelyard.cli._context import settings_of
from modelyard.cli._output import reports_errors
from modelyard.errors import ConfigurationError


@reports_errors
def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless told otherwise.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require a bearer token on every request (default: MODELYARD_AUTH, off).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow a non-loopback address without auth: anyone who reaches it is admin.",
        ),
    ] = False,
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"] | None,
        typer.Option(
            help="What to print on stderr: info logs each request, warning only problems "
            "(default: MODELYARD_SERVER_LOG_LEVEL, info)."
        ),
    ] = None,
) -> None:
    """Serve the registry REST API (OpenAPI at /openapi.json) until SIGTERM or Ctrl-C, then
    finish in-flight requests and exit 0.

    Without auth every request acts as the server's own user with every role, so a server
    bound beyond loopback refuses to start without `--auth` (or `--insecure`). The port is
    bound first (one in use fails at once); stderr then says where it listens, when it is
    ready, and one line per request."""
    from modelyard.api import listen

    settings = settings_of(ctx)
    if auth is not None:
        settings = settings.model_copy(update={"auth": auth})
    if log_level is not None:
        settings = settings.model_copy(update={"server_log_level": log_level})
    check_exposure(host, auth=settings.auth, insecure=insecure)
    if insecure and not settings.auth and not is_loopback(host):
        typer.echo(f"warning: serving {host} without auth (--insecure)", err=True)
    listener = listen(host, port)  # before the imports that take a second or two
    from modelyard.api import serve_registry

    serve_registry(settings, listener=listener)


def check_exposure(host: str, *, auth: bool, insecure: bool, what: str = "the registry") -> None:
    """Refuse to serve without auth on an address other machines can reach."""
    if auth or insecure or is_loopback(host):
        return
    harm = (
        "change or delete any model"
        if what == "the registry"
        else "send feedback that drives monitoring and automatic rollback"
    )
    raise ConfigurationError(
        f"refusing to serve {what} on {host} without auth: anyone who can reach it could "
        f"{harm}. Start it with --auth (and create tokens with `modelyard token create`), bind "
        "127.0.0.1, or pass --insecure if something in front of it authenticates every request"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`."""
    if host.strip().lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere
