"""`Yard`: the Python client over the registry and the blob store."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from modelyard._remote import HttpRegistry, HttpStore, PendingBlobs
from modelyard.errors import ConfigurationError, RegistryUnavailable
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    ChainCheck,
    Database,
    Gate,
    Lineage,
    MetricPoint,
    Model,
    ModelVersion,
    Registry,
    Run,
    SearchPage,
    State,
    Transition,
    VersionDiff,
)
from modelyard.settings import Settings
from modelyard.store import BlobStore, load_manifest, open_store, restore_directory, store_directory


class Yard:
    """The modelyard client: log, find, promote and fetch model versions.

        >>> yard = Yard()                                  # ~/.modelyard, or MODELYARD_* settings
        >>> v = yard.log_model("model/", name="fraud", metrics={"auc": 0.93}, alias="champion")
        >>> yard.transition(v.ref, "validated")
        >>> yard.download("fraud@champion", "here/")

    `Yard(url="http://host:8080")` (or `MODELYARD_URL`) talks to a `modelyard server` instead,
    with the same methods and the same typed errors.

    Nothing is opened until the first call; the embedded SQLite registry migrates itself then.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.url = url or self.settings.url
        self._http_client = http_client  # custom auth or proxies, or an in-process test client
        self._registry: Registry | HttpRegistry | None = None
        self._store: BlobStore | None = None

    @property
    def registry(self) -> Registry | HttpRegistry:
        """The registry, opened (and for SQLite, migrated) on first use."""
        if self._registry is None and self.url:
            client = self._http_client or httpx.Client(timeout=60)
            client.base_url = httpx.URL(self.url.rstrip("/") + "/api/v1")
            self._registry = HttpRegistry(client, actor=self.settings.user)
            self._store = HttpStore(client)
        if self._registry is None:
            database = Database(self.settings.database_url)
            database.open()
            if database.dialect == "sqlite":
                database.migrate()
            elif database.pending():
                database.close()
                raise RegistryUnavailable(
                    "the registry database needs migrations; run `modelyard db upgrade`"
                )
            self._registry = Registry(database, actor=self.settings.user)
        return self._registry

    @property
    def store(self) -> BlobStore:
        """The blob store the settings name (a remote server's, with `url`)."""
        if self._store is None and self.url:
            _ = self.registry
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def local_registry(self) -> Registry:
        """The registry when this client is the local side (as a server is)."""
        registry = self.registry
        if not isinstance(registry, Registry):
            raise ConfigurationError("this client talks to a remote server, not a local registry")
        return registry

    def open(self) -> Yard:
        """Connect now rather than on first use (and, for SQLite, migrate)."""
        _ = self.registry
        return self

    def close(self) -> None:
        """Release database connections."""
        if isinstance(self._registry, HttpRegistry):
            if self._http_client is None:  # an injected client belongs to the caller
                self._registry.close()
            self._store = None
        elif self._registry is not None:
            self._registry.database.close()
        self._registry = None

    def __enter__(self) -> Yard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # logging ----------------------------------------------------------------------------------

    def log_model(
        self,
        model: str | Path,
        *,
        name: str,
        flavor: str | None = None,
        signature: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        alias: str | None = None,
        run: Run | str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Store a model folder (or single file) and register it as the next version of `name`.

        The parent is `parents` if given, else the version `alias` points at (the alias then
        moves to the new version), else the latest version.
        """
        registry = self.registry
        extra: dict[str, Any] = {}
        if isinstance(registry, HttpRegistry) and isinstance(self.store, HttpStore):
            pending = PendingBlobs(self.store)  # small files travel with the registration
            manifest_digest = self._store_path(model, store=pending)
            extra["blobs"] = pending.encoded()
        else:
            manifest_digest = self._store_path(model)
        return registry.create_version(
            name,
            **extra,
            manifest_digest=manifest_digest,
            flavor=flavor,
            signature=signature,
            params=params,
            metrics=metrics,
            tags=tags,
            parents=parents,
            description=description,
            run_id=run.id if isinstance(run, Run) else run,
            alias=alias,
        )

    def _store_path(self, model: str | Path, *, store: BlobStore | None = None) -> str:
        store = store or self.store
        path = Path(model)
        if path.is_dir():
            return store_directory(store, path).digest
        if path.is_file():
            with tempfile.TemporaryDirectory(prefix="modelyard-") as folder:
                link = Path(folder) / path.name
                try:
                    link.hardlink_to(path)
                except OSError:  # another filesystem: copy instead
                    shutil.copy2(path, link)
                return store_directory(store, folder).digest
        raise ConfigurationError(
            f"cannot log {model!r}: pass a folder or a file that exists "
            "(framework objects come with flavors)"
        )

    @contextmanager
    def start_run(
        self,
        name: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        datasets: Mapping[str, str] | None = None,
        code_revision: str | None = None,
    ) -> Iterator[ActiveRun]:
        """A run that ends as finished, or failed if the block raises.

        >>> with yard.start_run("train", params={"lr": 0.1}) as run:
        ...     run.log_metric("loss", 0.4, step=1)
        ...     yard.log_model("out/", name="fraud", run=run.id)
        """
        run = self.registry.create_run(
            name=name, params=params, tags=tags, datasets=datasets, code_revision=code_revision
        )
        active = ActiveRun(self, run.id)
        try:
            yield active
        except BaseException:
            self.registry.end_run(run.id, "failed")
            raise
        self.registry.end_run(run.id, "finished")

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

    def download(self, ref: str, path: str | Path) -> Path:
        """Rebuild the version's files at `path` (absent or empty), verified byte for byte."""
        version = self.get_version(ref)
        if version.manifest_digest is None:
            raise ConfigurationError(f"{version.ref} has no stored files to download")
        restore_directory(self.store, version.manifest_digest, path)
        return Path(path)

    def lineage(self, ref: str) -> Lineage:
        """Ancestors and descendants of a version."""
        return self.registry.lineage(ref)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, tags, signature, files, tensors."""
        return self.registry.diff(a, b, manifests=lambda digest: load_manifest(self.store, digest))

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

    def transition(self, ref: str, state: State | str, *, comment: str = "") -> ModelVersion:
        """Move a version along its lifecycle, checking gates."""
        return self.registry.transition(ref, state, comment=comment)

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

    def set_tag(self, ref: str, key: str, value: Any) -> ModelVersion:
        """Tag a version."""
        return self.registry.set_tag(ref, key, value)

    def delete_tag(self, ref: str, key: str) -> ModelVersion:
        """Untag a version."""
        return self.registry.delete_tag(ref, key)

    def delete_version(self, ref: str) -> None:
        """Delete a version no alias points at (its blobs go at the next garbage collection)."""
        self.registry.delete_version(ref)

    def delete_model(self, name: str) -> None:
        """Delete a model and all its versions."""
        self.registry.delete_model(name)

    def audit_log(self, *, target: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """The audit trail, oldest first."""
        return self.registry.audit_log(target=target, limit=limit)

    def verify_audit(self) -> ChainCheck:
        """Check the audit hash chain end to end."""
        return self.registry.verify_audit()


class ActiveRun:
    """The run inside `with yard.start_run(...)`: log params, step metrics and artifacts."""

    def __init__(self, yard: Yard, run_id: str) -> None:
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
        digest = self.yard._store_path(path)
        self.yard.registry.log_artifact(self.id, name or Path(path).name, digest)
        return digest

    @property
    def run(self) -> Run:
        """The run as recorded now."""
        return self.yard.get_run(self.id)
