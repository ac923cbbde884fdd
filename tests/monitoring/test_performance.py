from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from modelyard.errors import InvalidInput
from modelyard.monitoring import parse_feedback, performance

RNG = np.random.default_rng(2)


def test_classification_from_labels_matches_scikit_learn() -> None:
    truth = RNG.integers(0, 3, 500)
    predicted = np.where(RNG.random(500) < 0.8, truth, RNG.integers(0, 3, 500))
    result = performance(predicted, truth)
    assert result.task == "classification" and result.rows == 500
    assert result.metrics["accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert result.metrics["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_probabilities_give_auc_with_ties() -> None:
    truth = RNG.integers(0, 2, 400)
    scores = np.round(np.clip(truth * 0.3 + RNG.random(400) * 0.7, 0, 1), 1)  # many ties
    result = performance(np.column_stack([1 - scores, scores]), truth)
    assert result.metrics["auc"] == pytest.approx(roc_auc_score(truth, scores))
    one_class = performance(np.column_stack([1 - scores, scores]), np.ones(400, int))
    assert np.isnan(one_class.metrics["auc"])


def test_regression_and_string_labels() -> None:
    result = performance(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0]))
    assert result.task == "regression"
    assert result.metrics == pytest.approx({"rmse": np.sqrt(5 / 3), "mae": 1.0})
    words = performance(np.array(["a", "b", "b"], object), np.array(["a", "b", "a"], object))
    assert words.metrics["accuracy"] == pytest.approx(2 / 3)


def test_feedback_bodies() -> None:
    assert parse_feedback(b'{"id": "r1", "label": 1}') == [{"id": "r1", "label": 1}]
    batch = parse_feedback(b'{"feedback": [{"id": "a", "label": [0, 1]}, {"id": "b", "label": 0}]}')
    assert [r["id"] for r in batch] == ["a", "b"]
    for body, message in [
        (b"{", "not valid JSON"),
        (b"[]", "must be"),
        (b'{"feedback": []}', "must be"),
        (b'{"id": 3, "label": 1}', "item 0 needs a string id and a label"),
        (b'{"feedback": [{"id": "a"}]}', "item 0 needs"),
        (b'{"id": "a", "label": [[1], [1, 2]]}', "flat list"),  # would break monitoring later
        (b'{"id": "a", "label": {"x": 1}}', "flat list"),
        (b'{"id": "a", "label": null}', "flat list"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_feedback(body)
