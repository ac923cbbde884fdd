"""Features: a model's inputs as one matrix (rows x features, float64) and back.

Explainers work on a table of numbers: SHAP and LIME perturb columns of it. `Features` maps a
model's inputs onto that table the way its signature declares them, and rebuilds what the model
takes (one array, a DataFrame, or a dict of arrays) from any rows of it. Feature names come from
the signature: a DataFrame's columns, `name[i]` for the columns of a 2-D input among several, and
`x0` … `xn` for a model that takes one array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.errors import InvalidInput, UnsupportedModel
from modelyard.flavors import Signature, TensorSpec, infer_signature, named_arrays, numpy_dtype

Matrix = npt.NDArray[np.float64]

BACKGROUND_FILE = "explain/background.npz"
#: Real rows of the reference data kept as the explainers' background sample.
BACKGROUND_ROWS = 100


@dataclass(frozen=True)
class Features:
    """The columns explainers see, and how to turn rows of them back into a model's input."""

    names: tuple[str, ...]
    signature: Signature

    @classmethod
    def of(cls, signature: Signature) -> Features:
        """The features of a model that takes `signature`'s inputs; string inputs are refused."""
        names: list[str] = []
        single = signature.content_type == "np" and len(signature.inputs) == 1
        for spec in signature.inputs:
            if spec.datatype == "BYTES":
                raise UnsupportedModel(
                    f"input {spec.name!r} holds strings (BYTES); explanations need numeric inputs"
                )
            width = _width(spec)
            if single:
                names += [f"x{i}" for i in range(width)]
            elif width == 1:
                names.append(spec.name)
            else:
                names += [f"{spec.name}[{i}]" for i in range(width)]
        return cls(tuple(names), signature)

    @classmethod
    def infer(cls, data: Any) -> Features:
        """The features of `data` itself, for a model stored without a signature (one named
        array is passed on as it is, as the server does)."""
        if isinstance(data, Mapping) and len(data) == 1:
            data = next(iter(data.values()))
        return cls.of(infer_signature(data))

    def check(self, inputs: Mapping[str, Any]) -> None:
        """Raise `InvalidInput` as inference does for inputs that do not fit the signature."""
        taken = [spec.name for spec in self.signature.inputs]
        unknown = sorted(set(inputs) - set(taken))
        single = self.signature.content_type == "np" and len(taken) == 1 and len(inputs) == 1
        if unknown and not single:
            raise InvalidInput(f"unknown input {unknown[0]!r}; the model takes {', '.join(taken)}")
        self.signature.check(dict(inputs))

    def matrix(self, inputs: Mapping[str, Any]) -> Matrix:
        """Named input arrays (as `named_arrays` gives them) as one float64 matrix."""
        self.check(inputs)
        specs = self.signature.inputs
        if self.signature.content_type == "np" and len(specs) == 1 and len(inputs) == 1:
            inputs = {specs[0].name: next(iter(inputs.values()))}
        columns = [np.asarray(inputs[spec.name]) for spec in specs]
        rows = {len(column) for column in columns}
        if len(rows) != 1:
            raise InvalidInput(f"the inputs have different numbers of rows: {sorted(rows)}")
        parts = [
            column.reshape(len(column), math.prod(column.shape[1:])).astype(np.float64)
            for column in columns
        ]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def rows_of(self, data: Any) -> Matrix:
        """What a user passes a model (array, DataFrame, dict of arrays) as a matrix."""
        return self.matrix(named_arrays(data))

    def model_input(self, matrix: Matrix) -> Any:
        """Rows of the matrix as the model takes them, in the signature's dtypes and shapes."""
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        start = 0
        for spec in self.signature.inputs:
            width = _width(spec)
            block = matrix[:, start : start + width]
            start += width
            arrays[spec.name] = _typed(block, spec).reshape(len(matrix), *spec.shape[1:])
        if self.signature.content_type == "pd":
            pandas = require("pandas", extra="pandas")
            return pandas.DataFrame({name: _column(array) for name, array in arrays.items()})
        if self.signature.content_type == "dict" or len(arrays) > 1:
            return arrays
        return next(iter(arrays.values()))


def _width(spec: TensorSpec) -> int:
    trailing = spec.shape[1:]
    if any(size < 0 for size in trailing):
        raise UnsupportedModel(
            f"input {spec.name!r} has the variable shape {spec.shape}; explanations need a "
            "fixed number of features"
        )
    return math.prod(trailing)


def _typed(block: Matrix, spec: TensorSpec) -> np.ndarray[Any, Any]:
    dtype = numpy_dtype(spec.datatype)
    if dtype.kind == "b":
        return block > 0.5
    if dtype.kind in "iu":  # perturbed rows (LIME) are continuous: round to the nearest value
        return np.rint(block).astype(dtype)
    return block.astype(dtype, copy=False)


def _column(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array


def sample_rows(matrix: Matrix, size: int, *, seed: int = 0) -> Matrix:
    """At most `size` rows of `matrix`, drawn uniformly without replacement (all if it fits)."""
    if len(matrix) <= size:
        return matrix
    chosen = np.sort(np.random.default_rng(seed).choice(len(matrix), size, replace=False))
    return matrix[chosen]


def write_background(folder: Path, features: Features, matrix: Matrix) -> None:
    """Store real rows of the reference data (not rows rebuilt from the per-column samples of
    the monitoring profile, whose columns are drawn independently) as `explain/background.npz`,
    with the signature that turns them back into model inputs. No pickle: floats and text."""
    path = folder / BACKGROUND_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(
            handle, allow_pickle=False, rows=sample_rows(matrix, BACKGROUND_ROWS),
            signature=np.array(features.signature.model_dump_json()),
        )  # fmt: skip


def read_background(folder: Path) -> tuple[Matrix, Features] | None:
    """The background rows stored with a version and their features, or None."""
    path = folder / BACKGROUND_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        signature = Signature.model_validate_json(str(stored["signature"]))
        return stored["rows"].astype(np.float64), Features.of(signature)
