"""What optimizing and tuning need from a registry, as narrow protocols (a `Yard` is both).

The optimizer and `tune` take these instead of the `Yard` facade, which imports this package to
offer `yard.optimize` and `yard.tune`: a lower package never imports the facade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion, Registry, RegistryAPI
    from modelyard.settings import Settings
    from modelyard.store import BlobStore


class ModelLogger(Protocol):
    """Registers a model (a framework object or a folder) as a new version."""

    @property
    def settings(self) -> Settings:
        """The settings: the home (for scratch folders) and the operator's trust lists."""
        ...

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        alias: str | None = None,
        run: str | None = None,
        description: str = "",
        relation: str | None = None,
    ) -> ModelVersion:
        """Store `model`'s files and register them as the next version of `name`."""
        ...


class OptimizeSource(ModelLogger, Protocol):
    """What an optimization step needs: the parent version's files, under the operator's
    signature policy, and a way to register the child."""

    def get_version(self, ref: str) -> ModelVersion:
        """The version `mlp`, `mlp:3` or `mlp@production` names now."""
        ...

    def check_signature(self, version: ModelVersion) -> None:
        """Refuse `version` when a required signature does not verify."""
        ...

    def model_folder(self, version: ModelVersion) -> Path:
        """A local, verified folder holding the version's files; read it, never write it."""
        ...


class TuneSource(ModelLogger, Protocol):
    """What `tune` needs: the registry's runs and versions, the store for trials' models, and
    the registry's own database (where the Optuna study is kept)."""

    @property
    def url(self) -> str | None:
        """The server this client talks to, or None when the registry is embedded."""
        ...

    @property
    def registry(self) -> RegistryAPI:
        """The registry: runs, versions and search."""
        ...

    @property
    def store(self) -> BlobStore:
        """The blob store trials' models are kept in."""
        ...

    def local_registry(self) -> Registry:
        """The embedded registry (its database holds the study)."""
        ...
