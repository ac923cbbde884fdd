from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modelyard.errors import ConfigurationError, IncompatibleModels
from modelyard.flavors import _torch, load_model, save_model
from modelyard.flavors._merge import merge_folders
from tests.flavors.torch_models import MLP, seeded

_ = _torch  # registers the flavor


def saved(model: torch.nn.Module, folder: Path) -> Path:
    save_model(model, folder, input_example=np.zeros((2, 4), np.float32), export=True)
    return folder


def test_average_of_two_models(tmp_path: Path) -> None:
    first, second = seeded(MLP(), seed=1), seeded(MLP(), seed=2)
    second.norm.num_batches_tracked.fill_(7)
    a, b = saved(first, tmp_path / "a"), saved(second, tmp_path / "b")
    assert merge_folders(a, b, tmp_path / "soup") == ["model.safetensors"]
    merged = load_file(tmp_path / "soup" / "model.safetensors")
    state_a, state_b = first.state_dict(), second.state_dict()
    for key, tensor in merged.items():
        if key.endswith("num_batches_tracked"):
            assert torch.equal(tensor, state_a[key])  # counters come from the first model
            continue
        manual = (0.5 * state_a[key].double() + 0.5 * state_b[key].double()).float()
        assert torch.equal(tensor, manual), key
    # The merged folder is a model: a's program filled with the averaged weights.
    soup = load_model(tmp_path / "soup")
    batch = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    expected = MLP().eval()
    expected.load_state_dict(merged)
    np.testing.assert_array_equal(
        soup.predict(batch), expected(torch.from_numpy(batch)).detach().numpy()
    )


def test_uneven_weights_and_half_precision(tmp_path: Path) -> None:
    rng = torch.Generator().manual_seed(3)
    tensors_a = {"w": torch.randn(6, 5, generator=rng), "h": torch.randn(9, generator=rng).half(),
                 "bf": torch.randn(4, generator=rng).bfloat16()}  # fmt: skip
    tensors_b = {key: value * 3 + 1 for key, value in tensors_a.items()}
    for side, tensors in (("a", tensors_a), ("b", tensors_b)):
        (tmp_path / side / "sub").mkdir(parents=True)
        save_file(tensors, tmp_path / side / "sub" / "part.safetensors")
    (tmp_path / "a" / "config.json").write_text("{}")
    merged_files = merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out",
                                 weights=(0.25, 0.75))  # fmt: skip
    assert merged_files == ["sub/part.safetensors"]
    assert (tmp_path / "out" / "config.json").read_text() == "{}"
    merged = load_file(tmp_path / "out" / "sub" / "part.safetensors")
    for key, tensor in merged.items():
        manual = 0.25 * tensors_a[key].double() + 0.75 * tensors_b[key].double()
        assert tensor.dtype == tensors_a[key].dtype
        assert torch.equal(tensor, manual.to(tensor.dtype)), key


def test_incompatible_shapes_name_the_tensor(tmp_path: Path) -> None:
    a = saved(seeded(MLP()), tmp_path / "a")
    b = saved(seeded(MLP(hidden=16)), tmp_path / "b")
    with pytest.raises(IncompatibleModels, match=r"'first\.bias'.*\[8\].*\[16\]") as refused:
        merge_folders(a, b, tmp_path / "out")
    assert "model.safetensors" in str(refused.value)


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    for side, tensors in (("a", {"w": torch.ones(2), "extra": torch.ones(1)}),
                          ("b", {"w": torch.ones(2)})):  # fmt: skip
        (tmp_path / side).mkdir()
        save_file(tensors, tmp_path / side / "model.safetensors")
    with pytest.raises(IncompatibleModels, match="tensor 'extra' is missing from .*b"):
        merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out")


def test_merge_needs_weights_files(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "model.skops").write_bytes(b"x")
    with pytest.raises(IncompatibleModels, match="needs both versions to store weights files"):
        merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    save_file({"w": torch.ones(1)}, tmp_path / "b" / "model.safetensors")
    save_file({"w": torch.ones(1)}, tmp_path / "a" / "other.safetensors")
    with pytest.raises(IncompatibleModels, match="model.safetensors is in .*b but not in"):
        merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("weights", [(0.6, 0.6), (-0.5, 1.5), (1.0, float("nan")), (1.0,)])
def test_weights_must_be_a_convex_pair(tmp_path: Path, weights: tuple[float, float]) -> None:
    with pytest.raises(ConfigurationError, match="two non-negative numbers that sum to 1"):
        merge_folders(tmp_path / "a", tmp_path / "b", tmp_path / "out", weights=weights)


def test_output_folder_must_be_empty(tmp_path: Path) -> None:
    a = saved(seeded(MLP()), tmp_path / "a")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale").write_text("x")
    with pytest.raises(ConfigurationError, match="absent or an empty folder"):
        merge_folders(a, a, tmp_path / "out")
