"""Every flavor end to end: log a real model, then load it from the registry in a fresh process
(a new interpreter, as a server or a colleague would) and get identical predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard import Settings, Yard

RNG = np.random.default_rng(3)
X = RNG.random((30, 4)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 1).astype(int)

FRESH = """
import sys
import numpy as np
from modelyard import Yard
with Yard() as yard:
    model = yard.load_model(sys.argv[1], trust=sys.argv[2] == "1")
    np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[4]))), allow_pickle=False)
"""


def sklearn_model() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)


def xgboost_model() -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, Y)


def lightgbm_model() -> Any:
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=5, min_child_samples=2, verbose=-1).fit(X, Y)


def torch_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def onnx_model() -> Any:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(RNG.random((4, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def pyfunc_model() -> Any:
    from tests.flavors.pyfunc_models import Scaler

    return Scaler()


FLAVORS: dict[str, tuple[Callable[[], Any], dict[str, Any], bool]] = {
    "sklearn": (sklearn_model, {}, False),
    "xgboost": (xgboost_model, {}, False),
    "lightgbm": (lightgbm_model, {}, False),
    "torch": (torch_model, {}, False),
    "onnx": (onnx_model, {}, False),
    "pyfunc": (pyfunc_model, {"artifacts": {"factor": "FACTOR"}}, True),
}


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_round_trip_through_the_registry(flavor: str, tmp_path: Path) -> None:
    build, options, trust = FLAVORS[flavor]
    if "artifacts" in options:
        (tmp_path / "factor.txt").write_text("2")
        options = {"artifacts": {"factor": tmp_path / "factor.txt"}}
    model = build()
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        version = yard.log_model(model, name="m", input_example=X[:3], options=options)
        assert version.flavor == flavor
        assert version.signature is not None
        expected = np.asarray(yard.load_model("m:1", trust=trust).predict(X))
    np.save(tmp_path / "x.npy", X)
    subprocess.run(
        [sys.executable, "-c", FRESH, "m:1", "1" if trust else "0", str(tmp_path / "y.npy"),
         str(tmp_path / "x.npy")],
        check=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "MODELYARD_HOME": str(home)},
    )  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    original = _predict_original(flavor, model)
    if original is not None:
        np.testing.assert_allclose(expected, original, rtol=1e-6)


def _predict_original(flavor: str, model: Any) -> Any:
    if flavor == "torch":
        import torch

        with torch.no_grad():
            return model(torch.from_numpy(X)).numpy()
    if flavor in ("sklearn", "xgboost", "lightgbm"):
        return model.predict(X)
    if flavor == "pyfunc":
        return X.astype(np.float64) * 2
    return X @ _onnx_weights(model)


def _onnx_weights(model: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(model.graph.initializer[0])
