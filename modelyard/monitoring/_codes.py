"""Category codes of NumPy text and boolean arrays, without a Python object per row.

pandas factorizes a fixed-width text array (`<U6`) by first making a Python string of every
row, which costs more than all the numeric columns of a table together. Here each row's bytes
are hashed as machine words instead; the codes are then checked against the rows themselves,
so a hash collision (never seen, but possible) costs time, never a wrong count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require

Codes = npt.NDArray[np.intp]
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(29)
#: Wider rows (long texts) cost one pass per 8 bytes here: pandas is faster on them.
_WIDEST = 256


def boolean_codes(values: npt.NDArray[np.bool_]) -> tuple[Codes, list[str]]:
    """Codes of a boolean array: 0 is "False", 1 is "True"."""
    return values.astype(np.intp), ["False", "True"]


def text_codes(values: npt.NDArray[Any]) -> tuple[Codes, list[str]]:
    """Codes of a `U` or `S` array into its distinct values, in order of first appearance."""
    pandas = require("pandas", extra="monitor")
    if values.size == 0 or values.itemsize % 4 or values.itemsize > _WIDEST:
        return _by_objects(pandas, values)
    codes, _ = pandas.factorize(_hashes(np.ascontiguousarray(values)))
    codes = np.asarray(codes, dtype=np.intp)
    # Codes are numbered as they first appear, so a row opens a code when it exceeds all before.
    seen = np.maximum.accumulate(codes)
    opens = np.flatnonzero(np.concatenate([[True], codes[1:] > seen[:-1]]))
    labels = values[opens]
    if not np.array_equal(labels[codes], values):  # a collision: count the slow, sure way
        return _by_objects(pandas, values)
    return codes, [str(label) for label in labels]


def _hashes(values: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    words = values.view(np.uint32).reshape(values.size, -1)
    if words.shape[1] % 2:
        words = np.concatenate([words, np.zeros((values.size, 1), np.uint32)], axis=1)
    wide = np.ascontiguousarray(words).view(np.uint64)
    hashes = np.zeros(values.size, dtype=np.uint64)
    for column in wide.T:
        hashes ^= column
        hashes *= _MIX
        hashes ^= hashes >> _SHIFT
    return hashes


def _by_objects(pandas: Any, values: npt.NDArray[Any]) -> tuple[Codes, list[str]]:
    codes, uniques = pandas.factorize(values.astype(object), use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), [str(value) for value in uniques]
