"""`Yard.explain` and `Yard.importance`: the client's way in, locally and through the API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from modelyard.errors import NotFound
from tests.conftest import YardFactory


@pytest.mark.parametrize("make_yard", ["local", "asgi"], indirect=True)
def test_explain_and_importance_through_the_client(make_yard: YardFactory, binary: Any) -> None:
    x, y = binary
    yard = make_yard()
    model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
    yard.log_model(model, name="fraud", input_example=x[:2], reference_data=x, alias="production")
    explanation = yard.explain("fraud@production", x[:3])
    assert (explanation.explainer, explanation.output) == ("tree", "log-odds of class 1")
    np.testing.assert_allclose(explanation.prediction, model.decision_function(x[:3]))
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.abs(total - explanation.prediction).max() <= 1e-6
    again = yard.explain("fraud@production", x[:3])  # the built explainer is reused
    np.testing.assert_array_equal(again.values, explanation.values)
    assert yard.explain("fraud", x[:2], explainer="kernel").explainer == "kernel"
    stored = yard.importance("fraud@production")
    assert (stored.explainer, stored.rows) == ("tree", 300)
    computed = yard.importance("fraud", x[:50])
    assert computed.rows == 50 and computed.features == stored.features
    with pytest.raises(NotFound):
        yard.explain("nope", x[:1])
