from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost

from modelyard.diff import summary_changes
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import _xgboost, load_model, read_info, save_model
from modelyard.flavors._catalog import flavor_for
from tests.flavors.conftest import predict_in_fresh_process

ROOT = Path(__file__).resolve().parents[2]
_ = _xgboost  # registers the flavor


def data(rows: int = 80, *, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 4))
    labels = np.digitize(features[:, 0] + 0.3 * features[:, 1], np.linspace(-1, 1, classes - 1))
    return features, labels


def saved_files(folder: Path) -> set[str]:
    return {file.name for file in folder.iterdir()}


def test_booster_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    features, labels = data()
    booster = xgboost.train({"max_depth": 2, "objective": "binary:logistic"},
                            xgboost.DMatrix(features, label=labels), num_boost_round=4)  # fmt: skip
    info = save_model(booster, tmp_path / "model", input_example=features[:5])
    assert info.flavor == "xgboost"
    assert info.settings == {"format": "ubj", "file": "model.ubj", "class": "xgboost.core.Booster",
                             "method": "predict"}  # fmt: skip
    assert saved_files(tmp_path / "model") == {"model.ubj", "modelyard.json", "input_example.npz"}
    expected = booster.predict(xgboost.DMatrix(features))
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, expected)


def test_booster_predicts_a_dataframe_in_a_fresh_process(tmp_path: Path) -> None:
    features, labels = data()
    frame = pd.DataFrame(features, columns=["amount", "age", "score", "tenure"])
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(frame, label=labels),
                            num_boost_round=3)  # fmt: skip
    info = save_model(booster, tmp_path / "model", input_example=frame[:5])
    assert info.signature is not None and info.signature.content_type == "pd"
    got = predict_in_fresh_process(tmp_path / "model", frame, tmp_path)
    np.testing.assert_array_equal(got, booster.predict(xgboost.DMatrix(frame)))


@pytest.mark.parametrize(
    ("make", "classes"),
    [
        (lambda: xgboost.XGBClassifier(n_estimators=5, max_depth=3), 2),
        (lambda: xgboost.XGBClassifier(n_estimators=3, max_depth=2), 3),
        (lambda: xgboost.XGBRegressor(n_estimators=5, max_depth=3), 2),
    ],
    ids=["binary", "multiclass", "regressor"],
)
def test_wrapper_round_trip_in_a_fresh_process(make: Any, classes: int, tmp_path: Path) -> None:
    features, labels = data(classes=classes)
    model = make().fit(features, labels)
    save_model(model, tmp_path / "model", input_example=features[:5])
    assert not saved_files(tmp_path / "model") & {"model.pkl", "model.joblib", "model.pickle"}
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, model.predict(features))
    assert got.dtype == model.predict(features).dtype


def test_dataframe_with_a_categorical_column_in_a_fresh_process(tmp_path: Path) -> None:
    features, labels = data()
    frame = pd.DataFrame(features, columns=["amount", "age", "score", "tenure"])
    frame["country"] = pd.Categorical(np.array(["fr", "de", "it", "es"])[labels * 2 % 4])
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2, enable_categorical=True)
    model.fit(frame, labels)
    info = save_model(model, tmp_path / "model", input_example=frame[:5])
    assert info.signature is not None and info.signature.content_type == "pd"
    assert [spec.name for spec in info.signature.inputs] == list(frame.columns)
    got = predict_in_fresh_process(tmp_path / "model", frame, tmp_path)
    np.testing.assert_array_equal(got, model.predict(frame))


def test_loaded_wrapper_is_the_wrapper_class(tmp_path: Path) -> None:
    features, labels = data(classes=3)
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(features, labels)
    save_model(model, tmp_path / "model", input_example=features[:5])
    loaded = load_model(tmp_path / "model")
    assert type(loaded.native) is xgboost.XGBClassifier
    np.testing.assert_array_equal(loaded.native.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.native.predict_proba(features),
                                  model.predict_proba(features))  # fmt: skip


def test_predict_proba_is_kept_as_an_option(tmp_path: Path) -> None:
    features, labels = data()
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(features, labels)
    info = save_model(model, tmp_path / "model", input_example=features[:5],
                      method="predict_proba")  # fmt: skip
    assert info.settings["method"] == "predict_proba"
    assert info.signature is not None
    assert info.signature.outputs[0].datatype == "FP32"
    assert info.signature.outputs[0].shape == [-1, 2]
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, model.predict_proba(features))


def test_signature_has_a_variable_batch(tmp_path: Path) -> None:
    features, labels = data()
    model = xgboost.XGBClassifier(n_estimators=2).fit(features, labels)
    info = save_model(model, tmp_path / "model", input_example=features[:5])
    assert info.signature is not None
    assert [(s.datatype, s.shape) for s in info.signature.inputs] == [("FP64", [-1, 4])]
    assert [(s.datatype, s.shape) for s in info.signature.outputs] == [("INT64", [-1])]


def test_flavor_is_picked_over_sklearn() -> None:
    features, labels = data()
    booster = xgboost.train({}, xgboost.DMatrix(features, label=labels), num_boost_round=1)
    for model in [booster, xgboost.XGBClassifier(), xgboost.XGBRegressor(), xgboost.XGBRanker()]:
        assert flavor_for(model).name == "xgboost"
    assert not _xgboost.XGBoostFlavor().matches(np.zeros(3))


def test_describe_counts_trees_and_depth() -> None:
    features, labels = data(400, classes=3)
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=3, learning_rate=0.2)
    summary = _xgboost.XGBoostFlavor().describe(model.fit(features, labels))
    assert summary["class"] == "xgboost.sklearn.XGBClassifier"
    assert summary["trees"] == 12  # one tree per class and round
    assert summary["depth"] == 3
    assert summary["hyperparameters"]["max_depth"] == 3
    assert summary["hyperparameters"]["learning_rate"] == 0.2
    assert summary["hyperparameters"]["num_boost_round"] == 4
    json.dumps(summary)  # stored in modelyard.json


def test_describe_a_booster_from_its_saved_configuration() -> None:
    features, labels = data(200)
    params = {"max_depth": 1, "eta": 0.5, "objective": "binary:logistic"}
    booster = xgboost.train(params, xgboost.DMatrix(features, label=labels), num_boost_round=3)
    summary = _xgboost.XGBoostFlavor().describe(booster)
    assert (summary["class"], summary["trees"], summary["depth"]) == ("xgboost.core.Booster", 3, 1)
    hyperparameters = summary["hyperparameters"]
    assert hyperparameters["max_depth"] == 1
    assert hyperparameters["eta"] == 0.5
    assert hyperparameters["objective"] == "binary:logistic"
    assert hyperparameters["num_boost_round"] == 3
    assert "nthread" not in hyperparameters  # a runtime setting, not a hyper-parameter


def test_linear_booster_has_no_trees() -> None:
    features, labels = data()
    booster = xgboost.train({"booster": "gblinear"}, xgboost.DMatrix(features, label=labels),
                            num_boost_round=2)  # fmt: skip
    summary = _xgboost.XGBoostFlavor().describe(booster)
    assert "trees" not in summary and summary["hyperparameters"]["booster"] == "gblinear"


def test_changed_hyperparameter_shows_in_summary_changes(tmp_path: Path) -> None:
    features, labels = data(400)
    first = xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(features, labels)
    second = xgboost.XGBRegressor(n_estimators=3, max_depth=4).fit(features, labels)
    a = save_model(first, tmp_path / "a").summary
    b = save_model(second, tmp_path / "b").summary
    changes = {key: (old, new) for key, old, new in summary_changes(a, b)}
    assert changes == {"hyperparameters.max_depth": (2, 4), "depth": (2, 4)}
    assert a["hyperparameters"]["missing"] == "nan"  # JSON has no NaN, and NaN != NaN


def test_unknown_options_and_methods_are_refused(tmp_path: Path) -> None:
    features, labels = data()
    regressor = xgboost.XGBRegressor(n_estimators=1).fit(features, labels)
    with pytest.raises(ConfigurationError, match="unknown xgboost options: colour"):
        save_model(regressor, tmp_path / "a", colour="red")
    with pytest.raises(ConfigurationError, match="cannot predict with 'predict_proba'"):
        save_model(regressor, tmp_path / "b", method="predict_proba")
    with pytest.raises(ConfigurationError, match="cannot predict with 'fit'; use one of predict, "):
        save_model(regressor, tmp_path / "c", method="fit")
    with pytest.raises(ConfigurationError, match="Booster cannot predict with 'apply'"):
        save_model(regressor.get_booster(), tmp_path / "d", method="apply")


@pytest.mark.parametrize("name", ["os.system", "xgboost.core.DMatrix", "xgboost.nothing"])
def test_only_xgboost_models_are_rebuilt(name: str, tmp_path: Path) -> None:
    features, labels = data()
    save_model(xgboost.XGBRegressor(n_estimators=1).fit(features, labels), tmp_path / "model")
    file = tmp_path / "model" / "modelyard.json"
    recorded = json.loads(file.read_text())
    recorded["settings"]["class"] = name
    file.write_text(json.dumps(recorded))
    assert read_info(tmp_path / "model").settings["class"] == name
    with pytest.raises(UnsupportedModel, match=f"cannot rebuild '{name}'"):
        load_model(tmp_path / "model")
