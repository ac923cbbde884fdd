"""Input examples, stored with a version as `input_example.npz` (no pickle, dtypes kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.flavors._signatures import ContentType, _columns, content_type_of

EXAMPLE_FILE = "input_example.npz"


def save_example(example: Any, folder: Path) -> ContentType:
    """Write `example` into `folder`; return its content type (`np`, `pd` or `dict`)."""
    content_type = content_type_of(example)
    columns = {name: _storable(array) for name, array in _columns(example).items()}
    if content_type == "np" and not isinstance(example, tuple):
        columns = {"input-0": _storable(np.asarray(_columns(example)["input-0"]))}
    with open(folder / EXAMPLE_FILE, "wb") as handle:
        np.savez(handle, allow_pickle=False, **columns)
    return content_type


def load_example(folder: Path, content_type: ContentType) -> Any:
    """The example `save_example` wrote, rebuilt as an array, a DataFrame or a dict."""
    with np.load(folder / EXAMPLE_FILE, allow_pickle=False) as stored:
        columns = {name: stored[name] for name in stored.files}
    if content_type == "pd":
        pandas = require("pandas", extra="pandas")
        return pandas.DataFrame({name: _restored(array) for name, array in columns.items()})
    if content_type == "dict":
        return columns
    return next(iter(columns.values()))


def _storable(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    # Strings and objects go in as fixed-width unicode: .npz stores those without pickle.
    if array.dtype.kind == "O":
        return np.asarray([str(value) for value in array.ravel()]).reshape(array.shape)
    return array


def _restored(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return array.astype(object) if array.dtype.kind == "U" else array
