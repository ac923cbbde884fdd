"""Merge two versions of one architecture by averaging their weights, tensor by tensor.

A "model soup": `wa * A + wb * B` for every floating-point tensor of every safetensors file,
computed in float64 and cast back to the tensor's dtype. Everything else comes from the first
version (its `modelyard.json`, its exported program, its other files).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, IncompatibleModels
from modelyard.flavors import _torch_sparse

WEIGHTS_SUFFIX = ".safetensors"


def merge_folders(
    a: Path, b: Path, out: Path, *, weights: tuple[float, float] = (0.5, 0.5)
) -> list[str]:
    """Write into `out` (absent or empty) folder `a` with its weights averaged with `b`'s.

    Returns the merged files, as paths relative to `out`. Raises `IncompatibleModels` naming the
    file and tensor when the two do not share a structure (a tensor missing on one side, or of
    another shape or dtype), and when `a` holds no safetensors file to merge.

    >>> merge_folders(Path("v4"), Path("v5"), Path("soup"), weights=(0.5, 0.5))
    ['model.safetensors']
    """
    _check_weights(weights)
    files = _weights_files(a)
    if not files:
        raise IncompatibleModels(
            f"{a} holds no .safetensors file: merge averages weights, so it needs both versions "
            "to store weights files (the torch flavor always does)"
        )
    others = _weights_files(b)
    for file in sorted(set(files) ^ set(others)):
        first, second = (a, b) if file in files else (b, a)
        raise IncompatibleModels(f"{file} is in {first} but not in {second}; cannot merge them")
    _prepare(out)
    shutil.copytree(a, out, symlinks=True, dirs_exist_ok=True)
    for relative in files:
        _merge_file(a / relative, b / relative, out / relative, weights, name=relative)
    return files


def _check_weights(weights: tuple[float, float]) -> None:
    if (
        len(weights) != 2
        or not all(isinstance(w, int | float) and math.isfinite(w) and w >= 0 for w in weights)
        or not math.isclose(sum(weights), 1.0, abs_tol=1e-9)
    ):
        raise ConfigurationError(
            f"merge weights must be two non-negative numbers that sum to 1, got {weights!r}"
        )


def _weights_files(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob(f"*{WEIGHTS_SUFFIX}")
        if path.is_file()
    )


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigurationError(f"cannot merge into {out}: it must be absent or an empty folder")
    out.mkdir(parents=True, exist_ok=True)


def _merge_file(a: Path, b: Path, out: Path, weights: tuple[float, float], *, name: str) -> None:
    safetensors = require("safetensors", extra="torch")
    with safetensors.safe_open(str(a), framework="pt") as left:
        metadata = left.metadata()
    # Pruned weights may be stored sparse (`_torch_sparse`): averaged as the dense tensors,
    # and stored sparse again only in a file that was (a transformers file stays plain).
    left, right = _torch_sparse.load(a), _torch_sparse.load(b)
    keys_a, keys_b = set(left), set(right)
    if keys_a != keys_b:
        missing = sorted(keys_a ^ keys_b)[0]
        side = b if missing in keys_a else a
        raise IncompatibleModels(f"{name}: tensor {missing!r} is missing from {side}")
    merged = {key: _average(name, key, left[key], right[key], weights) for key in sorted(keys_a)}
    sparse = bool(metadata) and _torch_sparse.LAYOUT_KEY in metadata
    _torch_sparse.save(merged, out, metadata=metadata, sparse=sparse)


def _average(name: str, key: str, a: Any, b: Any, weights: tuple[float, float]) -> Any:
    torch = require("torch", extra="torch")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise IncompatibleModels(
            f"{name}: tensor {key!r} differs in shape or dtype: {list(a.shape)} {a.dtype} in the "
            f"first version, {list(b.shape)} {b.dtype} in the second"
        )
    if not a.is_floating_point():
        # Integer and boolean tensors are counters and masks (BatchNorm's num_batches_tracked,
        # token ids), which an average would corrupt: the first version's value is kept.
        return a
    mixed = weights[0] * a.to(torch.float64) + weights[1] * b.to(torch.float64)
    return mixed.to(a.dtype)
