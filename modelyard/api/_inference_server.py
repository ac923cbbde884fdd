"""Running the inference server until SIGTERM: in this process, or in `workers` processes.

Each worker is a fresh (spawned) process that imports `app_from_environment`; the worker
finds its settings, references and routing in a private spec file (`_workers`), and the
environment of this process is put back as it was once the workers have stopped.

The port is bound first (a port in use fails before any model loads); then stderr gets where
the server listens, what each reference resolved to once loaded, and `ready in 2.1 s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard._yard import Yard
from modelyard.api._http_server import run_lean, run_lean_workers
from modelyard.api._inference import InferenceApp
from modelyard.api._listening import Listener, address_of, check_free, listen
from modelyard.api._running import WhenReady, tls_options
from modelyard.api._server_log import log_to_stderr, say
from modelyard.api._serving_auth import serving_auth
from modelyard.api._serving_wiring import ALERTS_NEED_REGISTRY, create_inference_app
from modelyard.api._workers import announce_once, read_worker_spec, worker_environment
from modelyard.errors import ConfigurationError
from modelyard.monitoring import load_rules
from modelyard.registry import Reference
from modelyard.serving import FolderSource
from modelyard.settings import Settings


def serve(
    settings: Settings,
    refs: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    trust: bool = False,
    canaries: Mapping[str, float] | None = None,
    shadows: Sequence[str] = (),
    yard: Yard | None = None,
    listener: Listener | None = None,
    grpc_port: int | None = None,
    model_dir: Path | None = None,
    names: Sequence[str] = (),
) -> None:
    """Serve until SIGTERM: in this process, or in `workers` processes for CPU-bound models
    (each loads the models; their metrics are added up in /metrics). `listener`: a socket
    bound already (`listen`), else `host:port` is bound first. `grpc_port`: serve the
    protocol's gRPC service on `host:grpc_port` too (in every worker, sharing the port).
    `model_dir`: serve the model folders there (all, or `names`) instead of `refs`, with no
    registry: no aliases, canaries, shadows, alert rules or tokens.

    >>> serve(Settings(), ["fraud@production"], port=8080, workers=4)   # blocks
    """
    listener = listener or listen(host, port)
    routing: dict[str, Any] = {"trust": trust, "canaries": dict(canaries or {}),
                               "shadows": list(shadows)}  # fmt: skip
    with listener.socket:
        if model_dir is not None:
            _check_folders_only(settings, refs, canaries=canaries, shadows=shadows)
            refs = FolderSource(model_dir, settings=settings, names=names).refs  # checked now
            routing |= {"model_dir": str(model_dir), "names": list(names)}
        if grpc_port is not None:
            require("grpc", extra="grpc")  # a missing extra is named before anything loads
            require("google.protobuf", extra="grpc")
            check_free(host, grpc_port)
            routing["grpc_address"] = address_of(host, grpc_port)
        _serve(settings, refs, listener, workers=workers, yard=yard, routing=routing)


def _check_folders_only(
    settings: Settings,
    refs: list[str],
    *,
    canaries: Mapping[str, float] | None,
    shadows: Sequence[str],
) -> None:
    """What a server with no registry cannot do, refused in one line each."""
    if refs:
        raise ConfigurationError("--model-dir serves the folders there: give no REFS with it")
    if canaries or shadows:
        raise ConfigurationError("--canary and --shadow need a registry, not --model-dir")
    if settings.serve_alerts is not None:
        raise ConfigurationError(ALERTS_NEED_REGISTRY)
    if settings.auth:  # tokens and grants live in a registry's database
        raise ConfigurationError(
            "--auth checks tokens against a registry, which a --model-dir server has none of: "
            "serve on loopback, or behind a proxy that authenticates, with --insecure"
        )


def _serve(
    settings: Settings,
    refs: list[str],
    listener: Listener,
    *,
    workers: int,
    yard: Yard | None,
    routing: dict[str, Any],
) -> None:
    tls = tls_options(settings)
    url = listener.url(tls=bool(tls))
    level = settings.server_log_level
    for ref in refs:
        Reference.parse(ref)  # a bad reference fails here, before the line below
    say(level, f"loading {', '.join(refs)} for {url} …")
    restore = log_to_stderr(level)
    try:
        if workers <= 1:
            app = create_inference_app(settings, refs, yard=yard, **routing)
            guarded = serving_auth(app, settings)  # body limit, timeouts, access log: the server's
            ready = _announcer(app, refs, url, listener.started, level,
                               grpc=routing.get("grpc_address"), tls=bool(tls))  # fmt: skip
            run_lean(guarded, listener=listener, settings=settings, tls=tls, on_ready=ready)
            return
        if settings.serve_alerts is not None:  # a bad rule is refused once, not in each worker
            served = [Reference.parse(ref).name for ref in refs]
            load_rules(settings.serve_alerts, allowed_webhooks=settings.alert_webhooks,
                       served=served)  # fmt: skip
        # The workers are started as new processes: they get a private spec file's path,
        # and no secret in their environment (see `modelyard.api._workers`).
        with worker_environment(settings, refs, routing, url=url, started=listener.started):
            run_lean_workers(f"{__name__}:app_from_environment", listener=listener,
                             workers=workers, settings=settings, tls=tls)  # fmt: skip
    finally:
        restore()


def app_from_environment() -> Any:
    """The app of one worker process, from the spec file `serve` handed it; the first worker
    to be ready prints the ready line."""
    spec = read_worker_spec()
    level = spec.settings.server_log_level
    log_to_stderr(level)  # this process ends with the server: nothing to put back
    app = create_inference_app(spec.settings, spec.refs, **spec.options, multiprocess=True)
    announce = _announcer(app, spec.refs, spec.url, spec.started, level,
                          grpc=spec.options.get("grpc_address"),
                          tls=spec.url.startswith("https:"))  # fmt: skip

    def ready() -> None:
        if announce_once(spec):
            announce()

    guarded = serving_auth(app, spec.settings)  # bearer tokens, with MODELYARD_AUTH
    return WhenReady(guarded, ready)  # body limit, timeouts, access log: the server's


def served_lines(app: InferenceApp, refs: list[str], url: str) -> list[str]:
    """What each reference resolved to once loaded: `serving iris@production (iris:3) at
    http://127.0.0.1:8080/v2/models/iris`, then canaries and shadows."""
    pool = app.plane.pool
    lines = []
    for ref in refs:
        name = Reference.parse(ref).name
        served = pool.models[name]
        number = Reference.parse(ref).number or served.default
        resolved = f"{name}:{number}"
        shown = ref if ref == resolved else f"{ref} ({resolved})"
        if served.unloadable is not None and Reference.parse(ref).alias is not None:
            bad = served.unloadable[0]  # the alias's own version: reported, not served
            shown = f"{name}:{number}, the last good version of {ref} ({name}:{bad} does not load)"
        lines.append(f"serving {shown} at {url}/v2/models/{name}")
    for name, served in sorted(pool.models.items()):
        if served.canary is not None:
            number, share = served.canary
            lines.append(f"canary {name}:{number} answers {share:.0%} of {name}'s requests")
        lines.extend(f"shadow {name}:{number} sees copies of {name}'s requests"
                     for number in served.shadows)  # fmt: skip
    return lines


def _announcer(
    app: InferenceApp,
    refs: list[str],
    url: str,
    started: float,
    level: str,
    *,
    grpc: str | None = None,
    tls: bool = False,
) -> Callable[[], None]:
    def announce() -> None:
        for line in served_lines(app, refs, url):
            say(level, line)
        if grpc is not None:
            say(level, f"gRPC (inference.GRPCInferenceService{', TLS' if tls else ''}) at {grpc}")
        say(level, f"ready in {time.monotonic() - started:.1f} s (Ctrl-C to stop)")

    return announce
