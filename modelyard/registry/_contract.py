"""`RegistryAPI`: the one contract of the registry, embedded (`Registry`) or over HTTP
(`modelyard._remote.HttpRegistry`).

Both implement every method with the same signature (a test compares them with
`inspect.signature`), and `tests/registry/test_contract.py` runs the same tests against both.
`Yard`'s registry methods pass through to it and are checked against it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from modelyard.registry._audit import ChainCheck
from modelyard.registry._diff import VersionDiff
from modelyard.registry._leases import Lease
from modelyard.registry._lineage import Lineage
from modelyard.registry._records import (
    AliasEvent,
    AuditEvent,
    AuditHead,
    Gate,
    MetricPoint,
    Model,
    ModelVersion,
    Run,
    SearchPage,
    State,
    Transition,
)
from modelyard.store import BlobStore, UniqueBytes


class RegistryAPI(Protocol):
    """What a registry does, wherever it runs; errors are the same typed `ModelyardError`s.

    >>> def promote(registry: RegistryAPI, ref: str) -> None:
    ...     registry.transition(ref, "production", comment="ok")
    """

    # models
    def get_model(self, name: str) -> Model: ...
    def list_models(self) -> list[Model]: ...
    def delete_model(self, name: str) -> None: ...
    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> Model: ...

    # versions
    def create_version(
        self,
        name: str,
        *,
        manifest_digest: str | None = None,
        flavor: str | None = None,
        signature: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        description: str = "",
        run_id: str | None = None,
        alias: str | None = None,
        relation: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion: ...
    def get_version(self, ref: str) -> ModelVersion: ...
    def list_versions(self, name: str) -> list[ModelVersion]: ...
    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> SearchPage: ...
    def delete_version(self, ref: str) -> None: ...
    def set_tag(self, ref: str, key: str, value: Any) -> ModelVersion: ...
    def delete_tag(self, ref: str, key: str) -> ModelVersion: ...

    # aliases
    def set_alias(self, name: str, alias: str, ref: str, *, reason: str = "") -> ModelVersion: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]: ...
    def rollback(
        self, name: str, alias: str = "production", *, reason: str = ""
    ) -> ModelVersion: ...

    # lifecycle
    def transition(
        self, ref: str, state: State | str, *, comment: str = "", move_alias: bool = True
    ) -> ModelVersion: ...
    def transitions(self, ref: str) -> list[Transition]: ...
    def approve(self, ref: str, *, comment: str = "") -> None: ...
    def add_gate(
        self, name: str, kind: str, *, to_state: State | str = State.PRODUCTION, **config: Any
    ) -> Gate: ...
    def gates(self, name: str) -> list[Gate]: ...
    def remove_gate(self, name: str, gate_id: str) -> None: ...

    # runs
    def create_run(
        self,
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Mapping[str, str] | None = None,
        code_revision: str | None = None,
    ) -> Run: ...
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...
    def log_datasets(self, run_id: str, datasets: Mapping[str, str]) -> None: ...
    def log_artifact(self, run_id: str, name: str, manifest_digest: str) -> None: ...
    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None: ...
    def end_run(self, run_id: str, status: str = "finished") -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...
    def search_runs(
        self, filter: str | None = None, *, order_by: str | None = None, limit: int = 100
    ) -> list[Run]: ...

    # lineage and diff
    def lineage(self, ref: str, *, depth: int | None = None) -> Lineage: ...
    def diff(self, a: str, b: str) -> VersionDiff: ...

    # audit
    def audit_log(
        self, *, target: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]: ...
    def verify_audit(self, *, head: AuditHead | str | None = None) -> ChainCheck: ...
    def audit_head(self) -> AuditHead: ...

    # leases: one process of many does a job (alert rules are evaluated once across replicas)
    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease: ...
    def release_lease(self, name: str, *, holder: str) -> None: ...

    # the client's side: where a registration's blobs go, what a deletion frees, closing
    def staging(self, store: BlobStore) -> AbstractContextManager[BlobStore]:
        """Where to put a new version's blobs before `create_version` (called inside the
        block): `store` itself when embedded; over HTTP a store that holds small blobs back to
        travel inside the registration request (one round trip for a small model)."""
        ...

    def unique_bytes(self, store: BlobStore, *, version_ids: set[str]) -> UniqueBytes | None:
        """The blobs and bytes only these versions reference (what deleting them lets
        `modelyard store gc` free); None over HTTP, where the roots are the server's."""
        ...

    def close(self) -> None:
        """Release connections (the database's, or the HTTP client's when it owns it)."""
        ...
