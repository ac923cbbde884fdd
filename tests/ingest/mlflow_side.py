"""Run by the MLflow virtualenv (not by pytest): fill a real MLflow registry, and say what MLflow
itself predicts for each version, so the import can be checked against MLflow's own answers.

    python mlflow_side.py registry TRACKING_URI OUT.json   # train, log, register, predict
    python mlflow_side.py folder OUT_DIR                   # mlflow.sklearn.save_model folders

Everything is made here from bundled data (iris), so nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # MLflow's deprecation and schema notices are not under test

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

# Requirements given (none) rather than inferred: inferring loads each model in a subprocess.
KW = {"name": "model", "pip_requirements": []}


def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x.astype(np.float64), y


def frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])


def registry(uri: str, out: Path) -> None:
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("import-test")
    client = MlflowClient()
    x, y = data()
    logged: list[tuple[str, str]] = []  # (name, version), in the order MLflow registered them

    def log(name: str, params: dict, metrics: list[tuple[str, float, int]], save) -> str:
        with mlflow.start_run(run_name=f"train-{name}") as run:
            mlflow.log_params(params)
            for key, value, step in metrics:
                mlflow.log_metric(key, value, step=step)
            mlflow.set_tag("team", "risk")
            info = save()
        version = mlflow.register_model(info.model_uri, name)
        logged.append((name, version.version))
        return run.info.run_id

    # sklearn, skops (MLflow 3's default), two versions, a DataFrame signature on the second
    for c in (0.5, 2.0):
        model = LogisticRegression(C=c, max_iter=500).fit(x, y)
        log("iris-skops", {"C": c, "solver": "lbfgs"},
            [("loss", 0.9 / c, 1), ("loss", 0.5 / c, 2), ("accuracy", model.score(x, y), 2)],
            lambda model=model: mlflow.sklearn.log_model(
                model, **KW, signature=infer_signature(x, model.predict(x)),
                input_example=x[:3]))  # fmt: skip
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame(x), y)
    log("iris-skops", {"C": 1.0, "scaled": True}, [("accuracy", pipeline.score(frame(x), y), 1)],
        lambda: mlflow.sklearn.log_model(
            pipeline, **KW, signature=infer_signature(frame(x), pipeline.predict(frame(x))),
            input_example=frame(x)[:2], serialization_format="skops"))  # fmt: skip
    # sklearn, pickled
    model = LogisticRegression(C=1.0, max_iter=500).fit(x, y)
    log("iris-pickle", {"C": 1.0}, [("accuracy", model.score(x, y), 1)],
        lambda: mlflow.sklearn.log_model(
            model, **KW, serialization_format="cloudpickle",
            signature=infer_signature(x, model.predict(x))))  # fmt: skip
    # xgboost (UBJSON), lightgbm (a Booster: text), onnx, pytorch (a pickled module)
    import xgboost

    booster = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(x, y)
    log("iris-xgb", {"n_estimators": 8}, [("accuracy", booster.score(x, y), 8)],
        lambda: mlflow.xgboost.log_model(
            booster, **KW, signature=infer_signature(x, booster.predict(x))))  # fmt: skip
    import lightgbm

    gbm = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                          "num_leaves": 7}, lightgbm.Dataset(x, y), num_boost_round=10)  # fmt: skip
    log("iris-lgb", {"num_boost_round": 10}, [("logloss", 0.3, 10)],
        lambda: mlflow.lightgbm.log_model(
            gbm, **KW, signature=infer_signature(x, gbm.predict(x))))  # fmt: skip
    from skl2onnx import to_onnx

    onnx_model = to_onnx(model, x[:1].astype(np.float32), target_opset=17,
                         options={id(model): {"zipmap": False}})  # fmt: skip
    log(
        "iris-onnx",
        {"opset": 17},
        [("accuracy", model.score(x, y), 1)],
        lambda: mlflow.onnx.log_model(onnx_model, **KW),
    )
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        example = x[:2].astype(np.float32)
        output = net(torch.tensor(example)).detach().numpy()
        log("iris-torch", {"hidden": 8}, [("loss", 1.1, 1), ("loss", 0.9, 2)],
            lambda: mlflow.pytorch.log_model(
                net, **KW, serialization_format="pickle",
                signature=infer_signature(example, output)))  # fmt: skip

    # what a team sets on its registry
    client.update_registered_model("iris-skops", description="Iris species, logistic regression")
    client.set_registered_model_tag("iris-skops", "owner", "risk-team")
    client.update_model_version("iris-skops", "2", description="stronger regularisation off")
    client.set_model_version_tag("iris-skops", "2", "validated_by", "alice")
    client.set_registered_model_alias("iris-skops", "champion", "2")
    client.set_registered_model_alias("iris-skops", "challenger", "3")
    client.transition_model_version_stage("iris-xgb", "1", "Production")

    answers: dict[str, dict[str, list]] = {}
    for name, version in logged:
        loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        inputs = frame(x) if (name, version) == ("iris-skops", "3") else x
        if name in ("iris-onnx", "iris-torch"):
            inputs = x.astype(np.float32)
        predicted = loaded.predict(inputs)
        if isinstance(predicted, pd.DataFrame):
            predicted = predicted.to_numpy()
        if isinstance(predicted, dict):
            predicted = next(iter(predicted.values()))
        answers.setdefault(name, {})[version] = np.asarray(predicted).tolist()
    out.write_text(json.dumps({"inputs": x.tolist(), "versions": logged, "answers": answers}))


def folder(out: Path) -> None:
    """Model folders written by `mlflow.sklearn.save_model`: skops and pickle."""
    x, y = data()
    model = LogisticRegression(max_iter=500).fit(x, y)
    signature = infer_signature(x, model.predict(x))
    mlflow.sklearn.save_model(
        model, out / "skops", signature=signature, input_example=x[:2], pip_requirements=[]
    )
    mlflow.sklearn.save_model(
        model, out / "pickle", signature=signature, serialization_format="pickle",
        pip_requirements=[],
    )  # fmt: skip
    (out / "answers.json").write_text(json.dumps(model.predict(x).tolist()))


if __name__ == "__main__":
    if sys.argv[1] == "registry":
        registry(sys.argv[2], Path(sys.argv[3]))
    else:
        folder(Path(sys.argv[2]))
