"""Each step end to end through the registry: a child version with lineage, params, metrics
and its stored report; refusals past the tolerance; forced results tagged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard import Yard
from modelyard.errors import (
    ConfigurationError,
    InvalidInput,
    NotFound,
    OptimizationRefused,
    UnsupportedModel,
)
from modelyard.optimize import OptimizeReport
from tests.optimize.models import train


@pytest.fixture
def mlp(yard: Yard, digits_mlp: Any, digits: Any) -> str:
    """The digits MLP logged so that its class rebuilds it, with a reference sample."""
    x, _, _, _ = digits
    version = yard.log_model(
        digits_mlp, name="mlp", input_example=x[:5], reference_data=x[:200],
        options={"export": False, "init": {"hidden": 64}}, params={"lr": 0.003},
    )  # fmt: skip
    return version.ref


def test_quantize_registers_a_measured_child(yard: Yard, mlp: str, digits: Any) -> None:
    _, _, x, y = digits
    result = yard.optimize.quantize(mlp, eval_data=(x, y), max_slowdown=None, alias="int8")
    version, report = result.version, result.report
    assert version.ref == "mlp:2" and yard.get_version("mlp@int8").ref == "mlp:2"
    assert [(e.parent, e.child, e.relation) for e in yard.lineage("mlp:2").edges] == [
        ("mlp:1", "mlp:2", "quantize")
    ]
    assert version.params["optimize.dtype"] == "int8"
    assert version.params["optimize.method"] == "dynamic"
    assert version.params["lr"] == "0.003"  # the parent's params carry over
    assert version.tags == {"optimize.step": "quantize"}
    assert report.accepted and not report.forced
    assert report.size_ratio > 2.5  # int8 weights: about a quarter of float32
    assert version.metrics["accuracy"] == report.after.metric
    assert version.metrics["optimize.size_ratio"] == pytest.approx(report.size_ratio)
    assert yard.optimize.report("mlp:2") == report
    assert "| size on disk |" in report.table() and "accepted" in report.table()
    loaded = yard.load_model("mlp:2")
    assert (loaded.predict(x).argmax(1) == y).mean() == pytest.approx(report.after.metric)
    # the parent's monitoring reference comes along: drift keeps working after a swap
    diff = yard.diff("mlp:1", "mlp:2")
    changed = [change.path for change in diff.files_changed]
    assert not any(path.startswith("monitoring/") for path in changed + diff.files_removed)
    assert "optimize/report.json" in diff.files_added


def test_float16(yard: Yard, mlp: str, digits: Any) -> None:
    _, _, x, y = digits
    result = yard.optimize.quantize(mlp, eval_data=(x, y), max_slowdown=None, dtype="float16")
    assert result.report.size_ratio == pytest.approx(2, rel=0.1)
    assert result.version.params["optimize.dtype"] == "float16"
    assert yard.load_model(result.version.ref).predict(x[:3]).shape == (3, 10)


def test_past_the_tolerance_is_refused_unless_forced(yard: Yard, mlp: str, digits: Any) -> None:
    _, _, x, y = digits
    with pytest.raises(OptimizationRefused, match=r"accuracy changed by -\d+\.\d+%") as caught:
        yard.optimize.prune(mlp, eval_data=(x, y), max_slowdown=None, sparsity=0.95)
    report = caught.value.report
    assert isinstance(report, OptimizeReport) and not report.accepted
    assert "| accuracy |" in str(caught.value)
    assert "(pass force=True to register it anyway" in str(caught.value)  # the SDK's keyword
    assert [v.ref for v in yard.list_versions("mlp")] == ["mlp:1"]  # nothing registered
    forced = yard.optimize.prune(
        mlp, eval_data=(x, y), max_slowdown=None, sparsity=0.95, force=True
    )
    assert forced.report.forced and "forced" in forced.report.table()
    assert forced.version.tags["optimize.forced"] == "true"
    assert forced.version.params["optimize.sparsity"] == "0.95"


def test_prune_with_fine_tuning(yard: Yard, mlp: str, digits: Any) -> None:
    x_train, y_train, x, y = digits

    def finetune(module: Any) -> None:
        train(module, x_train, y_train, epochs=5)

    result = yard.optimize.prune(
        mlp,
        eval_data=(x, y),
        max_slowdown=None,
        sparsity=0.7,
        structured=False,
        finetune=finetune,
        tolerance=0.03,
    )
    assert result.version.params["optimize.finetune"] == "finetune"
    assert float(result.version.params["optimize.zeros"]) == pytest.approx(0.7, abs=0.01)
    weights = yard.load_model(result.version.ref).native.layers[0].weight
    assert float((weights == 0).float().mean()) == pytest.approx(0.7, abs=0.01)


def test_remove_layers_then_fine_tune(yard: Yard, mlp: str, digits: Any) -> None:
    x_train, y_train, x, y = digits
    result = yard.optimize.prune(
        mlp, eval_data=(x, y), max_slowdown=None, layers=["layers.4", "layers.5"], tolerance=0.05,
        finetune=lambda module: train(module, x_train, y_train, epochs=10),
    )  # fmt: skip
    loaded = yard.load_model(result.version.ref)
    parent = yard.load_model(mlp).native
    count = sum(p.numel() for p in loaded.native.parameters())
    assert count == sum(p.numel() for p in parent.parameters()) - 64 * 64 - 64
    assert loaded.info.settings["format"] == "export"  # the new structure has no class
    assert result.version.params["optimize.layers"] == "layers.4,layers.5"


def test_exported_parents_prune_in_place(yard: Yard, digits_mlp: Any, digits: Any) -> None:
    _, _, x, y = digits
    yard.log_model(digits_mlp, name="exported", input_example=x[:5])
    result = yard.optimize.prune(
        "exported:1", eval_data=(x, y), max_slowdown=None, sparsity=0.2, structured=True, force=True
    )
    diff = yard.diff("exported:1", "exported:2")
    # the program is shared, not traced again: only the weights (and the metadata) differ
    assert "model.pt2" not in [change.path for change in diff.files_changed]
    assert "model.safetensors" in [change.path for change in diff.files_changed]
    assert yard.load_model(result.version.ref).predict(x[:2]).shape == (2, 10)
    with pytest.raises(UnsupportedModel, match=r"\(export format\) records none that rebuilds it"):
        yard.optimize.quantize("exported:1", eval_data=(x, y), max_slowdown=None)


def test_exported_parents_whose_class_rebuilds(yard: Yard, digits_mlp: Any, digits: Any) -> None:
    _, _, x, y = digits
    yard.log_model(digits_mlp, name="both", input_example=x[:5],
                   options={"init": {"hidden": 64}, "export": True})  # fmt: skip
    settings = yard.load_model("both:1").info.settings
    assert settings["format"] == "export" and settings["class"].endswith(":DigitsMLP")
    result = yard.optimize.quantize("both:1", eval_data=(x, y), max_slowdown=None)
    assert result.report.accepted
    assert yard.load_model(result.version.ref).info.settings["format"] == "class"
    smaller = yard.optimize.prune("both:1", eval_data=(x, y), layers=["layers.2", "layers.3"],
                                  force=True)  # fmt: skip
    assert yard.load_model(smaller.version.ref).predict(x[:2]).shape == (2, 10)


def test_what_cannot_be_optimized_is_refused(yard: Yard, mlp: str, digits: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    _, _, x, y = digits
    yard.log_model(LogisticRegression(max_iter=200).fit(x, y), name="lr", input_example=x[:2])
    with pytest.raises(UnsupportedModel, match="convert it to ONNX first"):
        yard.optimize.quantize("lr:1", eval_data=(x, y), max_slowdown=None)
    with pytest.raises(UnsupportedModel, match="prune works on torch versions"):
        yard.optimize.prune("lr:1", eval_data=(x, y), max_slowdown=None)
    with pytest.raises(UnsupportedModel, match="graph optimization works on onnx"):
        yard.optimize.optimize_graph("lr:1", eval_data=(x, y), max_slowdown=None)
    with pytest.raises(ConfigurationError, match="static int8 needs calibration= inputs"):
        yard.optimize.quantize(mlp, eval_data=(x, y), max_slowdown=None, method="static")
    with pytest.raises(NotFound, match="not made by an optimization step"):
        yard.optimize.report(mlp)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"dtype": "int4"}, ConfigurationError, "int4 is weight-only"),
        ({"method": "qat"}, ConfigurationError, "method must be 'dynamic', 'static' or 'weig"),
        ({"colour": "red"}, ConfigurationError, "unknown option 'colour'"),
        ({"metric": "bleu"}, ConfigurationError, "unknown metric 'bleu'"),
        ({"tolerance": 2}, ConfigurationError, "tolerance must be a fraction"),
        ({"eval_data": [1, 2, 3]}, ConfigurationError, r"eval_data must be a pair"),
        ({"eval_data": (np.ones((3, 64)), [1])}, InvalidInput, "3 rows of inputs but 1 labels"),
        ({"eval_data": (np.ones((0, 64)), [])}, InvalidInput, "has no rows"),
        ({"metric": "auc"}, InvalidInput, "auc is measured for binary"),
    ],
)
def test_bad_options(
    yard: Yard, mlp: str, digits: Any, options: dict[str, Any], error: type, message: str
) -> None:
    _, _, x, y = digits
    arguments: dict[str, Any] = {"eval_data": (x, y), **options}
    with pytest.raises(error, match=message):
        yard.optimize.quantize(mlp, **arguments)
    assert len(yard.list_versions("mlp")) == 1


def test_lower_is_better_metrics_and_custom_functions(yard: Yard, digits: Any) -> None:
    import torch

    from tests.optimize.models import DigitsMLP

    x_train, y_train, x, y = digits
    regressor = DigitsMLP(hidden=32, classes=1)
    optimizer = torch.optim.Adam(regressor.parameters(), lr=3e-3)
    for _ in range(200):
        optimizer.zero_grad()
        loss = (regressor(torch.from_numpy(x_train))[:, 0] - torch.from_numpy(y_train)) ** 2
        loss.mean().backward()
        optimizer.step()
    yard.log_model(regressor.eval(), name="reg", input_example=x[:2],
                   options={"export": False, "init": {"hidden": 32, "classes": 1}})  # fmt: skip
    result = yard.optimize.quantize("reg:1", eval_data=(x, y.astype(float)), metric="rmse",
                                    tolerance=0.05, max_slowdown=None)  # fmt: skip
    assert not result.report.higher_is_better and result.version.metrics["rmse"] > 0

    def within_one(truth: np.ndarray, output: Any) -> float:
        return float(np.mean(np.abs(np.asarray(output)[:, 0] - truth) <= 1))

    custom = yard.optimize.quantize(
        "reg:1", eval_data=(x, y), max_slowdown=None, metric=within_one, force=True
    )
    assert custom.report.metric == "within_one" and "within_one" in custom.version.metrics


@pytest.mark.parametrize("make_yard", ["asgi"], indirect=True)
def test_through_the_api(make_yard: Any, digits_mlp: Any, digits: Any) -> None:
    remote = make_yard()
    _, _, x, y = digits
    remote.log_model(digits_mlp, name="mlp", input_example=x[:5],
                     options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    result = remote.optimize.quantize("mlp:1", eval_data=(x, y), max_slowdown=None)
    assert remote.get_version("mlp:2").metrics["accuracy"] == result.report.after.metric
    assert remote.optimize.report("mlp:2") == result.report
    assert remote.lineage("mlp:2").edges[0].relation == "quantize"


def test_structured_pruning_narrows_the_layers(yard: Yard, mlp: str, digits: Any) -> None:
    _, _, x, y = digits
    narrow = yard.optimize.prune(mlp, eval_data=(x, y), sparsity=0.25, structured=True,
                                 force=True)  # fmt: skip
    kept = yard.optimize.prune(mlp, eval_data=(x, y), sparsity=0.25, structured=True,
                               shrink=False, force=True)  # fmt: skip
    assert narrow.version.params["optimize.removed_channels"] == str(3 * 16)
    assert "optimize.removed_channels" not in kept.version.params
    assert narrow.report.after.metric == kept.report.after.metric  # the same answers
    loaded = yard.load_model(narrow.version.ref)
    count = sum(p.numel() for p in loaded.native.parameters())
    assert count == 48 * 64 + 48 + 2 * (48 * 48 + 48) + 48 * 10 + 10  # three layers 64 -> 48 wide
    np.testing.assert_allclose(
        loaded.predict(x), yard.load_model(kept.version.ref).predict(x), rtol=1e-4, atol=1e-4
    )


def test_onnx_steps_through_the_registry(yard: Yard, mlp: str, digits: Any) -> None:
    x_train, _, x, y = digits
    converted = yard.optimize.convert(mlp, eval_data=(x, y), max_slowdown=None, alias="onnx")
    onnx_ref = converted.version.ref
    assert yard.get_version(onnx_ref).flavor == "onnx"
    assert converted.report.after.metric == pytest.approx(converted.report.before.metric)
    dynamic = yard.optimize.quantize(onnx_ref, eval_data=(x, y), max_slowdown=None)
    static = yard.optimize.quantize(onnx_ref, eval_data=(x, y), max_slowdown=None, method="static",
                                    calibration=x_train[:100], per_channel=True)  # fmt: skip
    half = yard.optimize.quantize(onnx_ref, eval_data=(x, y), max_slowdown=None, dtype="float16")
    graph = yard.optimize.optimize_graph(
        onnx_ref, eval_data=(x, y), max_slowdown=None, level="basic"
    )
    for result, step in ((dynamic, "quantize"), (static, "quantize"), (half, "quantize"),
                         (graph, "optimize-graph")):  # fmt: skip
        assert result.version.parents == [onnx_ref]
        assert yard.lineage(result.version.ref).edges[-1].relation == step
    assert dynamic.report.size_ratio > 2 and static.report.size_ratio > 2  # small: metadata counts
    assert static.version.params["optimize.method"] == "static"
    assert half.report.size_ratio > 1.5
    assert graph.version.params["optimize.level"] == "basic"
    chain = yard.lineage(dynamic.version.ref)
    assert [edge.relation for edge in chain.edges] == ["convert", "quantize"]
    with pytest.raises(ConfigurationError, match="static int8 needs calibration"):
        yard.optimize.quantize(onnx_ref, eval_data=(x, y), max_slowdown=None, method="static")
    with pytest.raises(ConfigurationError, match="convert to 'onnx' only"):
        yard.optimize.convert(mlp, eval_data=(x, y), max_slowdown=None, to="tflite")


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm"])
def test_tree_models_convert_to_onnx(yard: Yard, digits: Any, framework: str) -> None:
    x_train, y_train, x, y = digits
    if framework == "sklearn":
        from sklearn.ensemble import RandomForestClassifier

        model: Any = RandomForestClassifier(n_estimators=10, random_state=0)
    elif framework == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)
    else:
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1)
    yard.log_model(model.fit(x_train, y_train), name="trees", input_example=x[:5])
    result = yard.optimize.convert("trees:1", eval_data=(x, y), max_slowdown=None)
    assert result.report.accepted and result.version.flavor == "onnx"
    served = yard.load_model(result.version.ref).predict(x)
    assert (served["output-0"] if isinstance(served, dict) else served).shape[0] == len(x)
    with pytest.raises(UnsupportedModel):  # an ensemble of trees has no weights to quantize
        yard.optimize.quantize(result.version.ref, eval_data=(x, y), max_slowdown=None)
