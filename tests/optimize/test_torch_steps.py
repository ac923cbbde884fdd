"""The PyTorch steps on their own: int8, float16, pruning (with fine-tuning), layer removal,
and int8 modules stored and rebuilt bit for bit (in a fresh process too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors import load_model, save_model
from modelyard.flavors._torch_quantized import quantize, quantized_modules
from modelyard.optimize._torch_steps import (
    prune_magnitude,
    quantize_int8,
    remove_layers,
    to_float16,
)
from modelyard.security import TrustPolicy
from tests.flavors.conftest import predict_in_fresh_process
from tests.optimize.models import DigitsMLP, Recurrent, train


def _accuracy(module: Any, x: np.ndarray, y: np.ndarray) -> float:
    with torch.inference_mode():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def test_int8_keeps_accuracy_and_leaves_the_parent_alone(digits_mlp: Any, digits: Any) -> None:
    _, _, x, y = digits
    quantized = quantize_int8(digits_mlp)
    assert len(quantized_modules(quantized)) == 4
    assert not quantized_modules(digits_mlp)
    assert abs(_accuracy(quantized, x, y) - _accuracy(digits_mlp, x, y)) <= 0.01


def test_int8_refuses_a_module_without_layers_to_quantize() -> None:
    with pytest.raises(UnsupportedModel, match="no Linear modules to quantize"):
        quantize_int8(torch.nn.Sequential(torch.nn.ReLU()), ["Linear"])
    with pytest.raises(UnsupportedModel, match="cannot quantize Conv2d"):
        quantize(torch.nn.Linear(2, 2), ["Conv2d"])


@pytest.mark.parametrize("recurrent", [False, True])
def test_int8_modules_round_trip_bit_for_bit(tmp_path: Path, recurrent: bool) -> None:
    rng = np.random.default_rng(0)
    if recurrent:
        module, types = Recurrent().eval(), ["LSTM", "GRU", "Linear"]
        x = rng.random((5, 7, 4), dtype=np.float32)
    else:
        module, types = DigitsMLP(hidden=32).eval(), ["Linear"]
        x = rng.random((5, 64), dtype=np.float32)
    quantized = quantize(module, types)
    init = {} if recurrent else {"hidden": 32}
    save_model(quantized, tmp_path / "m", input_example=x, init=init)
    # The operator allows the test models' classes, which the quantized version names.
    loaded = load_model(tmp_path / "m", trust=TrustPolicy(modules=("tests.optimize",)))
    assert loaded.info.settings["quantized"]["types"] == sorted(types)
    with torch.inference_mode():
        expected = quantized(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(loaded.predict(x), expected)
    np.testing.assert_array_equal(loaded.predict(x.astype(np.float64)), expected)
    fresh = predict_in_fresh_process(tmp_path / "m", x, tmp_path)
    np.testing.assert_array_equal(fresh, expected)


def test_per_channel_int8_round_trips(tmp_path: Path) -> None:
    from modelyard.flavors._torch_quantized import quantized_state, rebuild

    module = DigitsMLP(hidden=16).eval()
    quantized = quantize(module, ["Linear"])
    first = quantized.layers[0]
    weight = torch.quantize_per_channel(
        module.layers[0].weight.detach(), torch.full((16,), 0.01, dtype=torch.float64),
        torch.zeros(16, dtype=torch.int64), 0, torch.qint8,
    )  # fmt: skip
    first.set_weight_bias(weight, module.layers[0].bias.detach())
    tensors, settings = quantized_state(quantized)
    assert "layers.0.weight.axis" in tensors
    again = rebuild(DigitsMLP(hidden=16), settings, tensors)
    x = torch.rand(3, 64)
    torch.testing.assert_close(again(x), quantized(x), rtol=0, atol=0)
    del tensors["layers.2.weight.int8"]
    with pytest.raises(UnsupportedModel, match="lack 'layers.2.weight.int8'"):
        rebuild(DigitsMLP(hidden=16), settings, tensors)


def test_rebuild_refuses_weights_that_do_not_fit() -> None:
    from modelyard.flavors._torch_quantized import quantized_state, rebuild

    class WithNorm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)
            self.norm = torch.nn.LayerNorm(3)

    tensors, settings = quantized_state(quantize(WithNorm(), ["Linear"]))
    del tensors["norm.weight"]
    with pytest.raises(UnsupportedModel, match="'norm.weight' is missing"):
        rebuild(WithNorm(), settings, tensors)


def test_float16_halves_the_weights(digits_mlp: Any, digits: Any) -> None:
    _, _, x, y = digits
    half = to_float16(digits_mlp)
    assert next(half.parameters()).dtype == torch.float16
    assert next(digits_mlp.parameters()).dtype == torch.float32
    with pytest.raises(UnsupportedModel, match="cannot also be made float16"):
        to_float16(quantize_int8(digits_mlp))


@pytest.mark.parametrize("structured", [False, True])
def test_magnitude_pruning_reaches_the_target_sparsity(digits_mlp: Any, structured: bool) -> None:
    pruned, zeros = prune_magnitude(digits_mlp, 0.5, structured=structured)
    assert zeros == pytest.approx(0.5, abs=0.01)
    first = pruned.layers[0].weight
    if structured:
        dead = (first == 0).all(dim=1)
        assert int(dead.sum()) == 32
        assert (pruned.layers[0].bias[dead] == 0).all()
    else:
        assert float((first == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert float((digits_mlp.layers[0].weight == 0).float().mean()) < 0.01  # parent intact


def test_fine_tuning_keeps_pruned_weights_at_zero(digits_mlp: Any, digits: Any) -> None:
    x, y, x_test, y_test = digits
    seen: list[bool] = []

    def finetune(module: Any) -> None:
        seen.append(module.training)
        train(module, x, y, epochs=3)

    pruned, zeros = prune_magnitude(digits_mlp, 0.8, finetune=finetune)
    plain, _ = prune_magnitude(digits_mlp, 0.8)
    assert seen == [True]
    assert zeros == pytest.approx(0.8, abs=0.01)
    assert _accuracy(pruned, x_test, y_test) >= _accuracy(plain, x_test, y_test)
    assert not pruned.training


def test_pruning_refusals(digits_mlp: Any) -> None:
    with pytest.raises(ConfigurationError, match="sparsity must be between 0 and 1"):
        prune_magnitude(digits_mlp, 1.0)
    with pytest.raises(UnsupportedModel, match="no weight matrices"):
        prune_magnitude(torch.nn.LayerNorm(3), 0.5)

    def reshape(module: Any) -> Any:
        return torch.nn.Sequential(torch.nn.Linear(64, 10))

    with pytest.raises(ConfigurationError, match="changed the module"):
        prune_magnitude(digits_mlp, 0.5, finetune=reshape)


def test_removing_layers(digits_mlp: Any, digits: Any) -> None:
    _, _, x, _ = digits
    smaller = remove_layers(digits_mlp, ["layers.2", "layers.3"], x[:2])
    assert len(smaller.layers) == len(digits_mlp.layers) - 2
    assert smaller(torch.from_numpy(x[:3])).shape == (3, 10)
    top = remove_layers(digits_mlp.layers, ["4", "5"], x[:2])  # a Sequential itself
    assert len(top) == len(digits_mlp.layers) - 2


def test_removing_layers_refusals(digits_mlp: Any, digits: Any) -> None:
    _, _, x, _ = digits
    with pytest.raises(ConfigurationError, match="name the layers"):
        remove_layers(digits_mlp, [], x[:2])
    with pytest.raises(InvalidInput, match="no module 'encoder'"):
        remove_layers(digits_mlp, ["encoder.1"], x[:2])
    with pytest.raises(UnsupportedModel, match="not in an nn.Sequential"):
        remove_layers(digits_mlp, ["layers.0.weight"], x[:2])
    with pytest.raises(InvalidInput, match="has no layer '99'"):
        remove_layers(digits_mlp, ["layers.99"], x[:2])
    with pytest.raises(InvalidInput, match="no longer runs on its example"):
        remove_layers(DigitsMLP(hidden=32), ["layers.0"], x[:2])  # 64 inputs into 32
    everything = [f"layers.{i}" for i in range(len(digits_mlp.layers))]
    with pytest.raises(InvalidInput, match="would leave 'layers' empty"):
        remove_layers(digits_mlp, everything, x[:2])


def test_shrinking_removes_zeroed_channels_without_changing_answers(digits: Any) -> None:
    from modelyard.optimize._torch_steps import shrink

    _, _, x, _ = digits
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.Sigmoid(),
        torch.nn.Linear(32, 16, bias=False), torch.nn.Dropout(0.1), torch.nn.Tanh(),
        torch.nn.Linear(16, 10),
    ).eval()  # fmt: skip
    with torch.no_grad():
        module[1].running_mean.uniform_(-1, 1)
    pruned, _ = prune_magnitude(module, 0.25, structured=True)
    assert (pruned[6].weight != 0).all()  # the outputs are never pruned away
    inputs = torch.from_numpy(x)
    with torch.inference_mode():
        expected = pruned(inputs)
    narrow, removed = shrink(pruned)
    assert removed == 8 + 4
    assert narrow[0].out_features == 24 and narrow[1].num_features == 24
    assert narrow[3].in_features == 24 and narrow[3].out_features == 12
    assert narrow[6].in_features == 12
    with torch.inference_mode():
        torch.testing.assert_close(narrow(inputs), expected, rtol=1e-5, atol=1e-5)
    assert shrink(narrow)[1] == 0  # nothing left to remove
