"""The serving core, free of any transport: health, metadata and inference over a `ModelPool`,
each answer counted in the metrics. HTTP (`modelyard.api._inference`) only parses and writes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.__about__ import __version__
from modelyard.errors import ConfigurationError, InvalidInput, ModelyardError
from modelyard.serving._batching import Outputs
from modelyard.serving._codecs import Request
from modelyard.serving._metrics import UNKNOWN, Metrics
from modelyard.serving._pool import ModelPool, ServedVersion
from modelyard.serving._predictions import PredictionLog
from modelyard.serving._traffic import Traffic

if TYPE_CHECKING:
    from modelyard.explain import Explanation

EXTENSIONS = ["metrics", "binary_tensor_data"]


@dataclass(slots=True)
class Inference:
    """What a model answered: its outputs, and which version answered."""

    model_name: str
    model_version: str
    outputs: Outputs
    id: str | None


@dataclass(slots=True)
class Explained:
    """Why a model answers as it does: the explanation, and which version it explains."""

    model_name: str
    model_version: str
    explanation: Explanation
    id: str | None


class DataPlane:
    """Answer OIP calls from the versions in `pool`."""

    def __init__(
        self,
        pool: ModelPool,
        metrics: Metrics,
        *,
        log: PredictionLog | None = None,
        feedback: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.log = log
        self.store_feedback = feedback  # (model, records) -> None; runs in a worker thread
        self.traffic = Traffic()
        self._shadows: set[asyncio.Task[None]] = set()

    async def feedback(self, name: str, records: list[dict[str, Any]]) -> int:
        """Store labels for answered requests of a served model; how many were stored."""
        self.pool.model(name)  # 404 for a model not served here
        if self.store_feedback is None:
            raise ConfigurationError("this server does not take feedback")
        await asyncio.to_thread(self.store_feedback, name, records)
        self.metrics.feedback.labels(name).inc(len(records))
        return len(records)

    def _start_shadow(
        self, shadow: ServedVersion, request: Request, version: str, expected: Outputs
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._shadow(shadow, request, version, expected)
        )
        self._shadows.add(task)  # held until done, so it is not collected mid-flight
        task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, shadow: ServedVersion, request: Request, version: str, expected: Outputs
    ) -> None:
        """Ask the shadow version too; count whether it agreed, never answer with it."""
        try:
            outputs = await shadow.infer(request)
            outcome = "agree" if _agree(expected, outputs) else "disagree"
        except Exception:  # the shadow's failures are counted, never the client's problem
            outcome = "error"
        self.metrics.shadow(shadow.version.name, version, str(shadow.version.number), outcome)

    def live(self) -> bool:
        """The server answers (always true once this object exists)."""
        return True

    def ready(self) -> bool:
        """Every served model has a version ready."""
        return self.pool.ready()

    def metadata(self) -> dict[str, Any]:
        """Server metadata."""
        return {"name": "modelyard", "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether a model (or one version) is ready; `NotFound` when it is not served."""
        self.pool.get(name, version)
        return True

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Name, served versions, platform (the flavor), inputs and outputs of a version."""
        served = self.pool.get(name, version)
        signature = served.runner.signature
        tensors = {"inputs": [], "outputs": []} if signature is None else {
            "inputs": [spec.model_dump() for spec in signature.inputs],
            "outputs": [spec.model_dump() for spec in signature.outputs],
        }  # fmt: skip
        model = self.pool.models[name]
        parameters = {"version": str(served.version.number), "ref": served.version.ref}
        if model.unloadable is not None:  # the alias's version does not load: the last good serves
            parameters["unloadable_version"] = str(model.unloadable[0])
            parameters["unloadable_reason"] = model.unloadable[1]
        return {
            "name": name,
            "versions": [str(n) for n in sorted(model.versions)],
            "platform": served.runner.model.flavor.name,
            **tensors,
            "parameters": parameters,
        }

    async def explain(self, name: str, version: str | None, request: Request) -> Explained:
        """Explain a request's rows with the version asked for, or the default one (never a
        canary: an explanation is of one version), after the checks inference makes. The
        explainer is the model's own unless `parameters.explainer` names one."""
        served = self.pool.get(name, version)
        served.runner.check(request)
        chosen = request.parameters.get("explainer")
        if chosen is not None and not isinstance(chosen, str):
            raise InvalidInput(f"parameters.explainer must name an explainer, got {chosen!r}")
        built = served.explainers.get(chosen or "")
        if built is not None and built.quick(request.rows):
            # Tree or linear SHAP on a row or a few takes about as long as the hand-off to a
            # thread would (measured: bench/serving_startup.py), so it is answered here.
            explanation = built.explain(request.inputs)
        else:  # building the explainer, or a long explanation: the loop keeps serving
            explanation = await asyncio.to_thread(served.explain, request.inputs, chosen)
        return Explained(name, str(served.version.number), explanation, request.id)

    async def infer(self, name: str, version: str | None, request: Request) -> Inference:
        """Run one request through the version's batcher (the canary's, for its share), and a
        copy through the shadow version's when there is one."""
        began = time.perf_counter()
        label = "default" if version is None else UNKNOWN
        try:
            model = self.pool.model(name)
            served = model.route(version)
            label = str(served.version.number)
            outputs = await served.infer(request)
        except ModelyardError as error:
            self._count_failure(name, label, error.status_code, time.perf_counter() - began)
            raise
        if version is None:
            for shadow in model.shadows:
                if shadow != served.version.number:
                    self._start_shadow(model.versions[shadow], request, label, outputs)
        if request.outputs:
            outputs = {key: value for key, value in outputs.items() if key in request.outputs}
        seconds = time.perf_counter() - began
        self.metrics.observe(name, label, 200, seconds)
        self.traffic.record(name, 200, seconds)
        if self.log is not None:
            if request.id is None:  # the client needs an id to send feedback for this answer
                request.id = uuid.uuid4().hex
            self.log.record(name, label, request, outputs, seconds)
        return Inference(name, label, outputs, request.id)

    def _count_failure(self, name: str, label: str, status: int, seconds: float) -> None:
        """Count a failed request. The labels are bounded: a model that is not served (any name
        a client invents) is counted once as `<unknown>`, and so is a version it asked for that
        is not served, so requests cannot add series (or traffic rings) without end."""
        if name not in self.pool.models:
            self.metrics.observe(UNKNOWN, UNKNOWN, status, seconds)
            return
        self.metrics.observe(name, label, status, seconds)
        self.traffic.record(name, status, seconds)


def _agree(a: Outputs, b: Outputs) -> bool:
    if a.keys() != b.keys():
        return False
    for name, left in a.items():
        right = b[name]
        if left.shape != right.shape:
            return False
        if left.dtype.kind == "f" or right.dtype.kind == "f":
            if not np.allclose(left, right, rtol=1e-5, atol=1e-8, equal_nan=True):
                return False
        elif not np.array_equal(left, right):
            return False
    return True
