from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch

from modelyard.diff import TensorChange, tensor_changes
from modelyard.store import Entry, MemoryStore, read_bytes, store_directory


def stored(store: MemoryStore, folder: Path) -> Entry:
    manifest = store_directory(store, folder)
    return next(entry for entry in manifest.entries if entry.path == "model.safetensors")


def changes_between(
    tmp_path: Path, a: dict[str, np.ndarray], b: dict[str, np.ndarray]
) -> tuple[list[TensorChange], list[str], MemoryStore, Entry]:
    store = MemoryStore()
    entries = []
    for side, tensors in (("a", a), ("b", b)):
        (tmp_path / side).mkdir()
        save_file(tensors, str(tmp_path / side / "model.safetensors"))
        entries.append(stored(store, tmp_path / side))
    reads: list[str] = []

    def read(digest: str) -> bytes:
        reads.append(digest)
        return read_bytes(store, digest)

    changes = tensor_changes(read, "model.safetensors", entries[0], entries[1])
    return changes, reads, store, entries[0]


def test_changed_tensors_get_their_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32)).astype(np.float32)
    tuned = weight.copy()
    tuned[:8] += rng.standard_normal((8, 32)).astype(np.float32)
    counts = np.arange(10, dtype=np.int64)
    same = rng.standard_normal(100)
    a = {"weight": weight, "counts": counts, "same": same, "old": np.zeros(3, np.float32)}
    b = {"weight": tuned, "counts": counts + (counts % 2), "same": same,
         "new": np.ones((2, 2), np.float16)}  # fmt: skip
    changes, reads, _, entry_a = changes_between(tmp_path, a, b)
    by_name = {change.name: change for change in changes}
    assert sorted(by_name) == ["counts", "new", "old", "weight"]
    delta = tuned.astype(np.float64) - weight.astype(np.float64)
    change = by_name["weight"]
    assert (change.status, change.dtype, change.shape_a, change.shape_b) == (
        "changed", "F32", [64, 32], [64, 32],
    )  # fmt: skip
    assert change.l2 == np.linalg.norm(delta.ravel())
    assert change.max_abs == np.abs(delta).max()
    assert change.fraction == np.count_nonzero(delta) / delta.size
    assert (by_name["counts"].l2, by_name["counts"].max_abs, by_name["counts"].fraction) == (
        np.sqrt(5), 1.0, 0.5,
    )  # fmt: skip
    assert by_name["new"] == TensorChange(
        file="model.safetensors", name="new", status="added", dtype="F16", shape_b=[2, 2]
    )
    assert by_name["old"] == TensorChange(
        file="model.safetensors", name="old", status="removed", dtype="F32", shape_a=[3]
    )
    unchanged = next(chunk.digest for chunk in entry_a.chunks if chunk.name == "same")
    assert unchanged not in reads  # equal digests are never read


def test_shape_and_dtype_changes(tmp_path: Path) -> None:
    a = {"w": np.zeros((2, 3), np.float32), "v": np.zeros(4, np.float32)}
    b = {"w": np.zeros((3, 3), np.float32), "v": np.zeros(4, np.float64)}
    changes, _, _, _ = changes_between(tmp_path, a, b)
    assert [(c.name, c.status, c.dtype, c.shape_a, c.shape_b) for c in changes] == [
        ("v", "shape-changed", "F32->F64", [4], [4]),
        ("w", "shape-changed", "F32", [2, 3], [3, 3]),
    ]
    assert all(c.l2 is None for c in changes)


def test_identical_files_have_no_changes(tmp_path: Path) -> None:
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    changes, reads, _, _ = changes_between(tmp_path, tensors, dict(tensors))
    assert changes == []
    assert len(reads) == 2  # the two headers only


def test_bfloat16_and_bool(tmp_path: Path) -> None:
    rng = torch.Generator().manual_seed(1)
    weight = torch.randn(40, 10, generator=rng).to(torch.bfloat16)
    tuned = weight.clone()
    tuned[5:10] *= 2
    mask = torch.zeros(8, dtype=torch.bool)
    store = MemoryStore()
    entries = []
    for side, tensors in (("a", {"w": weight, "m": mask}), ("b", {"w": tuned, "m": ~mask})):
        (tmp_path / side).mkdir()
        save_torch(tensors, str(tmp_path / side / "model.safetensors"))
        entries.append(stored(store, tmp_path / side))
    changes = tensor_changes(lambda d: read_bytes(store, d), "model.safetensors", *entries)
    by_name = {change.name: change for change in changes}
    delta = tuned.double().numpy() - weight.double().numpy()
    assert by_name["w"].dtype == "BF16"
    assert by_name["w"].l2 == np.linalg.norm(delta.ravel())
    assert by_name["w"].max_abs == np.abs(delta).max()
    assert by_name["w"].fraction == np.count_nonzero(delta) / delta.size
    assert (by_name["m"].l2, by_name["m"].max_abs, by_name["m"].fraction) == (np.sqrt(8), 1.0, 1.0)


def test_large_tensors_are_summed_in_slices(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    big = rng.standard_normal(3 << 20).astype(np.float32)  # three slices
    tuned = big.copy()
    tuned[::7] += 1
    changes, _, _, _ = changes_between(tmp_path, {"big": big}, {"big": tuned})
    delta = tuned.astype(np.float64) - big.astype(np.float64)
    assert np.isclose(changes[0].l2, np.linalg.norm(delta), rtol=1e-12)
    assert changes[0].max_abs == np.abs(delta).max()
    assert changes[0].fraction == np.count_nonzero(delta) / delta.size


def test_a_file_not_cut_as_safetensors_has_no_tensor_changes(tmp_path: Path) -> None:
    store = MemoryStore()
    entries = []
    for side, data in (("a", b"one"), ("b", b"two")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "model.safetensors").write_bytes(data)
        entries.append(stored(store, tmp_path / side))
    assert tensor_changes(lambda d: read_bytes(store, d), "model.safetensors", *entries) == []


def raw_safetensors(header: dict[str, object], data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def test_a_tensor_without_a_blob_of_its_own_is_read_from_its_range(tmp_path: Path) -> None:
    # Two names over the same bytes: the store names the blob after the first one only.
    store = MemoryStore()
    entries = []
    for side, values in (("a", [1.0, 2.0]), ("b", [1.0, 5.0])):
        spec = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        (tmp_path / side).mkdir()
        data = np.array(values, np.float32).tobytes()
        (tmp_path / side / "model.safetensors").write_bytes(
            raw_safetensors({"first": spec, "second": spec}, data)
        )
        entries.append(stored(store, tmp_path / side))
    changes = tensor_changes(lambda d: read_bytes(store, d), "model.safetensors", *entries)
    assert [(c.name, c.l2, c.max_abs, c.fraction) for c in changes] == [
        ("first", 3.0, 3.0, 0.5),
        ("second", 3.0, 3.0, 0.5),
    ]
