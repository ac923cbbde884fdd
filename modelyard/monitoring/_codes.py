"""Category codes of NumPy text and boolean arrays, without a Python object per row.

pandas factorizes a fixed-width text array (`<U6`) by first making a Python string of every
row, which costs more than all the numeric columns of a table together. Here each row's bytes
are hashed as machine words instead; the codes are then checked against the rows themselves,
so a hash collision (never seen, but possible) costs time, never a wrong count.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.monitoring._sketch import scratch

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
    labels = values[_openers(codes)]
    if not np.array_equal(labels[codes], values):  # a collision: count the slow, sure way
        return _by_objects(pandas, values)
    return codes, [str(label) for label in labels]


def shared_text_codes(objects: npt.NDArray[np.object_]) -> tuple[Codes, list[str]] | None:
    """Codes of an object array of strings (nulls -1) by the identity of each row's object, or
    None when it does not pay: a value that is not a string or null, or too many objects.

    Rows of a text column usually share a few string objects (pandas' CSV reader and pyarrow's
    `to_pandas` deduplicate them; so does picking from a list of levels), so hashing the
    pointers is several times faster than hashing the strings. Two objects of equal text get
    equal labels, which the counts then add up."""
    if objects.size < _SHARED_MIN_ROWS:
        return None
    pandas = require("pandas", extra="monitor")
    objects = np.ascontiguousarray(objects)
    # The row pointers, read in place (NumPy refuses to view objects as integers); `objects`
    # holds every object alive for as long as they are used here.
    address = objects.ctypes.data
    pointers = np.ctypeslib.as_array((ctypes.c_size_t * objects.size).from_address(address))
    codes, distinct = pandas.factorize(pointers)
    del pointers
    if distinct.size > max(_SHARED_MAX_OBJECTS, objects.size // 8):
        return None
    codes = np.asarray(codes, dtype=np.intp)
    firsts = objects[_openers(codes)]
    null = np.asarray(pandas.isna(firsts), dtype=bool)
    if not all(type(value) is str for value in firsts[~null]):
        return None  # 1 and 1.0 are one category to pandas, two objects here
    if null.any():
        codes = np.where(null, -1, np.cumsum(~null) - 1)[codes]
    return codes, [str(value) for value in firsts[~null]]


def _openers(codes: Codes) -> Codes:
    """The row where each code first appears, for codes numbered as they first appear: a row
    opens a code when it exceeds every code before it."""
    seen = np.maximum.accumulate(codes, out=scratch("codes-seen", codes.size, np.intp))
    return np.flatnonzero(np.concatenate([[True], codes[1:] > seen[:-1]]))


#: Below this many rows hashing the strings costs too little to avoid.
_SHARED_MIN_ROWS = 4096
#: More distinct objects than this (or an eighth of the rows) means few are shared.
_SHARED_MAX_OBJECTS = 4096


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
