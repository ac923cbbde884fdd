"""Pruned torch weights stored by their zeros: bit-exact round trips, sizes, the dense format
left alone, dedup in the store, merge, and crafted files refused with a typed error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from modelyard.errors import UnsupportedModel
from modelyard.flavors import load_model, merge_folders, save_model, torch_tools
from modelyard.flavors._torch_sparse import LAYOUT_KEY, mask_name, values_name
from modelyard.store import MemoryStore, store_directory
from tests.flavors.conftest import OPERATOR
from tests.optimize.models import DigitsMLP

WEIGHTS = torch_tools.WEIGHTS_FILE


def pruned(shape: tuple[int, ...], sparsity: float, *, seed: int = 0, dtype: Any = None) -> Any:
    """A random tensor with the `sparsity` share of its elements (by magnitude) set to zero."""
    generator = torch.Generator().manual_seed(seed)
    tensor = torch.randn(shape, generator=generator)
    cut = tensor.abs().flatten().kthvalue(max(1, int(sparsity * tensor.numel()))).values
    return tensor.masked_fill(tensor.abs() <= cut, 0).to(dtype or torch.float32)


def keys(file: Path) -> list[str]:
    with safe_open(str(file), framework="pt") as handle:
        return sorted(handle.keys())


def bits(tensor: Any) -> bytes:
    return bytes(tensor.contiguous().view(torch.uint8).numpy())


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    weight = pruned((64, 48), 0.8)
    weight[0, :4] = torch.tensor([-0.0, float("nan"), float("inf"), -float("inf")])
    tensors = {
        "fc.weight": weight, "fc.bias": torch.randn(64), "steps": torch.arange(5),
        "half": pruned((40, 40), 0.9, dtype=torch.float16),
        "brain": pruned((33, 7), 0.9, dtype=torch.bfloat16),
        "double": pruned((100,), 0.7, dtype=torch.float64),
        "zeros": torch.zeros(2048), "empty": torch.zeros(0, 3),
    }  # fmt: skip
    torch_tools.save_weights(tensors, tmp_path / WEIGHTS)
    stored = keys(tmp_path / WEIGHTS)
    for name in ("fc.weight", "half", "brain", "double", "zeros"):
        assert name not in stored and {values_name(name), mask_name(name)} <= set(stored)
    back = torch_tools.load_weights(tmp_path / WEIGHTS, tied={"alias": "fc.weight"})
    assert sorted(back) == sorted([*tensors, "alias"])
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert bits(back[name]) == bits(tensor), name
    assert back["alias"] is back["fc.weight"]
    assert str(back["fc.weight"][0, 0].item()) == "-0.0"  # -0.0 is a value, not a zero


def test_mask_is_numpy_packbits_in_big_bit_order(tmp_path: Path) -> None:
    tensor = torch.zeros(2048)
    tensor[[0, 9, 2047]] = torch.tensor([1.0, 2.0, 3.0])
    torch_tools.save_weights({"w": tensor}, tmp_path / WEIGHTS)
    with safe_open(str(tmp_path / WEIGHTS), framework="np") as handle:
        mask, values = handle.get_tensor(mask_name("w")), handle.get_tensor(values_name("w"))
        layout = json.loads(handle.metadata()[LAYOUT_KEY])
    assert layout == {"format": 1, "tensors": {"w": {"dtype": "F32", "shape": [2048]}}}
    assert mask.dtype == np.uint8 and mask.shape == (256,)
    assert (mask[0], mask[1], mask[255]) == (0b1000_0000, 0b0100_0000, 0b0000_0001)
    assert values.tolist() == [1.0, 2.0, 3.0]


def test_a_dense_model_is_written_as_before(tmp_path: Path) -> None:
    tensors = {"a.weight": torch.randn(64, 64), "a.bias": torch.zeros(8), "n": torch.arange(3)}
    tensors["a.weight"][0, :10] = 0  # a few zeros are not worth a mask
    torch_tools.save_weights(tensors, tmp_path / "ours.safetensors")
    save_file(tensors, str(tmp_path / "plain.safetensors"))
    ours, plain = tmp_path / "ours.safetensors", tmp_path / "plain.safetensors"
    assert ours.read_bytes() == plain.read_bytes()


def test_a_name_in_the_reserved_namespace_keeps_the_file_dense(tmp_path: Path) -> None:
    tensors = {".sparse/x/values": torch.zeros(4096), "w": torch.zeros(4096)}
    torch_tools.save_weights(tensors, tmp_path / WEIGHTS)
    assert keys(tmp_path / WEIGHTS) == sorted(tensors)
    assert sorted(torch_tools.load_weights(tmp_path / WEIGHTS, tied={})) == sorted(tensors)


@pytest.mark.parametrize(
    ("sparsity", "low", "high"),
    [(0.2, 0.99, 1.01), (0.5, 0.52, 0.55), (0.8, 0.22, 0.25), (0.9, 0.12, 0.15)],
)
def test_stored_size_follows_the_zeros(
    tmp_path: Path, sparsity: float, low: float, high: float
) -> None:
    """float32: values (1 - s) * 4 bytes and 1/8 byte of mask an element; below a saving of a
    quarter (20% zeros) the tensor stays dense."""
    tensors = {"w": pruned((256, 256), sparsity)}
    save_file(tensors, str(tmp_path / "dense.safetensors"))
    torch_tools.save_weights(tensors, tmp_path / WEIGHTS)
    ratio = (tmp_path / WEIGHTS).stat().st_size / (tmp_path / "dense.safetensors").stat().st_size
    assert low <= ratio <= high


def test_a_pruned_module_round_trips(tmp_path: Path) -> None:
    """In this process (tests/optimize/test_prune_sparse.py loads one in a fresh process)."""
    module = DigitsMLP(hidden=256).eval()
    with torch.no_grad():
        for layer in module.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.copy_(pruned(tuple(layer.weight.shape), 0.8))
    x = np.random.default_rng(0).random((16, 64), dtype=np.float32)
    for export in (False, True):  # rebuilt from its class, and an exported program
        folder = tmp_path / f"export-{export}"
        save_model(module, folder, input_example=x[:2], export=export, init={"hidden": 256})
        assert values_name("layers.0.weight") in keys(folder / WEIGHTS)
        with torch.inference_mode():
            expected = module(torch.from_numpy(x)).numpy()
        assert np.array_equal(load_model(folder, trust=OPERATOR).predict(x), expected)


def test_each_part_is_its_own_blob_in_the_store(tmp_path: Path) -> None:
    """A version that changes one tensor shares every other tensor's values and mask."""
    first = {f"layer{i}.weight": pruned((128, 128), 0.8, seed=i) for i in range(3)}
    second = {**first, "layer1.weight": pruned((128, 128), 0.8, seed=99)}
    store, digests = MemoryStore(), []
    for side, tensors in (("a", first), ("b", second)):
        (tmp_path / side).mkdir()
        torch_tools.save_weights(tensors, tmp_path / side / WEIGHTS)
        entry = store_directory(store, tmp_path / side).entries[0]
        digests.append({chunk.name: chunk.digest for chunk in entry.chunks})
    a, b = digests
    changed = {name for name in a if a[name] != b.get(name)}
    # (the header changes too when the count of values does: their offsets move)
    assert changed - {"__header__"} == {values_name("layer1.weight"), mask_name("layer1.weight")}
    assert values_name("layer0.weight") in a and mask_name("layer2.weight") in a


def test_merge_averages_the_dense_tensors(tmp_path: Path) -> None:
    sides = {"a": pruned((64, 64), 0.8, seed=1), "b": pruned((64, 64), 0.8, seed=1) * 3}
    for side, weight in sides.items():
        (tmp_path / side).mkdir()
        torch_tools.save_weights({"w": weight, "b": torch.ones(3)}, tmp_path / side / WEIGHTS)
    merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "soup")
    merged = torch_tools.load_weights(tmp_path / "soup" / WEIGHTS, tied={})
    assert torch.equal(merged["w"], sides["a"] * 2) and torch.equal(merged["b"], torch.ones(3))
    assert values_name("w") in keys(tmp_path / "soup" / WEIGHTS)  # the same zeros: still sparse


# crafted files ------------------------------------------------------------------------------------


def crafted(tmp_path: Path, layout: Any, tensors: dict[str, Any] | None = None) -> Path:
    """A weights file with the parts of a 4 x 4 float32 `w` (3 values) and `layout` as its
    sparse layout (a string as it is, anything else as JSON)."""
    if tensors is None:
        mask = np.packbits(np.array([1, 0, 0, 1] + [0] * 11 + [1], dtype=bool))
        tensors = {values_name("w"): torch.ones(3), mask_name("w"): torch.from_numpy(mask)}
    text = layout if isinstance(layout, str) else json.dumps(layout)
    file = tmp_path / WEIGHTS
    save_file(tensors, str(file), metadata={LAYOUT_KEY: text})
    return file


def layout_of(**described: Any) -> dict[str, Any]:
    return {"format": 1, "tensors": {"w": {"dtype": "F32", "shape": [4, 4], **described}}}


def test_the_crafted_file_helper_makes_a_valid_file(tmp_path: Path) -> None:
    loaded = torch_tools.load_weights(crafted(tmp_path, layout_of()), tied={})
    assert loaded["w"].flatten().tolist() == [1, 0, 0, 1] + [0] * 11 + [1]


def mask(length: int, ones: int = 0) -> Any:
    flags = np.zeros(length * 8, dtype=bool)
    flags[:ones] = True
    return torch.from_numpy(np.packbits(flags))


@pytest.mark.parametrize(
    ("layout", "tensors", "problem"),
    [
        ("{not json", None, "is not a JSON object"),
        ("[1, 2]", None, "is not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, None, "is not a JSON object"),
        ({"format": 2, "tensors": {}}, None, "must be format 1"),
        ({"format": 1, "tensors": []}, None, "must be format 1 with a 'tensors' object"),
        ('{"format": 1, "tensors": {"w": {"dtype": "F32", "shape": [4, 4]}, '
         '"w": {"dtype": "F32", "shape": [4, 4]}}}', None, "names 'w' twice"),
        (layout_of(dtype="I32"), None, r"has dtype 'I32'; only \['BF16', 'F16', 'F32', 'F64'\]"),
        (layout_of(shape=[4, -4]), None, "has shape"),
        (layout_of(shape=[True, 16]), None, "has shape"),
        (layout_of(shape="16"), None, "has shape"),
        (layout_of(offset=3), None, "exactly 'dtype' and 'shape'"),
        (layout_of(), {values_name("w"): torch.ones(3)}, r"part '\.sparse/w/mask' is missing"),
        (layout_of(), {mask_name("w"): mask(2)}, r"part '\.sparse/w/values' is missing"),
        (layout_of(shape=[4, 5]), None, r"its mask is U8 \[2\], not U8 \[3\]"),
        (layout_of(), {values_name("w"): torch.ones(3), mask_name("w"): mask(2).float()},
         r"its mask is F32 \[2\]"),  # fmt: skip
        (layout_of(), {values_name("w"): torch.ones(3, dtype=torch.float64),
                       mask_name("w"): mask(2)}, r"its values are F64 \[3\], not 1-D F32"),
        (layout_of(), {values_name("w"): torch.ones(17), mask_name("w"): mask(2)},
         "not 1-D F32 of at most 16 elements"),  # fmt: skip
        (layout_of(), {values_name("w"): torch.ones(3), mask_name("w"): mask(2, ones=5)},
         "marks 5 elements .* but it stores 3 values"),  # fmt: skip
        (layout_of(shape=[15]), {values_name("w"): torch.ones(3), mask_name("w"): mask(2, 16)},
         r"marks 15 elements \(padding bits included: 16\) but it stores 3 values"),
        (layout_of(), {values_name("w"): torch.ones(3), mask_name("w"): mask(2, 3),
                       "w": torch.ones(4, 4)}, "is also stored dense: the name is duplicated"),
        (layout_of(), {values_name("w"): torch.ones(3), mask_name("w"): mask(2, 3),
                       values_name("v"): torch.ones(2)}, "not a part of any sparse tensor"),
    ],
)  # fmt: skip
def test_crafted_layouts_are_refused_by_name(
    tmp_path: Path, layout: Any, tensors: dict[str, Any] | None, problem: str
) -> None:
    file = crafted(tmp_path, layout, tensors)
    with pytest.raises(UnsupportedModel, match=problem):
        torch_tools.load_weights(file, tied={})


def test_a_huge_shape_needs_its_mask_bytes_in_the_file(tmp_path: Path) -> None:
    """A memory bomb: a shape of 2**40 elements (4 TiB dense) over a 2-byte mask is refused
    before anything is allocated."""
    file = crafted(tmp_path, layout_of(shape=[2**20, 2**20]))
    with pytest.raises(UnsupportedModel, match=r"its mask is U8 \[2\], not U8 \[137438953472\]"):
        torch_tools.load_weights(file, tied={})


def test_a_crafted_version_fails_to_load_with_a_typed_error(tmp_path: Path) -> None:
    module = torch.nn.Linear(64, 64)
    with torch.no_grad():
        module.weight.copy_(pruned((64, 64), 0.8))
    save_model(
        module, tmp_path / "model", export=False, init={"in_features": 64, "out_features": 64}
    )
    file = tmp_path / "model" / WEIGHTS
    with safe_open(str(file), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    tensors[values_name("weight")] = tensors[values_name("weight")][:-1]  # a value dropped
    save_file(tensors, str(file), metadata=metadata)
    with pytest.raises(UnsupportedModel, match=r"marks \d+ elements .* but it stores \d+ values"):
        load_model(tmp_path / "model", trust=OPERATOR)
