"""The versions a serving process holds: loaded from the registry, warmed, and swapped in when
a served alias moves.

`fraud@production` follows the alias: a watcher checks the registry every `poll_seconds`, and
when the alias points elsewhere the new version is loaded and warmed in the background, then
becomes the one that answers, all at once; the old one finishes what it has queued and is
dropped. A version whose loading is refused (the operator's trust policy, or a LightGBM or XGBoost
file that crashes the probe process) is logged and skipped, and the old one keeps serving.
`iris:3` pins a version; `iris` serves the latest version at start.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import (
    ConfigurationError,
    DatabaseReplaced,
    ModelNotReady,
    NotFound,
    SignatureInvalid,
    SignatureMissing,
    UnsupportedModel,
    UntrustedModel,
)
from modelyard.flavors import load_model, named_arrays, needs_probe, probe
from modelyard.registry import ModelVersion, Reference
from modelyard.security import SIGNATURE_TAG, TrustPolicy
from modelyard.serving._batching import Batcher, Outputs
from modelyard.serving._codecs import Request
from modelyard.serving._metrics import Metrics
from modelyard.serving._runner import Runner
from modelyard.serving._sources import ModelSource
from modelyard.serving._tasks import cancel
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.explain import Explainer, Explanation

log = logging.getLogger("modelyard.serving")


@dataclass(eq=False)
class ServedVersion:
    """One loaded version and the batcher in front of it (and its explainers, once asked)."""

    version: ModelVersion
    runner: Runner
    batcher: Batcher
    executor: ThreadPoolExecutor
    explainers: dict[str, Explainer] = field(default_factory=dict)
    explaining: threading.Lock = field(default_factory=threading.Lock)

    async def infer(self, request: Request) -> Outputs:
        """Check `request` against the signature, then queue it for a batch."""
        self.runner.check(request)
        return await self.batcher.submit(request)

    def explain(self, inputs: dict[str, np.ndarray[Any, Any]], name: str | None) -> Explanation:
        """Explain checked inputs with the explainer `name`, or the one the model calls for;
        built on first use and kept while the version is served (building is the slow part).
        Blocks: run it in a worker thread."""
        from modelyard.explain import explainer_for

        with self.explaining:
            built = self.explainers.get(name or "")
            if built is None:
                built = explainer_for(self.runner.model, name=name, label=self.version.ref)
                self.explainers[name or ""] = built
        return built.explain(inputs)

    async def close(self) -> None:
        """Answer what is queued, then free the thread (and, once unreferenced, the model)."""
        await self.batcher.close()
        self.executor.shutdown(wait=True)


@dataclass(eq=False)
class ServedModel:
    """A model name as served: its loaded versions, and the one unversioned requests get."""

    name: str
    alias: str | None = None
    pinned: set[int] = field(default_factory=set)
    versions: dict[int, ServedVersion] = field(default_factory=dict)
    default: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one load or swap at a time
    canary: tuple[int, float] | None = None  # (version, share of unversioned requests)
    shadows: list[int] = field(default_factory=list)  # see copies of unversioned requests

    def route(self, version: str | None) -> ServedVersion:
        """The version that answers: the one asked for, else the canary for its share of
        requests, else the default."""
        if version is None and self.canary is not None and random.random() < self.canary[1]:
            return self.versions[self.canary[0]]
        return self.get(version)

    def get(self, version: str | None) -> ServedVersion:
        """The version asked for, or the default one."""
        if version is None:
            if self.default is None:
                raise ModelNotReady(f"model {self.name!r} is still loading")
            return self.versions[self.default]
        try:
            return self.versions[int(version)]
        except (ValueError, KeyError):
            served = ", ".join(str(n) for n in sorted(self.versions)) or "none yet"
            raise NotFound(
                f"version {version!r} of model {self.name!r} is not served; served: {served}"
            ) from None


class ModelPool:
    """Load, serve and hot-swap model versions from a `source` (a `Yard`, or any
    `ModelSource`: it resolves references and hands over versions' files)."""

    def __init__(
        self,
        source: ModelSource,
        settings: Settings,
        *,
        metrics: Metrics,
        trust: bool | TrustPolicy = False,
    ) -> None:
        self.source = source
        self.settings = settings
        self.metrics = metrics
        self.trust = TrustPolicy.of(
            trust, types=settings.trusted_types, modules=settings.trusted_modules
        )
        # Versions refused at a swap, and why; a signature refusal is keyed by the signature
        # tag too, so signing the version later makes it a candidate again.
        self.refused: dict[tuple[str, int, str], str] = {}
        self.registry_lost = ""  # why the registry cannot be followed any more (not ready)
        self.models: dict[str, ServedModel] = {}
        self._candidates: list[tuple[str, str, float]] = []  # (ref, "canary"|"shadow", share)
        self._watcher: asyncio.Task[None] | None = None
        metrics.watch(self._gauges)

    def add(self, ref: str) -> None:
        """Serve `ref` (`fraud@production`, `iris:3` or `iris`) once started."""
        parsed = Reference.parse(ref)
        model = self.models.setdefault(parsed.name, ServedModel(parsed.name))
        if parsed.alias is not None:
            model.alias = parsed.alias

    def add_canary(self, ref: str, share: float) -> None:
        """Send `share` (0-1) of a model's unversioned requests to the version `ref` names."""
        if not 0 < share < 1:
            raise ConfigurationError(f"a canary share must be between 0 and 1, got {share}")
        self._candidates.append((self._candidate(ref), "canary", share))

    def add_shadow(self, ref: str) -> None:
        """Send a copy of a model's unversioned requests to `ref`; its answers are only compared."""
        self._candidates.append((self._candidate(ref), "shadow", 0.0))

    def _candidate(self, ref: str) -> str:
        name = Reference.parse(ref).name
        if name not in self.models:
            raise ConfigurationError(f"{ref} is a candidate for {name!r}, which is not served")
        return ref

    async def start(self, refs: list[str]) -> None:
        """Load every ref and candidate (in parallel threads), then watch served aliases."""
        for ref in refs:
            self.add(ref)
        await asyncio.gather(*(self._load_ref(ref) for ref in refs))
        for ref, role, share in self._candidates:
            version = await asyncio.to_thread(self.source.get_version, ref)
            model = self.models[version.name]
            model.pinned.add(version.number)
            await self._install(model, version, default=False)
            if role == "canary":
                model.canary = (version.number, share)
            elif version.number not in model.shadows:
                model.shadows.append(version.number)
        _settle()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def model(self, name: str) -> ServedModel:
        """A served model; `NotFound` (404) names what is served."""
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(
                f"model {name!r} is not served here; served: {', '.join(sorted(self.models))}"
            ) from None

    def get(self, name: str, version: str | None = None) -> ServedVersion:
        """The served version for a request."""
        return self.model(name).get(version)

    def ready(self) -> bool:
        """Whether every served model has a version answering, and the registry the served
        aliases follow is still the one it opened (not a replaced database file)."""
        return (
            bool(self.models)
            and not self.registry_lost
            and all(m.default is not None for m in self.models.values())
        )

    def loaded(self) -> Iterator[ServedVersion]:
        """Every loaded version."""
        for model in self.models.values():
            yield from model.versions.values()

    async def stop(self) -> None:
        """Stop watching and close every version (queued requests are answered first)."""
        await cancel(self._watcher)
        await asyncio.gather(*(served.close() for served in list(self.loaded())))
        self.models.clear()

    async def _load_ref(self, ref: str) -> None:
        parsed = Reference.parse(ref)
        version = await asyncio.to_thread(self.source.get_version, ref)
        model = self.models[version.name]
        pinned = parsed.number is not None
        if pinned:
            model.pinned.add(version.number)
        # The alias (or the latest version) answers unversioned requests; a pinned version
        # does only when nothing else is served under the name.
        default = not pinned or (model.alias is None and model.default is None)
        await self._install(model, version, default=default)

    async def _install(self, model: ServedModel, version: ModelVersion, *, default: bool) -> None:
        async with model.lock:
            await self._install_locked(model, version, default=default)

    async def _install_locked(
        self, model: ServedModel, version: ModelVersion, *, default: bool
    ) -> None:
        if version.number not in model.versions:
            served = await asyncio.to_thread(self._load, version)
            served.batcher.start()
            model.versions[version.number] = served
        if default and model.default != version.number:
            previous, model.default = model.default, version.number  # the swap: one assignment
            if previous is not None:
                log.info("%s: now serving version %s (was %s)", model.name, version.number,
                         previous)  # fmt: skip
                await self._retire(model, previous)

    def _load(self, version: ModelVersion) -> ServedVersion:
        self.source.check_signature(version)  # the signature policy: before even the probe
        folder = self.source.model_folder(version)
        if needs_probe(version.flavor):
            # Load and predict in a child process first: a file that crashes the process
            # natively (LightGBM, XGBoost) must crash that child, not this server.
            probe(folder, trust=self.trust, timeout=self.settings.probe_timeout_seconds)
        loaded = load_model(folder, trust=self.trust)
        runner = Runner(loaded, name=version.ref)
        example = loaded.input_example()
        if example is not None:  # warm: the first real request should not pay for lazy setup
            runner([Request(inputs=named_arrays(example))])
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"predict-{version.ref}")
        histogram = self.metrics.batch_rows.labels(version.name, str(version.number))
        batcher = Batcher(
            runner,
            name=version.ref,
            executor=executor,
            max_batch_size=self.settings.serve_max_batch_size,
            max_wait_ms=self.settings.serve_max_wait_ms,
            max_queue=self.settings.serve_max_queue,
            observe=histogram.observe,
        )
        return ServedVersion(version, runner, batcher, executor)

    async def _retire(self, model: ServedModel, number: int) -> None:
        if number in model.pinned or number == model.default:
            return
        served = model.versions.pop(number)
        await served.close()
        del served
        _settle()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.serve_poll_seconds)
            for model in list(self.models.values()):
                if model.alias is None:
                    continue
                try:
                    await self._follow(model)
                except DatabaseReplaced as error:  # answers go on; readiness says to restart
                    self.registry_lost = str(error)
                    log.error("%s@%s: not ready: %s", model.name, model.alias, error)
                except Exception:  # a registry hiccup or a bad version must not stop serving
                    log.exception("%s@%s: could not follow the alias", model.name, model.alias)

    async def _follow(self, model: ServedModel) -> None:
        """Swap in the version the alias points at, unless it was refused already; a version
        that is refused (untrusted, unsafe, crashing) leaves the old one serving."""
        target = await asyncio.to_thread(self.source.get_version, f"{model.name}@{model.alias}")
        key = (model.name, target.number, str(target.tags.get(SIGNATURE_TAG, "")))
        if target.number == model.default or key in self.refused:
            return
        try:
            await self._install(model, target, default=True)
        except (UnsupportedModel, UntrustedModel, SignatureMissing, SignatureInvalid) as error:
            self.refused[key] = str(error)
            log.error("%s@%s: refused version %s, still serving version %s: %s", model.name,
                      model.alias, target.number, model.default, error)  # fmt: skip

    def _gauges(self) -> Iterator[tuple[str, str, int]]:
        for served in list(self.loaded()):
            yield served.version.name, str(served.version.number), served.batcher.waiting


def _settle() -> None:
    """Collect garbage now, then exempt everything alive (frameworks, models) from later full
    collections: with millions of long-lived objects, each full collection stalls requests
    for 100+ ms (measured: p99 170 ms at 64 concurrent clients before, see bench/serving.py)."""
    gc.unfreeze()  # a retired model's objects must become collectable again
    gc.collect()
    gc.freeze()
