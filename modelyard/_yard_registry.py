"""`Yard`'s registry methods: each passes through to `RegistryAPI` with the same signature
(tests/test_yard_contract.py compares them with `inspect.signature`, so they cannot drift)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import ModelNotFound
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    AuditHead,
    ChainCheck,
    Gate,
    Lease,
    Lineage,
    MetricPoint,
    Model,
    ModelVersion,
    RegistryAPI,
    Run,
    SearchPage,
    State,
    Transition,
    VersionDiff,
)
from modelyard.store import BlobStore, UniqueBytes


class RegistryMethods:
    """Find, tag, alias, gate, audit and delete through `self.registry`."""

    if TYPE_CHECKING:

        @property
        def registry(self) -> RegistryAPI: ...

        @property
        def store(self) -> BlobStore: ...

    # reading ----------------------------------------------------------------------------------

    def get_model(self, name: str) -> Model:
        """A model by name, with its aliases."""
        return self.registry.get_model(name)

    def list_models(self) -> list[Model]:
        """Every model, by name."""
        return self.registry.list_models()

    def get_version(self, ref: str) -> ModelVersion:
        """The version `fraud`, `fraud:3`, `fraud@production` or `fraud@production~1` names."""
        return self.registry.get_version(ref)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """A model's versions, newest first."""
        return self.registry.list_versions(name)

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> SearchPage:
        """Versions matching a filter such as `metrics.auc >= 0.9 and tags.team = 'risk'`."""
        return self.registry.search_versions(
            filter, order_by=order_by, limit=limit, page_token=page_token
        )

    def get_run(self, run_id: str) -> Run:
        """A run with its params, latest metrics, datasets and artifacts."""
        return self.registry.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """All values of a run's metric, by step."""
        return self.registry.metric_history(run_id, key)

    def search_runs(
        self, filter: str | None = None, *, order_by: str | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs matching a filter such as `metrics.loss < 0.3 and params.lr = '0.1'` (every
        run without one), newest first unless `order_by` says (`metrics.loss`, `started desc`).
        A metric is its latest value; tuning trials are runs tagged `tune.study`."""
        return self.registry.search_runs(filter, order_by=order_by, limit=limit)

    def lineage(self, ref: str, *, depth: int | None = None) -> Lineage:
        """Ancestors and descendants of a version (`depth`: at most that many generations each
        way)."""
        return self.registry.lineage(ref, depth=depth)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, tags, signature, files, which
        tensors changed and by how much, and model structure (trees, depth, hyper-parameters)."""
        return self.registry.diff(a, b)

    # changing ---------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, ref: str, *, reason: str = "") -> ModelVersion:
        """Point `name@alias` at a version (a deploy, when the alias is served)."""
        return self.registry.set_alias(name, alias, ref, reason=reason)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        self.registry.delete_alias(name, alias)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Moves of a model's aliases, newest first."""
        return self.registry.alias_history(name, alias)

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> ModelVersion:
        """Move an alias back to its previous version."""
        return self.registry.rollback(name, alias, reason=reason)

    def transitions(self, ref: str) -> list[Transition]:
        """A version's state changes."""
        return self.registry.transitions(ref)

    def approve(self, ref: str, *, comment: str = "") -> None:
        """Approve a version (someone other than its creator)."""
        self.registry.approve(ref, comment=comment)

    def add_gate(
        self, name: str, kind: str, *, to_state: State | str = State.PRODUCTION, **config: Any
    ) -> Gate:
        """Require a metric, a tag, a signature or approvals before a state."""
        return self.registry.add_gate(name, kind, to_state=to_state, **config)

    def gates(self, name: str) -> list[Gate]:
        """A model's gates."""
        return self.registry.gates(name)

    def remove_gate(self, name: str, gate_id: str) -> None:
        """Delete one of a model's gates."""
        self.registry.remove_gate(name, gate_id)

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> Model:
        """Change a model's own description (None keeps it) and tags: set `tags`, remove
        `delete_tags`; other tags stay.

        >>> yard.update_model("fraud", description="Card fraud", tags={"team": "risk"})
        """
        return self.registry.update_model(
            name, description=description, tags=tags, delete_tags=delete_tags
        )

    def set_tag(self, ref: str, key: str, value: Any) -> ModelVersion:
        """Tag a version."""
        return self.registry.set_tag(ref, key, value)

    def delete_tag(self, ref: str, key: str) -> ModelVersion:
        """Untag a version."""
        return self.registry.delete_tag(ref, key)

    def delete_version(self, ref: str) -> UniqueBytes | None:
        """Delete a version no alias points at. Returns the blobs and bytes only it referenced,
        which the next `modelyard store gc` frees (None through a server: its roots, and its
        role checks, are the server's)."""
        registry = self.registry
        version = registry.get_version(ref)  # the bytes counted are those of the one deleted
        freed = registry.unique_bytes(self.store, version_ids={version.id})
        registry.delete_version(version.ref)
        return freed

    def delete_model(self, name: str) -> UniqueBytes | None:
        """Delete a model and all its versions; returns what only they referenced, as
        `delete_version` does."""
        registry = self.registry
        try:
            ids = {version.id for version in registry.list_versions(name)}
        except ModelNotFound:
            # Let the deletion answer: a caller without the right to delete hears that first.
            ids = set()
        freed = registry.unique_bytes(self.store, version_ids=ids)
        registry.delete_model(name)
        return freed

    # audit ------------------------------------------------------------------------------------

    def audit_log(self, *, target: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """The audit trail, oldest first."""
        return self.registry.audit_log(target=target, limit=limit)

    def verify_audit(self, *, head: AuditHead | str | None = None) -> ChainCheck:
        """Check the audit hash chain end to end; with `head` (`SEQ:HASH`, from `audit_head()`
        recorded earlier) also that it still reaches that head unchanged."""
        return self.registry.verify_audit(head=head)

    def audit_head(self) -> AuditHead:
        """Where the audit chain ends now; record it to check against later."""
        return self.registry.audit_head()

    # leases -----------------------------------------------------------------------------------

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        """Take the lease `name` for `seconds`, or renew it if `holder` holds it; the lease as
        it stands after. One of several processes doing a job holds it and does the job (this
        is how `modelyard serve` replicas evaluate alert rules once).

        >>> lease = yard.acquire_lease("nightly-report", holder="host-1:42", seconds=60)
        >>> if lease.holder == "host-1:42": ...  # this process does the job
        """
        return self.registry.acquire_lease(name, holder=holder, seconds=seconds)

    def release_lease(self, name: str, *, holder: str) -> None:
        """Give the lease `name` up if `holder` holds it, so another can take it at once."""
        self.registry.release_lease(name, holder=holder)
