"""Sparse storage of torch weights: a float tensor that is mostly zeros is stored as its non-zero
values and a bitmask, in the same safetensors file (no pickle, no other container).

A tensor `name` stored sparse is two entries of the file instead of one:

- `.sparse/<name>/values`: 1-D, the tensor's own dtype, the elements that are not zero, in
  row-major order;
- `.sparse/<name>/mask`: 1-D uint8, `numpy.packbits` of the row-major "is not zero" flags in
  NumPy's default big bit order (element i is bit `7 - i % 8` of byte `i // 8`), so
  `ceil(numel / 8)` bytes, the padding bits of the last byte zero;

and the file's `__metadata__["modelyard.sparse"]` is a JSON string naming each such tensor with
its dtype and shape: `{"format": 1, "tensors": {"fc.weight": {"dtype": "F32", "shape": [8, 4]}}}`.
"Zero" means every bit zero, so -0.0 and NaN are values and the dense tensor comes back bit for
bit. No module path starts with "." (its segments are never empty), so the names cannot collide
with a real parameter; a state dict that has such a name anyway is stored dense.

When: the mask costs one bit an element, so with itemsize `s` a tensor gets smaller once more
than `1 / (8 s)` of it is zero (3.1% for float32). Below a saving of a quarter it is stored dense
all the same: a sparse tensor is rebuilt in memory at load, where a dense one is a zero-copy view
of the mapped file (whose pages serving workers share). So 50% pruning of float32 weights
stores 0.53x of their bytes, 80% 0.23x, 90% 0.13x.

Dedup: each part is an entry of its own, which the store cuts as its own blob, so a version that
changes one tensor shares every other tensor's values and mask (and a fine-tune that keeps the
mask shares the mask). Every byte of a file is untrusted: the layout is checked against the
entries (a dense size must be backed by that many mask bits in the file) before anything is
allocated, and a file that does not fit raises `UnsupportedModel` naming the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import UnsupportedModel

LAYOUT_KEY = "modelyard.sparse"
PREFIX = ".sparse/"
FORMAT = 1

# safetensors dtype -> (torch dtype, itemsize): the float types stored sparse.
FLOATS: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
}  # fmt: skip
# The integer type of each itemsize, to find the all-zero bit patterns.
_BITS = {8: "int64", 4: "int32", 2: "int16"}
# Store sparse only when that saves at least this share of the dense bytes (see above).
MIN_SAVING = 0.25
# Bytes the two header entries of a sparse tensor take, about: a tiny tensor stays dense.
ENTRY_BYTES = 160

Entries = Mapping[str, tuple[str, tuple[int, ...]]]
"""A file's tensors: name -> (safetensors dtype, shape)."""


@dataclass(frozen=True, slots=True)
class SparseTensor:
    """One tensor stored sparse, as the layout gives it (checked against the file's entries)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    count: int  # non-zero elements: the length of `values`

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def values(self) -> str:
        return values_name(self.name)

    @property
    def mask(self) -> str:
        return mask_name(self.name)


def values_name(name: str) -> str:
    return f"{PREFIX}{name}/values"


def mask_name(name: str) -> str:
    return f"{PREFIX}{name}/mask"


# writing ------------------------------------------------------------------------------------------


def save(
    tensors: Mapping[str, Any],
    file: Path,
    *,
    metadata: Mapping[str, str] | None = None,
    sparse: bool = True,
) -> None:
    """Write contiguous, unshared CPU `tensors` to the safetensors `file`, the tensors with
    enough zeros sparse (none with `sparse=False`)."""
    stored, layout = pack(tensors) if sparse else (dict(tensors), {})
    extra = {key: value for key, value in (metadata or {}).items() if key != LAYOUT_KEY}
    if layout:
        extra[LAYOUT_KEY] = json.dumps({"format": FORMAT, "tensors": layout}, sort_keys=True)
    save_file = require("safetensors.torch", extra="torch").save_file
    save_file(stored, str(file), metadata=extra or None)


def pack(tensors: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entries to write, and the layout of the tensors among them stored sparse."""
    if any(name.startswith(PREFIX) for name in tensors):
        return dict(tensors), {}  # a name in our namespace: the whole file stays dense
    stored: dict[str, Any] = {}
    layout: dict[str, Any] = {}
    for name, tensor in tensors.items():
        parts = _sparse_parts(tensor)
        if parts is None:
            stored[name] = tensor
            continue
        stored[values_name(name)], stored[mask_name(name)] = parts
        layout[name] = {"dtype": _dtype_name(tensor), "shape": list(tensor.shape)}
    return stored, layout


def _sparse_parts(tensor: Any) -> tuple[Any, Any] | None:
    """(values, packed mask) of `tensor`, or None when it is better stored dense."""
    dtype = _dtype_name(tensor)
    if dtype is None or tensor.numel() == 0:
        return None
    torch = require("torch", extra="torch")
    size = FLOATS[dtype][1]
    bits = tensor.detach().contiguous().reshape(-1).view(getattr(torch, _BITS[size]))
    kept = bits != 0
    count, numel = int(kept.sum()), tensor.numel()
    dense = numel * size
    if count * size + (numel + 7) // 8 + ENTRY_BYTES > dense * (1 - MIN_SAVING):
        return None
    # Selected through the integer view: a copy of the bits, never a float operation.
    values = bits[kept].view(tensor.dtype).contiguous()
    mask = torch.from_numpy(np.packbits(kept.numpy()))
    return values, mask


def _dtype_name(tensor: Any) -> str | None:
    torch_name = str(tensor.dtype).removeprefix("torch.")
    return next((key for key, (name, _) in FLOATS.items() if name == torch_name), None)


# reading ------------------------------------------------------------------------------------------


def load(file: Path) -> dict[str, Any]:
    """The dense tensors of the safetensors `file`: those stored sparse rebuilt, the others
    views of the mapped file (loading copies nothing of them)."""
    torch = require("torch", extra="torch")
    safetensors = require("safetensors", extra="torch")
    with safetensors.safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata()
        if not metadata or LAYOUT_KEY not in metadata:
            return dict(handle.get_tensors())
        slices = {key: handle.get_slice(key) for key in handle.keys()}
        entries = {key: (part.get_dtype(), tuple(part.get_shape())) for key, part in slices.items()}
        sparse = layout(metadata, entries, where=str(file))
        tensors = dict(handle.get_tensors())
    for item in sparse.values():
        values = tensors.pop(item.values).view(torch.uint8).numpy()
        mask = tensors.pop(item.mask).numpy()
        dense = torch.from_numpy(dense_bytes(item, values, mask, where=str(file)))
        tensors[item.name] = dense.view(getattr(torch, FLOATS[item.dtype][0])).reshape(item.shape)
    return tensors


def layout(metadata: Any, entries: Entries, *, where: str) -> dict[str, SparseTensor]:
    """The tensors stored sparse in a file whose `__metadata__` is `metadata` and whose
    entries are `entries`, each checked against them; empty when the file has no layout."""
    if not isinstance(metadata, Mapping) or LAYOUT_KEY not in metadata:
        return {}
    described = _described(metadata[LAYOUT_KEY], where)
    sparse = {name: _checked(name, info, entries, where) for name, info in described.items()}
    claimed = {part for item in sparse.values() for part in (item.values, item.mask)}
    for key in entries:
        if key.startswith(PREFIX) and key not in claimed:
            raise UnsupportedModel(f"{where}: entry {key!r} is not a part of any sparse tensor")
    return sparse


def dense_bytes(item: SparseTensor, values: Any, mask: Any, *, where: str) -> np.ndarray[Any, Any]:
    """The dense tensor's bytes (uint8, row-major) from the bytes of its values and mask."""
    size = FLOATS[item.dtype][1]
    values = np.frombuffer(values, dtype=np.uint8)
    mask = np.frombuffer(mask, dtype=np.uint8)
    if mask.size != (item.numel + 7) // 8 or values.size != item.count * size:
        raise UnsupportedModel(f"{where}: the parts of sparse tensor {item.name!r} changed size")
    flags = np.unpackbits(mask, count=None).view(np.bool_)
    if int(np.count_nonzero(flags)) != item.count or flags[item.numel :].any():
        raise UnsupportedModel(
            f"{where}: the mask of sparse tensor {item.name!r} marks "
            f"{int(np.count_nonzero(flags[: item.numel]))} elements (padding bits included: "
            f"{int(np.count_nonzero(flags))}) but it stores {item.count} values"
        )
    dense = np.zeros((item.numel, size), dtype=np.uint8)
    dense[flags[: item.numel]] = values.reshape(item.count, size)
    return dense.reshape(-1)


def _described(text: Any, where: str) -> dict[str, Any]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            duplicate = next(key for key in keys if keys.count(key) > 1)
            raise UnsupportedModel(f"{where}: the sparse layout names {duplicate!r} twice")
        return dict(pairs)

    try:
        found = json.loads(text, object_pairs_hook=unique) if isinstance(text, str) else None
    except (ValueError, RecursionError):  # not JSON, or nested deep enough to blow the stack
        found = None
    if not isinstance(found, dict):
        raise UnsupportedModel(f"{where}: the sparse layout ({LAYOUT_KEY}) is not a JSON object")
    if found.get("format") != FORMAT or not isinstance(found.get("tensors"), dict):
        raise UnsupportedModel(
            f"{where}: the sparse layout must be format {FORMAT} with a 'tensors' object; this "
            "file may come from a newer modelyard"
        )
    tensors: dict[str, Any] = found["tensors"]
    return tensors


def _checked(name: str, info: Any, entries: Entries, where: str) -> SparseTensor:
    """The sparse tensor `name` as the layout describes it, if the file's entries back it."""
    what = f"{where}: sparse tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape"}:
        raise UnsupportedModel(f"{what} must be described by exactly 'dtype' and 'shape'")
    dtype, shape = info["dtype"], info["shape"]
    if dtype not in FLOATS:
        raise UnsupportedModel(f"{what} has dtype {dtype!r}; only {sorted(FLOATS)} are sparse")
    if not (isinstance(shape, list) and all(_natural(n) for n in shape)):
        raise UnsupportedModel(f"{what} has shape {shape!r}, not a list of sizes")
    if name in entries:
        raise UnsupportedModel(f"{what} is also stored dense: the name is duplicated")
    values, mask = entries.get(values_name(name)), entries.get(mask_name(name))
    if values is None or mask is None:
        missing = values_name(name) if values is None else mask_name(name)
        raise UnsupportedModel(f"{what}: its part {missing!r} is missing from the file")
    numel = math.prod(shape)
    # The mask is in the file: checking its length first bounds what a crafted shape can make
    # us allocate (8 elements for each byte the file really holds).
    if mask != ("U8", ((numel + 7) // 8,)):
        raise UnsupportedModel(
            f"{what}: its mask is {mask[0]} {list(mask[1])}, not U8 [{(numel + 7) // 8}] as "
            f"the shape {shape} needs"
        )
    count = values[1][0] if len(values[1]) == 1 else -1
    if values[0] != dtype or not _natural(count) or count > numel:
        raise UnsupportedModel(
            f"{what}: its values are {values[0]} {list(values[1])}, not 1-D {dtype} of at most "
            f"{numel} elements"
        )
    return SparseTensor(name=name, dtype=dtype, shape=tuple(shape), count=count)


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
