"""Calling a loaded model on a batch of decoded requests: inputs stacked and shaped the way the
model was saved (one array, a DataFrame, or a dict), outputs named and split back per request."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InferenceError, InputRejected, InvalidInput, ModelyardError
from modelyard.flavors import LoadedModel, Signature
from modelyard.serving._batching import Outputs
from modelyard.serving._codecs import Request


class Runner:
    """Answers batches of requests with one loaded model version."""

    def __init__(self, model: LoadedModel, *, name: str) -> None:
        self.model = model
        self.name = name
        self.signature: Signature | None = model.signature

    def check(self, request: Request) -> None:
        """Raise `InvalidInput` (400) when the request does not fit the signature."""
        if self.signature is None:
            return
        names = [spec.name for spec in self.signature.inputs]
        unknown = sorted(set(request.inputs) - set(names))
        if unknown:
            raise InvalidInput(
                f"unknown input {unknown[0]!r}; {self.name} takes {', '.join(names)}"
            )
        self.signature.check(request.inputs)

    def __call__(self, requests: list[Request]) -> list[Outputs | Exception]:
        """Predict a batch (in a worker thread) and give each request its own rows. When the
        batch fails, each request is answered alone, so one client's bad values (a NaN the
        model raises on) fail that request only, not everyone batched with it. A batch of one
        raises its error."""
        if len(requests) == 1:
            return [self._predict(requests[0].inputs)]
        stacked = {
            name: np.concatenate([request.inputs[name] for request in requests])
            for name in requests[0].inputs
        }
        try:
            outputs = self._predict(stacked)
        except ModelyardError:
            return [self._alone(request) for request in requests]
        rows = [request.rows for request in requests]
        if any(array.ndim == 0 or array.shape[0] != sum(rows) for array in outputs.values()):
            # The model's answer is not one row per input row: answer each request alone.
            return [self._alone(request) for request in requests]
        bounds = np.cumsum(rows)[:-1]
        parts = {name: np.split(array, bounds) for name, array in outputs.items()}
        return [{name: parts[name][i] for name in outputs} for i in range(len(requests))]

    def answer(self, request: Request) -> Outputs:
        """Predict one request on the calling thread; errors are raised."""
        return self._predict(request.inputs)

    def _alone(self, request: Request) -> Outputs | Exception:
        try:
            return self._predict(request.inputs)
        except ModelyardError as error:
            return error

    def _predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Outputs:
        try:
            output = self.model.predict(self._model_input(inputs))
        except InvalidInput:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as error:  # the values, not a bug
            raise InputRejected(self.name, f"{type(error).__name__}: {error}") from error
        except Exception as error:
            raise InferenceError(self.name, f"{type(error).__name__}: {error}") from error
        return self._named(output)

    def _model_input(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Any:
        content_type = self.signature.content_type if self.signature else "np"
        if content_type == "pd":
            pandas = require("pandas", extra="pandas")
            return pandas.DataFrame({name: _column(array) for name, array in inputs.items()})
        if content_type == "dict" or len(inputs) > 1:
            return inputs
        return next(iter(inputs.values()))

    def _named(self, output: Any) -> Outputs:
        names = [spec.name for spec in self.signature.outputs] if self.signature else []
        if hasattr(output, "columns") and hasattr(output, "to_numpy"):  # a DataFrame
            return {str(column): np.asarray(output[column].to_numpy()) for column in output}
        if isinstance(output, dict):
            return {str(key): np.asarray(value) for key, value in output.items()}
        if isinstance(output, tuple):  # several outputs (a list is one array)
            return {_name(names, i): np.asarray(item) for i, item in enumerate(output)}
        return {_name(names, 0): np.asarray(output)}


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else f"output-{index}"


def _column(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array
