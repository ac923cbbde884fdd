"""Calling a loaded model on a batch of decoded requests: inputs conformed to the signature,
stacked and shaped the way the model was saved (one array, a DataFrame, or a dict), outputs
named and split back per request.

One request's values must never fail another's: when a batch fails, it is split in halves
and each half tried again, down to the request that fails alone, which gets its own error
(from a call that saw only its own data). A model whose answer is not one row per input row
(a batch-wide value, rows of different lengths) is called once per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import InferenceError, InputRejected, ModelyardError
from modelyard.flavors import LoadedModel, Signature
from modelyard.serving._batching import Outputs
from modelyard.serving._codecs import Request

CLIENT_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, LookupError, ArithmeticError,
)  # fmt: skip
"""What a model raises for arguments it cannot take (a NaN, a negative count, a division by a
zero it was sent): the request's fault (`InputRejected`, 422). Anything else is the model's
(`InferenceError`, 500)."""


class Runner:
    """Answers batches of requests with one loaded model version."""

    def __init__(self, model: LoadedModel, *, name: str) -> None:
        self.model = model
        self.name = name
        self.signature: Signature | None = model.signature

    def check(self, request: Request) -> None:
        """Conform the request to the signature (inputs reordered by name, cast where no value
        changes) or raise `InvalidInput` (400) naming what is missing, unknown, mistyped or
        misshapen."""
        if self.signature is not None:
            request.inputs = self.signature.conform(request.inputs, model=self.name)

    def __call__(self, requests: list[Request]) -> list[Outputs | Exception]:
        """Predict a batch (in a worker thread) and give each request its own rows, or the
        error that is its own. A batch of one raises its error."""
        if len(requests) == 1:
            return [self._predict(requests[0].inputs)]
        return self._batch(requests)

    def answer(self, request: Request) -> Outputs:
        """Predict one request on the calling thread, as it is (call `check` first for a
        client's request); errors are raised."""
        return self._predict(request.inputs)

    def _batch(self, requests: list[Request]) -> list[Outputs | Exception]:
        try:
            output = self._call(_stacked(requests))
        except Exception:  # someone's values (or a batch-wide bug): find whose, by halves
            half = len(requests) // 2
            return self._part(requests[:half]) + self._part(requests[half:])
        try:
            parts = _split(self._named(output), [request.rows for request in requests])
        except Exception:  # rows answered in different shapes (a ragged list): not arrays
            parts = None
        if parts is None:  # not one row per input row: answer each request alone
            return [self._alone(request) for request in requests]
        return parts

    def _part(self, requests: list[Request]) -> list[Outputs | Exception]:
        return [self._alone(requests[0])] if len(requests) == 1 else self._batch(requests)

    def _alone(self, request: Request) -> Outputs | Exception:
        try:
            return self._predict(request.inputs)
        except ModelyardError as error:
            return error

    def _predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Outputs:
        output = self._call(inputs)
        try:
            return self._named(output)
        except Exception as error:  # ragged lists, objects NumPy cannot hold: the model's bug
            raise InferenceError(
                self.name, f"its answer is not arrays ({type(error).__name__}: {error})"
            ) from error

    def _call(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Any:
        try:
            return self.model.call(self._model_input(inputs))
        except ModelyardError:
            raise  # a mismatch the signature check names (400), a missing extra, …
        except CLIENT_ERRORS as error:  # the values, not a bug
            raise InputRejected(self.name, f"{type(error).__name__}: {error}") from error
        except Exception as error:
            raise InferenceError(self.name, f"{type(error).__name__}: {error}") from error

    def _model_input(self, inputs: dict[str, np.ndarray[Any, Any]]) -> Any:
        # Checked once per request (`check`), so a batch is not checked again.
        if self.signature is not None:
            return self.signature.model_input(inputs)
        return next(iter(inputs.values())) if len(inputs) == 1 else inputs

    def _named(self, output: Any) -> Outputs:
        names = [spec.name for spec in self.signature.outputs] if self.signature else []
        if hasattr(output, "columns") and hasattr(output, "to_numpy"):  # a DataFrame
            return {str(column): np.asarray(output[column].to_numpy()) for column in output}
        if isinstance(output, dict):
            return {str(key): np.asarray(value) for key, value in output.items()}
        if isinstance(output, tuple):  # several outputs (a list is one array)
            return {_name(names, i): np.asarray(item) for i, item in enumerate(output)}
        return {_name(names, 0): np.asarray(output)}


def _stacked(requests: list[Request]) -> dict[str, np.ndarray[Any, Any]]:
    return {
        name: np.concatenate([request.inputs[name] for request in requests])
        for name in requests[0].inputs
    }


def _split(outputs: Outputs, rows: list[int]) -> list[Outputs | Exception] | None:
    """Each request's rows of a batch's outputs; None when an output is not one row per row."""
    total = sum(rows)
    if any(array.ndim == 0 or array.shape[0] != total for array in outputs.values()):
        return None
    bounds = np.cumsum(rows)[:-1]
    parts = {name: np.split(array, bounds) for name, array in outputs.items()}
    return [{name: parts[name][i] for name in outputs} for i in range(len(rows))]


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else f"output-{index}"
