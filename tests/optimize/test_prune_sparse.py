"""Unstructured pruning stores the pruned weights by their zeros: the goal of issue 23 (80%
stores at most 0.35x of the dense bytes) and the same answers in a fresh process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open

from modelyard import Yard
from modelyard.flavors.torch_tools import WEIGHTS_FILE
from modelyard.optimize._measure import model_bytes
from tests.flavors.conftest import predict_in_fresh_process


@pytest.fixture
def mlp(yard: Yard, digits_mlp: Any, digits: Any) -> str:
    x, _, _, _ = digits
    version = yard.log_model(digits_mlp, name="mlp", input_example=x[:5],
                             options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    return version.ref


def stored_names(yard: Yard, ref: str) -> list[str]:
    file = yard.model_folder(yard.get_version(ref)) / WEIGHTS_FILE
    with safe_open(str(file), framework="pt") as handle:
        return sorted(handle.keys())


def test_pruned_weights_are_stored_by_their_zeros(
    yard: Yard, mlp: str, digits: Any, tmp_path: Path
) -> None:
    _, _, x, y = digits
    ratios, refs = {}, {}
    for sparsity in (0.5, 0.8, 0.9):
        result = yard.optimize.prune(mlp, eval_data=(x, y), sparsity=sparsity, force=True,
                                     max_slowdown=None)  # fmt: skip
        refs[sparsity] = result.version.ref
        # the bytes the report measured: the model folder, as `model_bytes` counts it
        folder = yard.model_folder(result.version)
        assert result.report.after.size_bytes == model_bytes(folder)
        ratios[sparsity] = result.report.after.size_bytes / result.report.before.size_bytes
    assert ratios[0.8] <= 0.35  # the goal
    assert ratios[0.9] < ratios[0.8] < ratios[0.5] < 0.6
    assert ".sparse/layers.0.weight/values" in stored_names(yard, refs[0.8])
    assert "layers.0.bias" in stored_names(yard, refs[0.8])  # biases keep no zeros: dense
    # the same answers, bit for bit, in a process that has nothing of this one's
    for ref in refs.values():
        folder = yard.model_folder(yard.get_version(ref))
        fresh = predict_in_fresh_process(folder, x[:64], tmp_path)
        here = yard.load_model(ref).predict(x[:64])
        assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


def test_the_weight_diff_shows_the_dense_tensors(yard: Yard, mlp: str, digits: Any) -> None:
    _, _, x, y = digits
    child = yard.optimize.prune(mlp, eval_data=(x, y), sparsity=0.8, force=True,
                                max_slowdown=None).version.ref  # fmt: skip
    changes = {change.name: change for change in yard.diff(mlp, child).tensors}
    assert not any(name.startswith(".sparse/") for name in changes)
    weight = changes["layers.0.weight"]
    assert (weight.status, weight.dtype, weight.shape_b) == ("changed", "F32", [64, 64])
    assert weight.fraction == pytest.approx(0.8, abs=0.01)
    assert "layers.0.bias" not in changes  # unchanged
    parent = yard.load_model(mlp).native.layers[0].weight.detach().numpy().astype(np.float64)
    assert weight.max_abs == pytest.approx(float(np.sort(np.abs(parent).ravel())[int(0.8 * 4096)]),
                                           rel=0.05)  # fmt: skip


def test_an_exported_parent_pruned_in_place_is_sparse(
    yard: Yard, digits_mlp: Any, digits: Any
) -> None:
    _, _, x, y = digits
    yard.log_model(digits_mlp, name="exported", input_example=x[:5])
    result = yard.optimize.prune("exported:1", eval_data=(x, y), sparsity=0.8, force=True,
                                 max_slowdown=None)  # fmt: skip
    assert ".sparse/layers.0.weight/mask" in stored_names(yard, result.version.ref)
    assert result.report.after.size_bytes < 0.6 * result.report.before.size_bytes
    pruned = yard.load_model(result.version.ref).predict(x[:8])
    assert pruned.shape == (8, 10)
