"""The model as a scoring worker holds it: where it comes from (`ModelSpec`, sent to every
worker), and `ScoringModel`, which matches a batch's columns to the signature and names the
answers as serving does."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InferenceError, InputRejected, InvalidDataFile, InvalidInput
from modelyard.flavors import LoadedModel, Signature, load_model, numpy_dtype
from modelyard.security import TrustPolicy
from modelyard.settings import Settings
from modelyard.store import open_store, restore_directory

Array = np.ndarray[Any, Any]

#: What a model raises for values it cannot take: the data's fault, as serving judges it.
DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError, ArithmeticError)


@dataclass(frozen=True)
class ModelSpec:
    """Where a worker finds the version: the store the `settings` name and the manifest
    `digest` (workers need no home of the client's), or a `folder` every worker can read.
    `trust` is the operator's, as for serving."""

    ref: str
    digest: str
    settings: Settings
    trust: bool = False
    folder: str | None = None

    def load(self, scratch: Path) -> LoadedModel:
        """The loaded model, its files restored under `scratch` when they come from the store."""
        folder = Path(self.folder) if self.folder else scratch / "model"
        if self.folder is None:
            restore_directory(open_store(self.settings), self.digest, folder)
        policy = TrustPolicy.of(
            self.trust, types=self.settings.trusted_types, modules=self.settings.trusted_modules
        )
        model = load_model(folder, trust=policy)
        model.ref = self.ref
        return model

    def open(self) -> ScoringModel:
        """Load into a fresh temporary folder (removed with `ScoringModel.close`)."""
        scratch = tempfile.TemporaryDirectory(prefix="modelyard-score-")
        try:
            return ScoringModel(self.load(Path(scratch.name)), scratch=scratch)
        except BaseException:
            scratch.cleanup()
            raise


class ScoringModel:
    """A loaded version that scores tables: columns in, named output arrays out."""

    def __init__(
        self, model: LoadedModel, *, scratch: tempfile.TemporaryDirectory[str] | None = None
    ) -> None:
        if model.signature is None:
            raise InvalidInput(f"{model.ref}: scoring needs a version with a signature")
        self.model = model
        self.signature: Signature = model.signature
        self.name = model.ref or "the model"
        self._scratch = scratch

    def close(self) -> None:
        """Remove the files restored for this model."""
        if self._scratch is not None:
            self._scratch.cleanup()

    def column_types(self) -> dict[str, Any]:
        """pyarrow types for the named 1-D inputs (how CSV columns are parsed)."""
        pyarrow = require("pyarrow", extra="pandas")
        types: dict[str, Any] = {}
        for spec in self.signature.inputs:
            if len(spec.shape) == 1 and spec.datatype == "BYTES":
                types[spec.name] = pyarrow.string()
            elif len(spec.shape) == 1:
                types[spec.name] = pyarrow.from_numpy_dtype(numpy_dtype(spec.datatype))
        return types

    def inputs(self, columns: dict[str, Array], *, path: str) -> dict[str, Array]:
        """The model's inputs from a batch's columns, conformed to the signature (columns by
        input name; for a model of one 2-D input, the file's columns side by side)."""
        names = [spec.name for spec in self.signature.inputs]
        chosen = {name: columns[name] for name in names if name in columns}
        if len(chosen) < len(names):
            chosen = self._stacked(columns, names, path)
        try:
            return self.signature.conform(chosen, model=self.name)
        except InvalidInput as error:
            raise InvalidDataFile(path, error.message) from None

    def _stacked(self, columns: dict[str, Array], names: list[str], path: str) -> dict[str, Array]:
        spec = self.signature.inputs[0]
        if len(names) == 1 and len(spec.shape) == 2 and spec.shape[1] in (-1, len(columns)):
            return {spec.name: np.column_stack(list(columns.values()))}
        missing = [name for name in names if name not in columns]
        raise InvalidDataFile(
            path,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"{self.name} takes {', '.join(names)}",
        )

    def predict(self, inputs: dict[str, Array], *, rows: int) -> dict[str, Array]:
        """The model's outputs for conformed `inputs`, named as serving names them, one row
        per input row."""
        try:
            output = self.model.call(self.signature.model_input(inputs))
        except DATA_ERRORS as error:
            raise InputRejected(self.name, f"{type(error).__name__}: {error}") from None
        except Exception as error:
            raise InferenceError(self.name, f"{type(error).__name__}: {error}") from None
        named = self._named(output)
        for name, array in named.items():
            if array.ndim == 0 or array.shape[0] != rows:
                raise InferenceError(
                    self.name, f"output {name!r} is not one row per input row ({rows} rows)"
                )
        return named

    def _named(self, output: Any) -> dict[str, Array]:
        names = [spec.name for spec in self.signature.outputs]
        if hasattr(output, "columns") and hasattr(output, "to_numpy"):  # a DataFrame
            return {str(column): np.asarray(output[column].to_numpy()) for column in output}
        if isinstance(output, dict):
            return {str(key): np.asarray(value) for key, value in output.items()}
        if isinstance(output, tuple):
            return {_name(names, i): np.asarray(item) for i, item in enumerate(output)}
        return {_name(names, 0): np.asarray(output)}


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else f"output-{index}"
