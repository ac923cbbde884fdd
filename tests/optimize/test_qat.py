"""Quantization-aware training: `quantize(..., finetune=)` trains a torch module with int8
rounding simulated, then stores the ordinary dynamic int8 format.

The case: `OutlierMLP`, whose first layer holds one outlier weight (on a unit that never fires),
loses several points of accuracy to post-training int8 (refused by the 1% tolerance); ten
epochs of QAT bring it back within 1% (accepted). Latency is not judged here (`max_slowdown=
None`): int8 of a model this small is not faster, and the bench measures speed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard import Yard
from modelyard.errors import ConfigurationError, OptimizationRefused, UnsupportedModel
from modelyard.flavors.torch_tools import quantized_modules
from modelyard.optimize._qat import quantize_trained
from tests.flavors.conftest import predict_in_fresh_process
from tests.optimize.models import DigitsMLP, OutlierMLP, Recurrent, one_thread, train

ACCURACY_ONLY = {"max_slowdown": None}


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def outlier_mlp(digits: Any) -> Any:
    torch.manual_seed(0)
    with one_thread():
        return train(OutlierMLP(), digits[0], digits[1], epochs=20)


@pytest.fixture
def outlier(yard: Yard, outlier_mlp: Any, digits: Any) -> str:
    return yard.log_model(outlier_mlp, name="outlier", input_example=digits[2][:5],
                          options={"export": False, "init": {}}).ref  # fmt: skip


def finetuner(digits: Any, epochs: int = 10) -> Any:
    def qat_epochs(module: Any) -> None:
        train(module, digits[0], digits[1], epochs=epochs, lr=1e-3)

    return qat_epochs


def _answers(module: Any, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.asarray(module(torch.from_numpy(x)).numpy())


def test_post_training_int8_is_refused_and_qat_accepted(
    yard: Yard, outlier: str, digits: Any
) -> None:
    _, _, x, y = digits
    with pytest.raises(OptimizationRefused, match=r"accuracy changed by -\d+\.\d+%") as caught:
        yard.optimize.quantize(outlier, eval_data=(x, y), **ACCURACY_ONLY)
    assert caught.value.report.metric_change < -0.01
    result = yard.optimize.quantize(outlier, eval_data=(x, y), finetune=finetuner(digits),
                                    **ACCURACY_ONLY)  # fmt: skip
    report = result.report
    assert report.accepted and not report.forced and report.metric_change >= -0.01
    assert report.after.metric > caught.value.report.after.metric
    version = result.version
    assert version.parents == [outlier]
    assert yard.lineage(version.ref).edges[-1].relation == "quantize"
    params = version.params
    assert params["optimize.step"] == "quantize"
    assert (params["optimize.method"], params["optimize.qat"]) == ("dynamic", "True")
    assert params["optimize.finetune"] == "qat_epochs"
    assert report.settings["qat"] is True
    loaded = yard.load_model(version.ref)
    assert loaded.info.settings["quantized"]["types"] == ["Linear"]  # the ordinary int8 format


def test_training_sees_the_answers_int8_gives(outlier_mlp: Any, digits: Any) -> None:
    x = digits[2][:200]
    seen: dict[str, Any] = {}

    def look(module: Any) -> None:
        train(module, digits[0][:256], digits[1][:256], epochs=1, lr=1e-3)
        seen["answers"] = _answers(module.eval(), x)
        seen["weight"] = module.layers[0].weight_fake_quant(module.layers[0].weight).detach()

    child, settings = quantize_trained(outlier_mlp, look, ["Linear"])
    # The int8 weights are exactly the fake-quantized ones; the answers differ by float
    # rounding only (the int8 kernel sums in integers).
    assert torch.equal(seen["weight"], child.layers[0].weight().dequantize())
    np.testing.assert_allclose(_answers(child, x), seen["answers"], rtol=0, atol=1e-4)
    assert settings == {"method": "dynamic", "modules": "Linear", "qat": True,
                        "finetune": "look"}  # fmt: skip


def test_the_parent_module_is_left_alone(outlier_mlp: Any, digits: Any) -> None:
    before = copy.deepcopy(outlier_mlp.state_dict())
    child, _ = quantize_trained(outlier_mlp, finetuner(digits, epochs=1), ["Linear"])
    assert len(quantized_modules(child)) == 3
    assert not quantized_modules(outlier_mlp)
    assert all(type(m) is not torch.ao.nn.qat.dynamic.Linear for m in outlier_mlp.modules())
    after = outlier_mlp.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_callback_may_return_a_copy_and_train_linear_layers_of_a_recurrent_model() -> None:
    child, _ = quantize_trained(DigitsMLP(hidden=8), copy.deepcopy, ["Linear"])
    assert len(quantized_modules(child)) == 4  # depth 3: four Linear layers
    recurrent, _ = quantize_trained(Recurrent(), lambda module: None, ["Linear"])
    assert list(quantized_modules(recurrent)) == ["head"]
    assert type(recurrent.lstm) is torch.nn.LSTM  # float, as the caller asked


def test_answers_are_the_same_in_a_fresh_process(
    yard: Yard, outlier: str, digits: Any, tmp_path: Path
) -> None:
    _, _, x, y = digits
    ref = yard.optimize.quantize(outlier, eval_data=(x, y), finetune=finetuner(digits, 1),
                                 force=True, **ACCURACY_ONLY).version.ref  # fmt: skip
    fresh = predict_in_fresh_process(yard.model_folder(yard.get_version(ref)), x[:64], tmp_path)
    here = yard.load_model(ref).predict(x[:64])
    assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "static", "calibration": np.zeros((4, 64), np.float32)},
         "dynamic int8 only; it does not apply to dtype='int8' with method='static'"),
        ({"dtype": "float16"}, "does not apply to dtype='float16'"),
        ({"method": "weight-only"}, "method='weight-only'"),
        ({"finetune": "train"}, "finetune must be a function"),
    ],
)  # fmt: skip
def test_finetune_with_another_kind_of_quantization_is_refused(
    yard: Yard, outlier: str, digits: Any, options: dict[str, Any], message: str
) -> None:
    _, _, x, y = digits
    options = {"finetune": finetuner(digits), **options}
    with pytest.raises(ConfigurationError, match=message):
        yard.optimize.quantize(outlier, eval_data=(x, y), **options)
    assert [v.ref for v in yard.list_versions("outlier")] == [outlier]


def test_finetune_is_refused_where_it_cannot_train(yard: Yard, digits: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, x_test, y_test = digits
    ref = yard.log_model(LogisticRegression(max_iter=200).fit(x[:300], y[:300]), name="logistic",
                         input_example=x_test[:5]).ref  # fmt: skip
    with pytest.raises(UnsupportedModel, match="is for torch versions, not sklearn"):
        yard.optimize.quantize(ref, eval_data=(x_test, y_test), finetune=finetuner(digits))
    with pytest.raises(UnsupportedModel, match="'lstm' is an LSTM: pass modules=\\('Linear',\\)"):
        quantize_trained(Recurrent(), lambda module: None)
    with pytest.raises(ConfigurationError, match="must include 'Linear'"):
        quantize_trained(DigitsMLP(hidden=8), lambda module: None, ["GRU"])
    for bare in (torch.nn.Sequential(torch.nn.ReLU()), torch.nn.Linear(4, 2)):
        with pytest.raises(UnsupportedModel, match="no Linear submodules to train"):
            quantize_trained(bare, lambda module: None, ["Linear"])


def test_a_callback_that_changes_the_module_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="changed the module: 'layers.0.bias' is new"):
        quantize_trained(DigitsMLP(hidden=8), lambda module: torch.nn.Sequential(), ["Linear"])
    with pytest.raises(ConfigurationError, match="'layers.0.weight' reshaped"):
        quantize_trained(DigitsMLP(hidden=8), lambda module: DigitsMLP(hidden=16), ["Linear"])
    with pytest.raises(ConfigurationError, match="returned a str, not the module"):
        quantize_trained(DigitsMLP(hidden=8), lambda module: "done", ["Linear"])
