"""Which tensors of a safetensors file changed between two versions, and by how much.

Works on manifests: the store cut the file into a `__header__` blob and one blob per tensor, so
equal digests mean equal tensors and only the changed ones are read, one pair at a time. The
maths is done in float64 in bounded slices, so memory stays near the size of the two tensors.
A tensor stored sparse (pruned weights: its values and mask as two entries, see the torch
flavor) is compared as the dense tensor it stands for, under its own name.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.flavors.torch_tools import SparseTensor, sparse_dense_bytes, sparse_layout
from modelyard.registry import TensorChange
from modelyard.store import Entry

HEADER = "__header__"

SLICE = 1 << 20
"""Elements converted to float64 at a time."""

_DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to float32 by `_floats`
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

Read = Callable[[str], bytes]
Statistics = tuple[float | None, float | None, float | None]
"""L2 norm of b - a, its largest absolute value, and the share of elements that differ."""


@dataclass(frozen=True, slots=True)
class _Tensor:
    """One tensor as a header describes it, and where its bytes are in the file's blobs."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    digest: str | None
    # A tensor stored sparse: its layout, and its values and mask entries.
    sparse: tuple[SparseTensor, _Tensor, _Tensor] | None = None


def tensor_changes(read: Read, path: str, a: Entry, b: Entry) -> list[TensorChange]:
    """How the tensors of the safetensors file `path` differ from entry `a` to entry `b`.

    `read(digest)` returns a blob's bytes. Tensors are `added`, `removed`, `shape-changed` (shape
    or dtype) or `changed`, with the L2 norm and largest absolute value of b - a and the share of
    elements that differ. An entry not cut as a safetensors file gives no changes.
    """
    tensors_a, tensors_b = _tensors(read, a), _tensors(read, b)
    if tensors_a is None or tensors_b is None:
        return []
    changes: list[TensorChange] = []
    for name in sorted(tensors_a.keys() | tensors_b.keys()):
        left, right = tensors_a.get(name), tensors_b.get(name)
        change = _change(read, path, name, (a, left), (b, right))
        if change is not None:
            changes.append(change)
    return changes


def _change(
    read: Read,
    path: str,
    name: str,
    a: tuple[Entry, _Tensor | None],
    b: tuple[Entry, _Tensor | None],
) -> TensorChange | None:
    (entry_a, left), (entry_b, right) = a, b
    if left is None or right is None:
        return _presence(path, name, left, right)
    change = TensorChange(
        file=path, name=name, status="changed", dtype=left.dtype,
        shape_a=list(left.shape), shape_b=list(right.shape),
    )  # fmt: skip
    if left.dtype != right.dtype or left.shape != right.shape:
        dtype = left.dtype if left.dtype == right.dtype else f"{left.dtype}->{right.dtype}"
        return change.model_copy(update={"status": "shape-changed", "dtype": dtype})
    if left.digest is not None and left.digest == right.digest:
        return None  # equal digests, equal tensors: nothing to read
    data_a, data_b = _bytes(read, entry_a, left), _bytes(read, entry_b, right)
    if data_a == data_b:
        return None
    l2, max_abs, fraction = _statistics(left.dtype, data_a, data_b)
    return change.model_copy(update={"l2": l2, "max_abs": max_abs, "fraction": fraction})


def _presence(
    path: str, name: str, left: _Tensor | None, right: _Tensor | None
) -> TensorChange | None:
    """A tensor on one side only."""
    if right is not None:
        return TensorChange(file=path, name=name, status="added", dtype=right.dtype,
                            shape_b=list(right.shape))  # fmt: skip
    if left is not None:
        return TensorChange(file=path, name=name, status="removed", dtype=left.dtype,
                            shape_a=list(left.shape))  # fmt: skip
    return None


def _tensors(read: Read, entry: Entry) -> dict[str, _Tensor] | None:
    """Every tensor in the entry's header, or None when the entry has no `__header__` blob."""
    head = next((chunk for chunk in entry.chunks if chunk.name == HEADER), None)
    if head is None:
        return None
    raw = read(head.digest)
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    start = 8 + length
    digests = {chunk.name: chunk.digest for chunk in entry.chunks if chunk.name}
    tensors: dict[str, _Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = _Tensor(
            dtype=info["dtype"],
            shape=tuple(info["shape"]),
            begin=start + begin,
            end=start + end,
            digest=digests.get(name),
        )
    return _dense(header, tensors, path=entry.path)


def _dense(header: dict[str, Any], tensors: dict[str, _Tensor], *, path: str) -> dict[str, _Tensor]:
    """`tensors` with each sparse tensor's two parts replaced by the dense tensor they hold."""
    entries = {name: (t.dtype, t.shape) for name, t in tensors.items()}
    for item in sparse_layout(header.get("__metadata__"), entries, where=path).values():
        values, mask = tensors.pop(item.values), tensors.pop(item.mask)
        both = None if values.digest is None or mask.digest is None else values.digest + mask.digest
        tensors[item.name] = _Tensor(dtype=item.dtype, shape=item.shape, begin=0, end=0,
                                     digest=both, sparse=(item, values, mask))  # fmt: skip
    return tensors


def _bytes(read: Read, entry: Entry, tensor: _Tensor) -> bytes:
    """The tensor's bytes: its own blob, or the pieces of the blobs that cover its range (a
    tensor sharing its bytes with another has no blob of its own)."""
    if tensor.sparse is not None:
        item, values, mask = tensor.sparse
        dense = sparse_dense_bytes(item, _bytes(read, entry, values), _bytes(read, entry, mask),
                                   where=f"tensor {item.name!r}")  # fmt: skip
        return dense.tobytes()
    if tensor.digest is not None:
        return read(tensor.digest)
    return b"".join(_range(read, entry, tensor.begin, tensor.end))


def _range(read: Read, entry: Entry, begin: int, end: int) -> Iterator[bytes]:
    offset = 0
    for chunk in entry.chunks:
        low, high = max(begin, offset), min(end, offset + chunk.size)
        if low < high:
            yield read(chunk.digest)[low - offset : high - offset]
        offset += chunk.size


def _statistics(dtype: str, a: bytes, b: bytes) -> Statistics:
    """L2 norm and largest absolute value of b - a, and the share of elements that differ."""
    if dtype not in _DTYPES:  # FP8 and other exotic types: report the change, without numbers
        return None, None, None
    left = np.frombuffer(a, dtype=_DTYPES[dtype])
    right = np.frombuffer(b, dtype=_DTYPES[dtype])
    squares, largest, differing = 0.0, 0.0, 0
    for start in range(0, left.size, SLICE):
        x = _floats(dtype, left[start : start + SLICE])
        y = _floats(dtype, right[start : start + SLICE])
        delta = np.abs(y - x)
        squares += float(np.dot(delta, delta))
        largest = max(largest, float(delta.max(initial=0.0)))
        # Both NaN counts as equal: the value did not change.
        differing += int(np.count_nonzero((x != y) & ~(np.isnan(x) & np.isnan(y))))
    return float(np.sqrt(squares)), largest, differing / left.size if left.size else 0.0


def _floats(dtype: str, values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shift it into place and reinterpret.
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float64)
