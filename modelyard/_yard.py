"""`Yard`: the Python client over the registry and the blob store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from modelyard._active_run import ActiveRun
from modelyard._model_folders import model_folder, with_reference
from modelyard._remote import HttpRegistry, HttpStore, PendingBlobs
from modelyard._scratch import CACHE, clean_scratch, scratch_folder
from modelyard._tls import client_verify
from modelyard._yard_signing import (
    Signing,
    check_policy,
    detach_signature,
    sign_on_promotion,
    signature_problem,
    write_signature,
)
from modelyard._yard_watch import Watching
from modelyard.errors import ConfigurationError, RegistryUnavailable
from modelyard.flavors import (
    MODEL_FILE,
    LoadedModel,
    load_model,
    read_info,
    version_diff,
)
from modelyard.registry import (
    AliasEvent,
    AuditEvent,
    AuditHead,
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
    bytes_only_in,
)
from modelyard.security import TrustPolicy, load_secret
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.optimize import Optimizer, TuneResult
from modelyard.store import (
    BlobStore,
    FolderCache,
    UniqueBytes,
    guard_writes,
    open_store,
    restore_directory,
    store_directory,
)


class Yard(Watching, Signing):
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
        # Re-verified on each open; a verification is remembered under a mark keyed by the secret.
        self._folders = FolderCache(self.settings.home / CACHE, key=self._secret)

    @property
    def registry(self) -> Registry | HttpRegistry:
        """The registry, opened (and for SQLite, migrated) on first use."""
        if self._registry is None:  # scratch folders of killed processes go on each open
            clean_scratch(self.settings.home)
        if self._registry is None and self.url:
            client = self._http_client or httpx.Client(
                timeout=60, verify=client_verify(self.settings)
            )
            client.base_url = httpx.URL(self.url.rstrip("/") + "/api/v1")
            token = self.settings.token
            secret = token.get_secret_value() if token is not None else ""
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            self._registry = HttpRegistry(client, actor=self.settings.user, headers=headers,
                                          retries=self.settings.client_retries)  # fmt: skip
            self._store = HttpStore(client, headers=headers)
        if self._registry is None:
            database = Database(self.settings.database_url, secret=self._secret())
            database.open()
            if database.dialect == "sqlite":
                database.migrate()
            elif database.pending():
                database.close()
                raise RegistryUnavailable(
                    "the registry database needs migrations; run `modelyard db upgrade`"
                )
            self._registry = Registry(
                database,
                actor=self.settings.user,
                signatures=lambda version: signature_problem(self, version),  # `signed` gates
            )
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
        model: Any,
        *,
        name: str,
        flavor: str | None = None,
        input_example: Any = None,
        reference_data: Any = None,
        options: Mapping[str, Any] | None = None,
        signature: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        alias: str | None = None,
        run: Run | str | None = None,
        description: str = "",
        relation: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Save and register `model` as the next version of `name`.

        `model` is a framework object (scikit-learn, XGBoost, LightGBM, PyTorch, ONNX or a
        `PythonModel`; the flavor is picked from it, `options` go to the flavor's save), a folder
        (`flavor` says what it holds, or its `modelyard.json` does), or a single file (a pickle
        or joblib file needs `flavor="sklearn"` and is scanned now and refused if unsafe). The
        signature is inferred from `input_example`, which is stored with the version.
        `reference_data` (a training or validation sample) is profiled, with the model's
        predictions for it, into the reference that monitoring compares traffic with.

        The parent is `parents` if given, else the version `alias` points at (the alias then
        moves to the new version), else the latest version; `relation` names the step that
        made it from them in the lineage (`quantize`, `prune`, `tune`, …).

        Over HTTP each call sends an idempotency key (`idempotency_key`, or a fresh UUID) and
        retries a dropped connection or a 5xx answer `client_retries` times: a retry never
        registers a second version.
        """
        # Garbage collection waits from the first put until the version is committed.
        with guard_writes(self.store), scratch_folder(self.settings.home, prefix="log") as scratch:
            folder = model_folder(
                model, Path(scratch), flavor=flavor, example=input_example, options=options
            )
            if reference_data is not None:
                folder = with_reference(
                    folder, Path(scratch), reference_data, name=name,
                    trust=not isinstance(model, str | os.PathLike),
                )  # fmt: skip
            if (folder / MODEL_FILE).is_file():
                info = read_info(folder)
                flavor = info.flavor
                if signature is None and info.signature is not None:
                    signature = info.signature.to_json()
            registry = self.registry
            extra: dict[str, Any] = {}
            if isinstance(registry, HttpRegistry) and isinstance(self.store, HttpStore):
                pending = PendingBlobs(self.store)  # small files travel with the registration
                manifest = store_directory(pending, folder)
                manifest_digest, tags = detach_signature(pending, manifest, folder, tags)
                extra["blobs"] = pending.encoded()
            else:
                manifest = store_directory(self.store, folder)
                manifest_digest, tags = detach_signature(self.store, manifest, folder, tags)
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
                relation=relation,
                idempotency_key=idempotency_key,
            )

    def _store_path(self, path: str | Path) -> str:
        with scratch_folder(self.settings.home, prefix="store") as scratch:
            folder = model_folder(path, Path(scratch), flavor=None, example=None, options=None)
            return store_directory(self.store, folder).digest

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
        write_signature(self, version, Path(path))  # as model.sig, for `model_signing verify`
        return Path(path)

    def load_model(self, ref: str, *, trust: bool | TrustPolicy = False) -> LoadedModel:
        """Load a version as an object with `predict` (and `native`, the framework's object).

        Files are fetched once into `<home>/cache/` (by manifest digest) and verified; a
        cached folder is checked again when opened, and restored if it was changed.
        `trust=True` allows pickle-based files and stored Python code, after a scan; the
        settings' `trusted_types` and `trusted_modules` widen what a version may name.

        >>> model = yard.load_model("fraud@production")
        >>> model.predict(X)
        """
        version = self.get_version(ref)
        folder = self._cached(version)
        check_policy(self, version, folder)  # settings.require_signature
        settings = self.settings
        policy = TrustPolicy.of(
            trust, types=settings.trusted_types, modules=settings.trusted_modules
        )
        return load_model(folder, trust=policy)

    def _cached(self, version: ModelVersion) -> Path:
        if version.manifest_digest is None:
            raise ConfigurationError(f"{version.ref} has no stored files to load")
        return self._folders.open(self.store, version.manifest_digest)

    def merge(
        self,
        a: str,
        b: str,
        *,
        weights: tuple[float, float] = (0.5, 0.5),
        name: str | None = None,
        alias: str | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Average the weights of two versions (a model soup) into a new version of `name`
        (default: `a`'s model) whose parents are both.

        >>> yard.merge("llm:4", "llm:5", weights=(0.5, 0.5), alias="soup")
        """
        from modelyard.flavors._merge import merge_folders

        first, second = self.get_version(a), self.get_version(b)
        self.check_signature(first)  # settings.require_signature, as on every load
        self.check_signature(second)
        folder_a, folder_b = self._cached(first), self._cached(second)
        with scratch_folder(self.settings.home, prefix="merge") as scratch:
            merged = Path(scratch) / "merged"
            merge_folders(folder_a, folder_b, merged, weights=weights)
            return self.log_model(
                merged,
                name=name or first.name,
                flavor=first.flavor,
                signature=first.signature,
                params={**first.params, "merge.weights": f"{weights[0]},{weights[1]}"},
                metrics=metrics,
                tags=tags,
                parents=[first.ref, second.ref],
                alias=alias,
                description=description or f"merge of {first.ref} and {second.ref}",
            )

    def serve(
        self,
        refs: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        trust: bool = False,
        workers: int = 1,
    ) -> None:
        """Serve versions over the Open Inference Protocol until SIGTERM (then drain, return).

        `fraud@production` follows the alias (a move hot-swaps the version), `iris:3` pins one.

        >>> yard.serve(["fraud@production"], port=8080)
        """
        from modelyard.api._inference import serve

        serve(self.settings, list(refs), host=host, port=port, trust=trust, workers=workers,
              yard=self if workers <= 1 else None)  # fmt: skip

    @property
    def optimize(self) -> Optimizer:
        """Quantize, prune and convert versions; each result is a child version, measured.

        >>> result = yard.optimize.quantize("mlp@production", eval_data=(X, y), alias="int8")
        >>> print(result.report.table())
        """
        from modelyard.optimize import Optimizer

        return Optimizer(self)

    def tune(
        self,
        objective: Callable[..., Any],
        space: Any,
        *,
        name: str,
        n_trials: int | None = None,
        sampler: str = "tpe",
        direction: str = "maximize",
        metric: str = "score",
        n_jobs: int = 1,
        study_name: str | None = None,
        timeout: float | None = None,
        seed: int | None = None,
        alias: str | None = None,
        parent: str | None = None,
        pruner: Any = None,
    ) -> TuneResult:
        """Search hyper-parameters with Optuna, the study in the registry's database; each
        trial is a run, and the best trial's model is registered (see `modelyard.optimize.tune`).

        >>> result = yard.tune(objective, {"C": ("float", 0.01, 100, "log")}, name="svc",
        ...                    n_trials=30, n_jobs=2, alias="best")
        """
        from modelyard.optimize import tune

        return tune(
            self, objective, space, name=name, n_trials=n_trials, sampler=sampler,
            direction=direction, metric=metric, n_jobs=n_jobs, study_name=study_name,
            timeout=timeout, seed=seed, alias=alias, parent=parent, pruner=pruner,
        )  # fmt: skip

    def lineage(self, ref: str) -> Lineage:
        """Ancestors and descendants of a version."""
        return self.registry.lineage(ref)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, tags, signature, files, which
        tensors changed and by how much, and model structure (trees, depth, hyper-parameters)."""
        registry = self.registry
        if isinstance(registry, HttpRegistry):
            return registry.diff(a, b)  # the server reads the blobs
        return version_diff(registry, self.store, a, b)

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
        version = self.registry.transition(ref, state, comment=comment)
        return sign_on_promotion(self, version)  # settings.signing_key and signing_states

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

    def delete_version(self, ref: str) -> UniqueBytes | None:
        """Delete a version no alias points at. Returns the blobs and bytes only it referenced,
        which the next `modelyard store gc` frees (None through a server: its roots, and its
        role checks, are the server's)."""
        registry = self.registry
        if not isinstance(registry, Registry):
            registry.delete_version(ref)
            return None
        version = registry.get_version(ref)  # the bytes counted are those of the one deleted
        freed = bytes_only_in(registry.database, self.store, version_ids={version.id})
        registry.delete_version(version.ref)
        return freed

    def delete_model(self, name: str) -> UniqueBytes | None:
        """Delete a model and all its versions; returns what only they referenced, as
        `delete_version` does."""
        registry = self.registry
        if not isinstance(registry, Registry):
            registry.delete_model(name)
            return None
        ids = {version.id for version in registry.list_versions(name)}
        freed = bytes_only_in(registry.database, self.store, version_ids=ids)
        registry.delete_model(name)
        return freed

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

    def _secret(self) -> bytes:
        """The secret that keys the audit chain and page tokens (`secret_key`, else the one kept
        under the home, made on first use)."""
        configured = self.settings.secret_key
        return load_secret(
            configured=configured.get_secret_value() if configured else None,
            home=self.settings.home,
        )
