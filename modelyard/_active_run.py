"""`ActiveRun`: the run inside `with yard.start_run(...)`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard._scratch import scratch_folder
from modelyard.registry import Run
from modelyard.store import guard_writes, store_directory

if TYPE_CHECKING:
    from modelyard.registry import RegistryAPI
    from modelyard.settings import Settings
    from modelyard.store import BlobStore


class RunHost(Protocol):
    """What a run needs of its client (a `Yard` is one): the registry its records go to, the
    store its artifacts go to, and the home its scratch folders go under."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> RegistryAPI: ...

    @property
    def store(self) -> BlobStore: ...


class ActiveRun:
    """The run inside `with yard.start_run(...)`: log params, step metrics and artifacts."""

    def __init__(self, yard: RunHost, run_id: str) -> None:
        self.yard = yard
        self.id = run_id

    def log_param(self, key: str, value: Any) -> None:
        """Record one parameter."""
        self.yard.registry.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters."""
        self.yard.registry.log_params(self.id, params)

    def log_metric(self, key: str, value: float, *, step: int | None = None) -> None:
        """Record a metric value at a step (default: the next one)."""
        self.yard.registry.log_metrics(self.id, {key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Record several metrics at one step."""
        self.yard.registry.log_metrics(self.id, metrics, step=step)

    def log_dataset(self, name: str, digest: str) -> None:
        """Record the digest of a dataset the run used."""
        self.yard.registry.log_datasets(self.id, {name: digest})

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> str:
        """Store a file or folder with the run; return its manifest digest."""
        from modelyard._model_folders import model_folder  # frameworks: only when logging

        store = self.yard.store
        with (
            guard_writes(store),  # gc waits until the run names the artifact
            scratch_folder(self.yard.settings.home, prefix="store") as scratch,
        ):
            folder = model_folder(path, Path(scratch), flavor=None, example=None, options=None)
            digest = store_directory(store, folder).digest
            self.yard.registry.log_artifact(self.id, name or Path(path).name, digest)
        return digest

    @property
    def run(self) -> Run:
        """The run as recorded now."""
        return self.yard.registry.get_run(self.id)
