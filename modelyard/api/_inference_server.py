"""Running the inference server until SIGTERM: in this process, or in `workers` processes.

uvicorn starts each worker as a fresh process that imports `app_from_environment`; the worker
finds its settings, references and routing in a private spec file (`_workers`), and the
environment of this process is put back as it was once the workers have stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelyard._yard import Yard
from modelyard.api._running import run, run_workers, tls_options, with_read_timeout
from modelyard.api._serving_auth import serving_auth
from modelyard.api._serving_wiring import create_inference_app
from modelyard.api._workers import read_worker_spec, worker_environment
from modelyard.registry import Reference
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
) -> None:
    """Serve until SIGTERM: in this process, or in `workers` processes for CPU-bound models
    (each loads the models; their metrics are added up in /metrics).

    >>> serve(Settings(), ["fraud@production"], port=8080, workers=4)   # blocks
    """
    routing: dict[str, Any] = {
        "trust": trust, "canaries": dict(canaries or {}), "shadows": list(shadows)
    }  # fmt: skip
    if workers <= 1:
        app = create_inference_app(settings, refs, yard=yard, **routing)
        timeout = settings.server_read_timeout_seconds
        limited = with_read_timeout(serving_auth(app, settings), read_timeout=timeout)
        run(limited, host=host, port=port, read_timeout=timeout, tls=tls_options(settings))
        return
    for ref in refs:
        Reference.parse(ref)  # a bad reference fails here, not in every worker
    # uvicorn starts the workers as new processes: they get a private spec file's path, and
    # no secret in their environment (see `modelyard.api._workers`).
    with worker_environment(settings, refs, routing):
        run_workers(f"{__name__}:app_from_environment", host=host, port=port, workers=workers,
                    read_timeout=settings.server_read_timeout_seconds,
                    tls=tls_options(settings))  # fmt: skip


def app_from_environment() -> Any:
    """The app of one worker process, from the spec file `serve` handed it (behind the body
    read timeout)."""
    spec = read_worker_spec()
    app = create_inference_app(spec.settings, spec.refs, **spec.options, multiprocess=True)
    guarded = serving_auth(app, spec.settings)  # bearer tokens, with MODELYARD_AUTH
    return with_read_timeout(guarded, read_timeout=spec.settings.server_read_timeout_seconds)
