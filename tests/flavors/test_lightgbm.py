from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest

from modelyard.diff import summary_changes
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import _lightgbm, load_model, save_model
from modelyard.flavors._catalog import flavor_for
from tests.flavors.conftest import predict_in_fresh_process

ROOT = Path(__file__).resolve().parents[2]
_ = _lightgbm  # registers the flavor
# Trees that split on 80 rows, and no chatter on stdout.
SMALL: dict[str, Any] = {"min_child_samples": 5, "verbose": -1}


def data(rows: int = 80, *, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 4))
    labels = np.digitize(features[:, 0] + 0.3 * features[:, 1], np.linspace(-1, 1, classes - 1))
    return features, labels


def saved_files(folder: Path) -> set[str]:
    return {file.name for file in folder.iterdir()}


def test_booster_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    features, labels = data()
    params = {"objective": "binary", "num_leaves": 4, **SMALL}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label=labels), num_boost_round=4)
    info = save_model(booster, tmp_path / "model", input_example=features[:5])
    assert info.flavor == "lightgbm"
    assert info.settings == {"format": "text", "file": "model.txt",
                             "class": "lightgbm.basic.Booster", "method": "predict"}  # fmt: skip
    assert saved_files(tmp_path / "model") == {"model.txt", "modelyard.json", "input_example.npz"}
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, booster.predict(features))


@pytest.mark.parametrize(
    ("model", "labels"),
    [
        (lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, **SMALL), np.array(["no", "yes"])),
        (lightgbm.LGBMClassifier(n_estimators=3, **SMALL), np.array([3, 7, 11])),
        (lightgbm.LGBMRegressor(n_estimators=5, **SMALL), np.array([0.5, 2.5])),
    ],
    ids=["binary-strings", "multiclass-ints", "regressor"],
)
def test_wrapper_round_trip_in_a_fresh_process(
    model: Any, labels: np.ndarray, tmp_path: Path
) -> None:
    features, codes = data(classes=len(labels))
    model.fit(features, labels[codes])
    save_model(model, tmp_path / "model", input_example=features[:5])
    assert not saved_files(tmp_path / "model") & {"model.pkl", "model.joblib", "model.pickle"}
    expected = model.predict(features)
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == expected.dtype


def test_dataframe_with_a_categorical_column_in_a_fresh_process(tmp_path: Path) -> None:
    features, labels = data()
    frame = pd.DataFrame(features, columns=["amount", "age", "score", "tenure"])
    frame["country"] = pd.Categorical(np.array(["fr", "de", "it", "es"])[labels * 2 % 4])
    model = lightgbm.LGBMClassifier(n_estimators=4, **SMALL).fit(frame, labels)
    info = save_model(model, tmp_path / "model", input_example=frame[:5])
    assert info.signature is not None and info.signature.content_type == "pd"
    assert [spec.name for spec in info.signature.inputs] == list(frame.columns)
    got = predict_in_fresh_process(tmp_path / "model", frame, tmp_path)
    np.testing.assert_array_equal(got, model.predict(frame))


def test_predict_proba_is_kept_as_an_option(tmp_path: Path) -> None:
    features, labels = data()
    model = lightgbm.LGBMClassifier(n_estimators=3, **SMALL).fit(features, labels)
    info = save_model(model, tmp_path / "model", input_example=features[:5],
                      method="predict_proba")  # fmt: skip
    assert info.settings["method"] == "predict_proba"
    assert info.signature is not None
    assert [(s.datatype, s.shape) for s in info.signature.outputs] == [("FP64", [-1, 2])]
    got = predict_in_fresh_process(tmp_path / "model", features, tmp_path)
    np.testing.assert_array_equal(got, model.predict_proba(features))


def test_wrapper_comes_back_as_its_booster_answering_like_the_wrapper(tmp_path: Path) -> None:
    features, codes = data(classes=3)
    labels = np.array(["low", "mid", "high"], dtype=object)[codes]
    model = lightgbm.LGBMClassifier(n_estimators=3, **SMALL).fit(features, labels)
    info = save_model(model, tmp_path / "model")
    assert info.settings["classes"] == ["high", "low", "mid"]
    assert info.settings["classes_dtype"] == "|O"
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded.native, lightgbm.Booster)
    predicted = loaded.predict(features)
    assert predicted.dtype == object
    np.testing.assert_array_equal(predicted, model.predict(features))


def test_ranker_round_trip(tmp_path: Path) -> None:
    features, labels = data()
    model = lightgbm.LGBMRanker(n_estimators=3, **SMALL).fit(features, labels, group=[40, 40])
    save_model(model, tmp_path / "model", input_example=features[:5])
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict(features),
                                  model.predict(features))  # fmt: skip


def test_early_stopped_wrapper_predicts_with_its_best_iteration(tmp_path: Path) -> None:
    features, labels = data(200)
    noisy = np.random.default_rng(1).permutation(labels[:60])
    model = lightgbm.LGBMClassifier(n_estimators=50, **SMALL)
    model.fit(features[60:], labels[60:], eval_X=(features[:60],), eval_y=(noisy,),
              callbacks=[lightgbm.early_stopping(3, verbose=False)])  # fmt: skip
    assert 0 < model.best_iteration_ < 50
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


@pytest.mark.filterwarnings("ignore:Cannot compute class probabilities")
def test_custom_objective_classifier_gives_raw_scores(tmp_path: Path) -> None:
    def squared(labels: np.ndarray | None, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert labels is not None
        return scores - labels, np.ones_like(scores)

    features, labels = data()
    model = lightgbm.LGBMClassifier(n_estimators=3, objective=squared, **SMALL)
    model.fit(features, labels)
    info = save_model(model, tmp_path / "model")
    assert "classes" not in info.settings
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict(features),
                                  model.predict(features))  # fmt: skip


def test_signature_has_a_variable_batch(tmp_path: Path) -> None:
    features, labels = data()
    model = lightgbm.LGBMClassifier(n_estimators=2, **SMALL).fit(features, labels)
    info = save_model(model, tmp_path / "model", input_example=features[:5].astype(np.float32))
    assert info.signature is not None
    assert [(s.datatype, s.shape) for s in info.signature.inputs] == [("FP32", [-1, 4])]
    assert [(s.datatype, s.shape) for s in info.signature.outputs] == [("INT64", [-1])]


def test_flavor_is_picked_over_sklearn() -> None:
    features, labels = data()
    booster = lightgbm.train(SMALL, lightgbm.Dataset(features, label=labels), num_boost_round=1)
    models = [booster, lightgbm.LGBMClassifier(), lightgbm.LGBMRegressor(), lightgbm.LGBMRanker()]
    for model in models:
        assert flavor_for(model).name == "lightgbm"
    assert not _lightgbm.LightGBMFlavor().matches(np.zeros(3))


def test_describe_counts_trees_and_depth() -> None:
    features, labels = data(400, classes=3)
    model = lightgbm.LGBMClassifier(n_estimators=4, max_depth=2, learning_rate=0.2, **SMALL)
    summary = _lightgbm.LightGBMFlavor().describe(model.fit(features, labels))
    assert summary["class"] == "lightgbm.sklearn.LGBMClassifier"
    assert summary["trees"] == 12  # one tree per class and round
    assert summary["depth"] == 2
    assert summary["hyperparameters"]["max_depth"] == 2
    assert summary["hyperparameters"]["learning_rate"] == 0.2
    assert summary["hyperparameters"]["num_boost_round"] == 4
    json.dumps(summary)  # stored in modelyard.json


def test_describe_a_booster_from_its_parameters() -> None:
    features, labels = data(200)
    params = {"objective": "binary", "max_depth": 1, "learning_rate": 0.5, **SMALL}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label=labels), num_boost_round=3)
    summary = _lightgbm.LightGBMFlavor().describe(booster)
    assert summary["class"] == "lightgbm.basic.Booster"
    assert (summary["trees"], summary["depth"]) == (3, 1)
    hyperparameters = summary["hyperparameters"]
    assert hyperparameters["max_depth"] == 1
    assert hyperparameters["learning_rate"] == 0.5
    assert hyperparameters["objective"] == "binary"
    assert hyperparameters["num_boost_round"] == 3


def test_changed_hyperparameter_shows_in_summary_changes(tmp_path: Path) -> None:
    features, labels = data(400)
    first = lightgbm.LGBMRegressor(n_estimators=3, num_leaves=4, **SMALL).fit(features, labels)
    second = lightgbm.LGBMRegressor(n_estimators=3, num_leaves=16, **SMALL).fit(features, labels)
    a = save_model(first, tmp_path / "a").summary
    b = save_model(second, tmp_path / "b").summary
    changes = {key: (old, new) for key, old, new in summary_changes(a, b)}
    assert set(changes) == {"hyperparameters.num_leaves", "depth"}
    assert changes["hyperparameters.num_leaves"] == (4, 16)
    assert changes["depth"][0] < changes["depth"][1]


def test_unknown_options_and_methods_are_refused(tmp_path: Path) -> None:
    features, labels = data()
    regressor = lightgbm.LGBMRegressor(n_estimators=1, **SMALL).fit(features, labels)
    with pytest.raises(ConfigurationError, match="unknown lightgbm options: colour"):
        save_model(regressor, tmp_path / "a", colour="red")
    with pytest.raises(ConfigurationError, match="cannot predict with 'predict_proba'"):
        save_model(regressor, tmp_path / "b", method="predict_proba")
    with pytest.raises(ConfigurationError, match="Booster cannot predict with 'fit'"):
        save_model(regressor.booster_, tmp_path / "c", method="fit")


def test_labels_json_cannot_hold_are_refused(tmp_path: Path) -> None:
    features, codes = data()
    days = np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[D]")[codes]
    model = lightgbm.LGBMClassifier(n_estimators=1, **SMALL).fit(features, days)
    with pytest.raises(UnsupportedModel, match=r"label datetime.date\(2024, 1, 1\) \(date\)"):
        save_model(model, tmp_path / "model")
