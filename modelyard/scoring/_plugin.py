"""`ModelPlugin`: a Dask worker plugin that loads the model once per worker process, and
`score_on_worker`, the task each partition runs."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin, get_worker

from modelyard.errors import ConfigurationError, ModelyardError, class_for
from modelyard.scoring._model import ModelSpec, ScoringModel
from modelyard.scoring._partition import PartitionResult, PartitionTask, score_partition


class ModelPlugin(WorkerPlugin):
    """Holds one version on each worker: loaded on first use from the store the spec names,
    reused by every partition that worker scores, and freed when the plugin is removed."""

    def __init__(self, spec: ModelSpec, *, name: str) -> None:
        self.spec = spec
        self.name = name
        self.loads = 0  # how many times this worker loaded the model: once
        self._model: ScoringModel | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], name=state["name"])  # type: ignore[misc]

    def model(self) -> ScoringModel:
        """The loaded model (loaded on this worker's first partition)."""
        with self._lock:
            if self._model is None:
                self._model = self.spec.open()
                self.loads += 1
            return self._model

    def teardown(self, worker: Any) -> None:
        with self._lock:
            if self._model is not None:
                self._model.close()
                self._model = None


@dataclass(frozen=True)
class CarriedError:
    """A modelyard error raised on a worker, sent back by code and message (its class may
    take arguments that pickling cannot rebuild) and raised again on the client."""

    code: str
    message: str
    attributes: dict[str, Any]

    @classmethod
    def of(cls, error: ModelyardError) -> CarriedError:
        plain = {k: v for k, v in vars(error).items() if isinstance(v, str | int | float)}
        return cls(error.code, error.message, plain)

    def rebuilt(self) -> ModelyardError:
        """The error as its own class, with its message and plain attributes."""
        kind = class_for(self.code)
        error = kind.__new__(kind)
        ModelyardError.__init__(error, self.message)
        for key, value in self.attributes.items():
            setattr(error, key, value)
        return error


def score_on_worker(task: PartitionTask, *, plugin: str) -> PartitionResult | CarriedError:
    """Score one partition with the model the worker's `plugin` holds (loading it first on the
    worker's first partition, whose `cpu` then counts the `load`)."""
    try:
        holder = _plugin(plugin)
        loads, began = holder.loads, time.thread_time()
        model = holder.model()
        load = time.thread_time() - began
        result = score_partition(model, task)
        if holder.loads == loads:
            return result
        return dataclasses.replace(result, cpu={"load": load, **result.cpu})
    except ModelyardError as error:
        return CarriedError.of(error)


def _plugin(name: str) -> ModelPlugin:
    found = get_worker().plugins.get(name)
    if not isinstance(found, ModelPlugin):  # the job's plugin went with a cancelled job
        raise ConfigurationError(f"this worker holds no model for the job {name!r}")
    return found
