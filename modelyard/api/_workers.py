"""Handing `serve --workers N` its configuration without putting secrets in any environment.

uvicorn starts each worker as a fresh process that imports the app factory, so the worker
needs the settings, the references and the routing from somewhere. They go into a JSON file
readable only by this user (mode 0600, in a private 0700 scratch folder under the home, made
for this server and removed when it stops, or after a crash by the next start); the workers get
only the file's path. While the workers are started (and restarted), every `MODELYARD_*`
variable is taken out of this process's environment, so no worker inherits a secret such as
`MODELYARD_S3_SECRET_ACCESS_KEY` (the file has the settings whole); afterwards the environment
is put back exactly as it was.

The spec also says where the server listens and when its start began: the first worker to
be ready prints the ready line (`announce_once`), the others stay quiet.

Launching processes is the one place that has to touch `os.environ`: it is what uvicorn and
prometheus_client hand to a worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from modelyard._scratch import scratch_folder
from modelyard.settings import Settings

SPEC = "MODELYARD_SERVE_SPEC"
"""The variable that gives a worker the path of its spec file (a path, never a secret)."""

METRICS = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client's workers write their counts (it reads the variable on import)."""

_PREFIX = "MODELYARD_"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What one worker process serves: the settings, references and routing of `serve`."""

    settings: Settings
    refs: list[str]
    options: dict[str, Any]
    url: str
    started: float  # time.monotonic() of the parent: the same clock in every process
    folder: Path


@contextmanager
def worker_environment(
    settings: Settings,
    refs: list[str],
    options: dict[str, Any],
    *,
    url: str = "",
    started: float = 0.0,
) -> Iterator[Path]:
    """While open, workers started by this process find their spec (and a folder for their
    metrics) and inherit no `MODELYARD_*` variable; yields the spec file's path."""
    with scratch_folder(settings.home, prefix="serve") as private:
        folder = private.absolute()  # mkdtemp makes it 0700: only this user can list or open it
        spec = folder / "spec.json"
        document = {"settings": _plain(settings), "refs": refs, "options": options, "url": url,
                    "started": started}  # fmt: skip
        handle = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as file:
            json.dump(document, file)
        metrics = folder / "metrics"
        metrics.mkdir(mode=0o700)
        saved = dict(os.environ)
        try:
            for key in [key for key in os.environ if key.upper().startswith(_PREFIX)]:
                del os.environ[key]
            os.environ[SPEC] = str(spec)
            os.environ[METRICS] = str(metrics)
            yield spec
        finally:
            os.environ.clear()
            os.environ.update(saved)


def read_worker_spec() -> WorkerSpec:
    """The spec `worker_environment` left for this worker process."""
    path = os.environ[SPEC]
    document = json.loads(Path(path).read_text())
    return WorkerSpec(
        settings=Settings.model_validate(document["settings"]),
        refs=list(document["refs"]),
        options=dict(document["options"]),
        url=str(document["url"]),
        started=float(document["started"]),
        folder=Path(path).parent,
    )


def announce_once(spec: WorkerSpec) -> bool:
    """Whether this worker is the first to be ready (and so prints the ready line): it made
    the marker file; a worker started later, or restarted, finds it there."""
    try:
        os.close(os.open(spec.folder / "ready", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def _plain(settings: Settings) -> Any:
    """The settings as JSON values, secrets included (a JSON dump would mask them)."""
    values = settings.model_dump()
    for key, value in values.items():
        if isinstance(value, SecretStr | SecretBytes):
            values[key] = value.get_secret_value()
    return to_jsonable_python(values)
