"""`modelyard serve`: registered versions over the Open Inference Protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from modelyard.cli._context import settings_of
from modelyard.cli._output import reports_errors
from modelyard.cli._server import check_exposure
from modelyard.errors import ConfigurationError


@reports_errors
def serve(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="fraud@production (follows the alias), iris:3, iris; none with --model-dir."
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Serve model folders from DIR, with no registry: DIR/modelyard.json is one "
            "model (version 1), else each DIR/<name>/ is one (DIR/<name>.version.json its "
            "record). No REFS, aliases, --canary, --shadow, --alerts or --auth with it.",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(
            help="With --model-dir: serve only this model (repeatable); for a single model "
            "folder, the name to serve it under (default: the folder's name).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless told otherwise.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Also serve the protocol over gRPC on this port (same host, models, batching).",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes serving (each loads the models): for CPU-bound models.")
    ] = 1,
    trust: Annotated[
        bool, typer.Option(help="Allow pickle-based files and stored code (scanned first).")
    ] = False,
    trust_type: Annotated[
        list[str] | None,
        typer.Option(help="A skops type to trust (module.Name), beyond the fixed safe list."),
    ] = None,
    trust_module: Annotated[
        list[str] | None,
        typer.Option(help="A module prefix whose classes versions may name (torch 'class')."),
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Most rows in one batched call of a model.")
    ] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option(help="How long a batch waits to fill, under load.")
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="Requests waiting per model before 429.")
    ] = None,
    log_sample: Annotated[
        float | None,
        typer.Option(
            help="Share of requests logged for monitoring (0-1), under <home>/predictions."
        ),
    ] = None,
    alerts: Annotated[
        Path | None, typer.Option(help="Alert rules file (YAML or JSON) to evaluate.")
    ] = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(help="REF=SHARE: send a share of traffic to a candidate (fraud:4=10%)."),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(help="REF: send a copy of traffic to a candidate; answers are compared."),
    ] = None,
    allow_signature_change: Annotated[
        bool,
        typer.Option(
            "--allow-signature-change",
            help="Swap in a version (alias move, canary, shadow) whose inputs or outputs differ "
            "from the served one's; refused by default (MODELYARD_SERVE_ALLOW_SIGNATURE_CHANGE).",
        ),
    ] = False,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require a bearer token with the reader role (default: MODELYARD_AUTH, off).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow a non-loopback address without auth: anyone who reaches it may predict "
            "and send feedback (which drives monitoring and automatic rollback).",
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
    """Serve versions over the Open Inference Protocol v2 (/v2/…, /metrics) until SIGTERM or
    Ctrl-C, then finish in-flight requests and exit 0. A served alias is followed: when it
    moves, the new version is loaded, warmed and swapped in.

    The port is bound first (one in use fails at once); stderr then says where it listens,
    what each reference resolved to, `ready in 2.1 s`, and one line per request.

    With `--model-dir DIR` (air-gapped images, KServe's /mnt/models) the folders there are
    served with no registry at all: `modelyard serve --model-dir /models --name iris`."""
    from pydantic import ValidationError

    from modelyard.api import check_free, listen
    from modelyard.settings import Settings

    overrides = {
        "serve_max_batch_size": max_batch_size,
        "serve_max_wait_ms": max_wait_ms,
        "serve_max_queue": max_queue,
        "serve_log_sample": log_sample,
        "serve_alerts": alerts,
        "server_log_level": log_level,
    }
    base = settings_of(ctx)
    given: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if trust_type:
        given["trusted_types"] = [*base.trusted_types, *trust_type]
    if trust_module:
        given["trusted_modules"] = [*base.trusted_modules, *trust_module]
    if auth is not None:
        given["auth"] = auth
    if allow_signature_change:
        given["serve_allow_signature_change"] = True
    try:
        settings = Settings.model_validate({**base.model_dump(), **given})
    except ValidationError as error:
        first = error.errors()[0]
        option = "--" + str(first["loc"][0]).removeprefix("serve_").replace("_", "-")
        raise ConfigurationError(f"{option}: {first['msg']}") from None
    if model_dir is None and not refs:
        raise typer.BadParameter(  # a usage error (exit 2), as for any missing argument
            "Missing argument 'REFS...': give the versions to serve, or --model-dir DIR"
        )
    if model_dir is None and name:
        raise ConfigurationError("--name goes with --model-dir; for the registry, give REFS")
    check_exposure(host, auth=settings.auth, insecure=insecure, what="models")
    canaries = _canaries(canary or [])
    listener = listen(host, port)  # before the imports and loading that take seconds
    if grpc_port is not None:
        check_free(host, grpc_port)  # gRPC binds when the server starts; say it now if it can't
    from modelyard.api import serve as serve_refs

    serve_refs(
        settings, refs or [], workers=workers, trust=trust, canaries=canaries,
        shadows=shadow or [], listener=listener, grpc_port=grpc_port, model_dir=model_dir,
        names=name or [],
    )  # fmt: skip


def _canaries(specs: list[str]) -> dict[str, float]:
    canaries = {}
    for spec in specs:
        ref, _, share = spec.partition("=")
        try:
            value = float(share.rstrip("%")) / (100 if share.endswith("%") else 1)
        except ValueError:
            raise typer.BadParameter(
                f"expected REF=SHARE such as fraud:4=10%, got {spec!r}"
            ) from None
        canaries[ref] = value
    return canaries
