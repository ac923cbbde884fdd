"""The weight diff reads tensors stored sparse (pruned weights) as the dense tensors they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard.diff import tensor_changes
from modelyard.errors import UnsupportedModel
from modelyard.flavors import torch_tools
from modelyard.store import Entry, MemoryStore, read_bytes, store_directory


def entries(tmp_path: Path, *sides: dict[str, Any]) -> tuple[list[Entry], MemoryStore]:
    store, found = MemoryStore(), []
    for index, tensors in enumerate(sides):
        folder = tmp_path / str(index)
        folder.mkdir()
        torch_tools.save_weights(tensors, folder / "model.safetensors")
        found.append(store_directory(store, folder).entries[0])
    return found, store


def test_pruning_shows_as_the_dense_change(tmp_path: Path) -> None:
    weight = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    pruned = weight.masked_fill(weight.abs() < 0.84, 0.0)  # about 60% zeros
    other = torch.randn(32, 32).masked_fill(torch.rand(32, 32) < 0.9, 0.0)
    (a, b, c), store = entries(
        tmp_path, {"w": weight, "o": other}, {"w": pruned, "o": other},
        {"w": pruned, "o": other.clone()},
    )  # fmt: skip
    reads: list[str] = []

    def read(digest: str) -> bytes:
        reads.append(digest)
        return read_bytes(store, digest)

    (change,) = tensor_changes(read, "model.safetensors", a, b)
    delta = (pruned - weight).double().numpy()
    assert (change.name, change.status, change.dtype, change.shape_b) == ("w", "changed", "F32",
                                                                         [64, 64])  # fmt: skip
    assert change.fraction == np.count_nonzero(delta) / delta.size
    assert change.l2 == pytest.approx(float(np.linalg.norm(delta)))
    assert change.max_abs == float(np.abs(delta).max())
    reads.clear()
    assert tensor_changes(read, "model.safetensors", b, c) == []
    assert len(reads) == 2  # the two headers: equal parts are never read


def test_a_crafted_layout_in_a_stored_version_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    (tmp_path / "a").mkdir()
    parts = {".sparse/w/values": torch.ones(3), ".sparse/w/mask": torch.zeros(1, dtype=torch.uint8)}
    save_file(parts, str(tmp_path / "a" / "model.safetensors"),
              metadata={"modelyard.sparse": '{"format": 1, "tensors": {"w": {"dtype": "F32", '
                        '"shape": [1000000000]}}}'})  # fmt: skip
    store = MemoryStore()
    entry = store_directory(store, tmp_path / "a").entries[0]
    with pytest.raises(UnsupportedModel, match=r"its mask is U8 \[1\], not U8 \[125000000\]"):
        tensor_changes(lambda d: read_bytes(store, d), "model.safetensors", entry, entry)
