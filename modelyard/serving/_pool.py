"""The versions a serving process holds: loaded from the registry, warmed, and swapped in when
a served alias moves.

`fraud@production` follows the alias: a watcher checks the registry every `serve_poll_seconds`,
and at once when its `AliasEvents` (PostgreSQL LISTEN, a registry server's event stream) tell of
a move (a lost notification is caught by the next poll). When the alias points elsewhere the new
version is loaded and warmed in the background, then becomes the one that answers, all at once;
the old one finishes what it has queued and is dropped. A version whose loading is refused (the
operator's trust policy, or a LightGBM or XGBoost file that crashes the probe process), or whose
signature differs from the served one's (unless the operator allows it), is logged, counted and
skipped, and the old one keeps serving.
`iris:3` pins a version; `iris` serves the latest version at start.

Each version that served a followed alias is recorded on local disk (`LastGood`): a restart
whose alias points at a version that cannot load (a corrupt or missing blob) serves the last
good one instead, reports the other in the log, the metrics and the model's metadata, and swaps
when the alias moves to a version that loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import (
    ConfigurationError,
    DatabaseReplaced,
    ModelNotReady,
    ModelyardError,
    NotFound,
    RegistryUnavailable,
    SignatureChanged,
    SignatureInvalid,
    SignatureMissing,
    StoreUnavailable,
    UnsupportedModel,
    UntrustedModel,
)
from modelyard.flavors import load_model, named_arrays, needs_probe, probe
from modelyard.registry import AliasMove, ModelVersion, Reference
from modelyard.security import SIGNATURE_TAG, TrustPolicy
from modelyard.serving._alias_events import AliasEvents
from modelyard.serving._batching import Batcher, Outputs
from modelyard.serving._codecs import Request
from modelyard.serving._collection import SETTLE_SECONDS, settle
from modelyard.serving._compatibility import signature_change
from modelyard.serving._last_good import FILE, LastGood
from modelyard.serving._metrics import Metrics
from modelyard.serving._runner import Runner
from modelyard.serving._sources import ModelSource
from modelyard.serving._tasks import cancel
from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard.explain import Explainer, Explanation

log = logging.getLogger("modelyard.serving")

RETRY_SECONDS = 60.0
"""How long a followed alias's version that failed to load waits before it is tried again (a
blob put back, a cache repaired): not at every poll, which would fill the log."""
# Refusals that stand until the version changes (its signature tag) or the server restarts.
_REFUSALS = (UnsupportedModel, UntrustedModel, SignatureMissing, SignatureInvalid,
             SignatureChanged)  # fmt: skip


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
    unloadable: tuple[int, str] | None = None  # the alias's version that failed to load, why

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
    `ModelSource`: it resolves references and hands over versions' files); `events`, when
    given, tell of alias moves so that followed aliases swap without waiting for the poll."""

    def __init__(
        self,
        source: ModelSource,
        settings: Settings,
        *,
        metrics: Metrics,
        trust: bool | TrustPolicy = False,
        events: AliasEvents | None = None,
    ) -> None:
        self.source = source
        self.events = events
        self.settings = settings
        self.metrics = metrics
        self.trust = TrustPolicy.of(
            trust, types=settings.trusted_types, modules=settings.trusted_modules
        )
        # Versions refused at a swap, and why; a signature refusal is keyed by the signature
        # tag too, so signing the version later makes it a candidate again.
        self.refused: dict[tuple[str, int, str], str] = {}
        self.registry_lost = ""  # why the registry cannot be followed any more (not ready)
        self.last_good = LastGood(settings.home / FILE)
        self.models: dict[str, ServedModel] = {}
        self._retry_at: dict[tuple[str, int], float] = {}  # failed loads: when to try again
        self._candidates: list[tuple[str, str, float]] = []  # (ref, "canary"|"shadow", share)
        self._watcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set when an alias move is heard of
        self._listening = False
        self._settling: asyncio.TimerHandle | None = None  # a collection after retirements
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
            try:
                self._check_signature(model, version)
            except SignatureChanged as error:  # the served version answers alone, as before
                self._refuse(model, version, error, role=role)
                continue
            model.pinned.add(version.number)
            await self._install(model, version, default=False)
            if role == "canary":
                model.canary = (version.number, share)
            elif version.number not in model.shadows:
                model.shadows.append(version.number)
        settle(full=False)
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(self._watch())
        if self.events is not None and any(m.alias is not None for m in self.models.values()):
            try:
                self.events.start(lambda move: self._heard(loop, move))
                self._listening = True
            except Exception:  # serving goes on, following by polling alone
                log.exception("cannot hear of alias moves; following by polling alone")

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
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if self.events is not None and self._listening:
            self._listening = False
            await asyncio.to_thread(self.events.stop)
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
        if pinned or model.alias is None:
            await self._install(model, version, default=default)
            return
        try:
            await self._install(model, version, default=True)
        except Exception as error:  # any failure to load: the last good version may serve
            fallback = await asyncio.to_thread(self._fallback, model, version)
            if fallback is None:
                raise ModelNotReady(
                    f"cannot serve {ref}: version {version.number} does not load "
                    f"({_reason(error)}), and no other version of it has served here"
                ) from error
            self._failed(model, version, error)
            try:
                await self._install(model, fallback, default=True)
            except Exception as second:
                raise ModelNotReady(
                    f"cannot serve {ref}: version {version.number} does not load "
                    f"({_reason(error)}), nor does {fallback.ref}, the last that served it "
                    f"({_reason(second)})"
                ) from second
            log.error("%s: serving version %s, the last good one, until the alias moves to a "
                      "version that loads", ref, fallback.number)  # fmt: skip
            return
        await asyncio.to_thread(self.last_good.record, f"{model.name}@{model.alias}", version)

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
        if self._settling is None:  # retirements close together share one collection
            loop = asyncio.get_running_loop()
            self._settling = loop.call_later(SETTLE_SECONDS, self._settle_now)

    def _settle_now(self) -> None:
        self._settling = None
        settle()

    def _heard(self, loop: asyncio.AbstractEventLoop, move: AliasMove | None) -> None:
        """From the events' thread: wake the watcher for a move of a followed alias (or for
        None: moves may have been missed)."""
        if move is not None:
            model = self.models.get(move.model)
            if model is None or model.alias != move.alias:
                return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
            loop.call_soon_threadsafe(self._wake.set)

    async def _next_check(self) -> None:
        """Wait until an alias move is heard of, or `serve_poll_seconds` have passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.serve_poll_seconds)
        self._wake.clear()  # a move heard during the check that follows wakes the next one

    async def _watch(self) -> None:
        while True:
            await self._next_check()
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
        that is refused (untrusted, unsafe, crashing, another signature) leaves the old one
        serving, and so does one that fails to load (tried again after `RETRY_SECONDS`)."""
        alias = f"{model.name}@{model.alias}"
        target = await asyncio.to_thread(self.source.get_version, alias)
        key = (model.name, target.number, str(target.tags.get(SIGNATURE_TAG, "")))
        if target.number == model.default or key in self.refused:
            if target.number == model.default and model.unloadable is not None:
                self._recovered(model)  # the alias moved back to the version serving
            return
        if time.monotonic() < self._retry_at.get((model.name, target.number), 0.0):
            return
        try:
            self._check_signature(model, target)
            await self._install(model, target, default=True)
        except _REFUSALS as error:
            self.refused[key] = str(error)
            self._refuse(model, target, error, role="alias")
            return
        except (RegistryUnavailable, StoreUnavailable):
            raise  # passing trouble, not the version's: tried again at the next poll
        except Exception as error:
            self._failed(model, target, error)
            return
        self._recovered(model)
        await asyncio.to_thread(self.last_good.record, alias, target)

    def _check_signature(self, model: ServedModel, candidate: ModelVersion) -> None:
        """`SignatureChanged` when `candidate` takes or answers otherwise than the version
        serving, unless the operator allows it."""
        if self.settings.serve_allow_signature_change or model.default is None:
            return
        served = model.versions[model.default].version
        change = signature_change(served, candidate)
        if change:
            raise SignatureChanged(
                f"version {candidate.number} of {model.name!r} takes or answers otherwise than "
                f"version {served.number}, which serves: {change} (allow it with "
                "--allow-signature-change)"
            )

    def _refuse(self, model: ServedModel, version: ModelVersion, error: Exception, *,
                role: str) -> None:  # fmt: skip
        self.metrics.refused.labels(model.name, str(version.number), _code(error)).inc()
        log.error("%s: refused version %s as %s, still serving version %s: %s", model.name,
                  version.number, role, model.default, error)  # fmt: skip

    def _failed(self, model: ServedModel, version: ModelVersion, error: Exception) -> None:
        """Report loudly that the alias's version does not load: the log (at error), the
        refusal counter, the fallback gauge and the model's metadata."""
        self._retry_at[(model.name, version.number)] = time.monotonic() + RETRY_SECONDS
        if model.unloadable is not None and model.unloadable[0] != version.number:
            self._clear_fallback(model)
        model.unloadable = (version.number, _reason(error))
        self.metrics.refused.labels(model.name, str(version.number), _code(error)).inc()
        self.metrics.fallback.labels(model.name, str(model.alias), str(version.number)).set(1)
        serving = "" if model.default is None else f", still serving version {model.default}"
        log.error("%s@%s: version %s does not load%s: %s", model.name, model.alias,
                  version.number, serving, _reason(error),
                  exc_info=not isinstance(error, ModelyardError))  # fmt: skip

    def _recovered(self, model: ServedModel) -> None:
        if model.unloadable is not None:
            self._clear_fallback(model)
            model.unloadable = None

    def _clear_fallback(self, model: ServedModel) -> None:
        labels = (
            model.name,
            str(model.alias),
            str(model.unloadable[0] if model.unloadable else ""),
        )
        # 0 first: with several workers, the value lives on in this worker's metrics file.
        self.metrics.fallback.labels(*labels).set(0)
        self.metrics.fallback.remove(*labels)

    def _fallback(self, model: ServedModel, failed: ModelVersion) -> ModelVersion | None:
        """The last good version of the model's alias, when it is another version that the
        registry still holds under the same id (blocks: run it in a thread)."""
        recorded = self.last_good.get(f"{model.name}@{model.alias}")
        if recorded is None or recorded[0] == failed.ref:
            return None
        try:
            version = self.source.get_version(recorded[0])
        except NotFound:
            return None
        return version if version.id == recorded[1] else None

    def _gauges(self) -> Iterator[tuple[str, str, int]]:
        for served in list(self.loaded()):
            yield served.version.name, str(served.version.number), served.batcher.waiting


def _code(error: Exception) -> str:
    """A bounded label for why a version was refused: its error's wire code."""
    return error.code if isinstance(error, ModelyardError) else "unloadable"


def _reason(error: Exception) -> str:
    """One line: the error's own sentence, or its type and message for a framework's."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, ModelyardError) else f"{type(error).__name__}: {text}"
