"""`Yard`: the Python client over the registry and the blob store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard._active_run import ActiveRun
from modelyard._progress import byte_progress, folder_bytes
from modelyard._scratch import CACHE, clean_scratch, scratch_folder
from modelyard._yard_build import Building
from modelyard._yard_oci import OciMethods
from modelyard._yard_registry import RegistryMethods
from modelyard._yard_score import Scoring
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
from modelyard.registry import Database, ModelVersion, Registry, Run, State, VersionDiff
from modelyard.security import TrustPolicy, load_secret
from modelyard.settings import Settings, load_settings
from modelyard.store import (
    BlobStore,
    FolderCache,
    guard_writes,
    load_manifest,
    open_store,
    restore_directory,
    store_directory,
)

if TYPE_CHECKING:
    import httpx

    from modelyard._remote import HttpRegistry
    from modelyard.flavors import LoadedModel
    from modelyard.optimize import Optimizer, TrialSummary, TuneResult


class Yard(RegistryMethods, Watching, Signing, Building, OciMethods, Scoring):
    """The modelyard client: log, find, promote and fetch model versions.

        >>> yard = Yard()                                  # ~/.modelyard, or MODELYARD_* settings
        >>> v = yard.log_model("model/", name="fraud", metrics={"auc": 0.93}, alias="champion")
        >>> yard.transition(v.ref, "validated")
        >>> yard.download("fraud@champion", "here/")

    `Yard(url="http://host:8080")` (or `MODELYARD_URL`) talks to a `modelyard server` instead,
    with the same methods and the same typed errors.

    Nothing is opened until the first call; the embedded SQLite registry migrates itself then.
    `progress=True` draws a bar on stderr, when it is a terminal, while a model over 32 MiB is
    stored or downloaded (the CLI asks for it).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        http_client: httpx.Client | None = None,
        progress: bool = False,
    ) -> None:
        self.settings = settings or load_settings()
        self.progress = progress  # bars for large models on a terminal (the CLI asks for them)
        self.url = url or self.settings.url
        self._http_client = http_client  # custom auth or proxies, or an in-process test client
        self._registry: Registry | HttpRegistry | None = None
        self._store: BlobStore | None = None
        # Re-verified on each open; a verification is remembered under a mark keyed by the secret.
        self._folders = FolderCache(self.settings.home / CACHE, key=self._secret)

    @property
    def registry(self) -> Registry | HttpRegistry:
        """The registry (`RegistryAPI`), opened (and for SQLite, migrated) on first use."""
        if self._registry is None:  # scratch folders of killed processes go on each open
            clean_scratch(self.settings.home)
            self._registry = self._open_remote() if self.url else self._open_embedded()
        return self._registry

    def _open_remote(self) -> HttpRegistry:
        # httpx and the HTTP client load only for a remote registry (a local CLI starts faster).
        import httpx

        from modelyard._remote import HttpRegistry
        from modelyard._remote_store import HttpStore
        from modelyard._tls import client_verify

        client = self._http_client or httpx.Client(timeout=60, verify=client_verify(self.settings))
        client.base_url = httpx.URL(str(self.url).rstrip("/") + "/api/v1")
        token = self.settings.token
        secret = token.get_secret_value() if token is not None else ""
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._store = HttpStore(client, headers=headers)
        return HttpRegistry(client, actor=self.settings.user, headers=headers,
                            retries=self.settings.client_retries,
                            owns_client=self._http_client is None)  # fmt: skip

    def _open_embedded(self) -> Registry:
        database = Database(self.settings.database_url, secret=self._secret())
        database.open()
        if database.dialect == "sqlite":
            database.migrate()
        elif database.pending():
            database.close()
            raise RegistryUnavailable(
                "the registry database needs migrations; run `modelyard db upgrade`"
            )
        registry = Registry(
            database,
            actor=self.settings.user,
            signatures=lambda version: signature_problem(self, version),  # `signed` gates
            differ=lambda a, b: self._diff(registry, a, b),  # files and tensors: the store's
        )
        return registry

    def _diff(self, registry: Registry, a: str, b: str) -> VersionDiff:
        from modelyard.diff import version_diff

        return version_diff(registry, self.store, a, b)

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
        """Release database connections (or the HTTP client this client made)."""
        if self._registry is not None:
            self._registry.close()
        if self.url:
            self._store = None  # the server's store goes with its client
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
        # Flavors and NumPy load on the first log, not with the client (a CLI starts faster).
        from modelyard._model_folders import model_folder, with_reference
        from modelyard.flavors import MODEL_FILE, read_info

        registry = self.registry
        # Garbage collection waits from the first put until the version is committed.
        with (
            guard_writes(self.store),
            scratch_folder(self.settings.home, prefix="log") as scratch,
            registry.staging(self.store) as target,  # over HTTP small files ride along
        ):
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
            total = folder_bytes(folder) if self.progress else 0
            with byte_progress(f"storing {name}", total, asked=self.progress) as advance:
                manifest = store_directory(target, folder, progress=advance)
            manifest_digest, tags = detach_signature(target, manifest, folder, tags)
            return registry.create_version(
                name,
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

    def download(self, ref: str, path: str | Path) -> Path:
        """Rebuild the version's files at `path` (absent or empty), verified byte for byte."""
        version = self.get_version(ref)
        if version.manifest_digest is None:
            raise ConfigurationError(f"{version.ref} has no stored files to download")
        manifest = load_manifest(self.store, version.manifest_digest)
        with byte_progress(f"downloading {version.ref}", manifest.size,
                           asked=self.progress) as advance:  # fmt: skip
            restore_directory(self.store, manifest, path, progress=advance)
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
        folder = self.model_folder(version)
        check_policy(self, version, folder)  # settings.require_signature
        settings = self.settings
        policy = TrustPolicy.of(
            trust, types=settings.trusted_types, modules=settings.trusted_modules
        )
        from modelyard.flavors import load_model

        loaded = load_model(folder, trust=policy)
        loaded.ref = version.ref
        return loaded

    def model_folder(self, version: ModelVersion) -> Path:
        """A local folder holding `version`'s files: fetched once into `<home>/cache/` (by
        manifest digest), verified, and checked again (restored if changed) each time it is
        opened. Read it, never write it; `download` gives a copy of one's own.

        >>> yard.model_folder(yard.get_version("fraud@production")) / "modelyard.json"
        """
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
        from modelyard.flavors import merge_folders

        first, second = self.get_version(a), self.get_version(b)
        self.check_signature(first)  # settings.require_signature, as on every load
        self.check_signature(second)
        folder_a, folder_b = self.model_folder(first), self.model_folder(second)
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
        grpc_port: int | None = None,
    ) -> None:
        """Serve versions over the Open Inference Protocol until SIGTERM (then drain, return).

        `fraud@production` follows the alias (a move hot-swaps the version), `iris:3` pins one.
        The port is bound first; stderr gets where it listens, what each reference resolved
        to, `ready in 2.1 s`, and a line per request (`server_log_level`, default info).
        `grpc_port`: the protocol's gRPC service on that port too (the `grpc` extra).

        >>> yard.serve(["fraud@production"], port=8080)
        """
        from modelyard.api import serve

        serve(self.settings, list(refs), host=host, port=port, trust=trust, workers=workers,
              yard=self if workers <= 1 else None, grpc_port=grpc_port)  # fmt: skip

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
        n_jobs: int | None = None,
        scheduler: Any = None,
        study_name: str | None = None,
        timeout: float | None = None,
        seed: int | None = None,
        alias: str | None = None,
        parent: str | None = None,
        pruner: Any = None,
        on_trial: Callable[[TrialSummary], None] | None = None,
    ) -> TuneResult:
        """Search hyper-parameters with Optuna, the study in the registry's database; each
        trial is a run, and the best trial's model is registered (see `modelyard.optimize.tune`).
        `on_trial` is called with each trial as it finishes; `scheduler` (a `distributed.Client` or
        a scheduler address) runs the trials on a Dask cluster.

        >>> result = yard.tune(objective, {"C": ("float", 0.01, 100, "log")}, name="svc",
        ...                    n_trials=30, n_jobs=2, alias="best")
        """
        from modelyard.optimize import tune

        return tune(
            self, objective, space, name=name, n_trials=n_trials, sampler=sampler,
            direction=direction, metric=metric, n_jobs=n_jobs, scheduler=scheduler,
            study_name=study_name, timeout=timeout, seed=seed, alias=alias, parent=parent,
            pruner=pruner, on_trial=on_trial,
        )  # fmt: skip

    # changing (the other registry methods are in RegistryMethods) -----------------------------

    def transition(
        self, ref: str, state: State | str, *, comment: str = "", move_alias: bool = True
    ) -> ModelVersion:
        """Move a version along its lifecycle, checking gates; entering production also moves
        the `production` alias unless `move_alias=False`."""
        version = self.registry.transition(ref, state, comment=comment, move_alias=move_alias)
        return sign_on_promotion(self, version)  # settings.signing_key and signing_states

    def _secret(self) -> bytes:
        """The secret that keys the audit chain and page tokens (`secret_key`, else the one kept
        under the home, made on first use)."""
        configured = self.settings.secret_key
        return load_secret(
            configured=configured.get_secret_value() if configured else None,
            home=self.settings.home,
        )
