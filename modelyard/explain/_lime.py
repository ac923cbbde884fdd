"""LIME (tabular): a weighted linear model fitted around each row on perturbed copies of it."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.explain._explainer import Explainer, explainer
from modelyard.explain._explanation import Explanation
from modelyard.explain._features import Features, Matrix
from modelyard.explain._target import RowFunction, Target, on_rows, picked

#: Perturbed rows LIME fits its local model on, per row explained (LIME's own default).
LIME_SAMPLES = 5000
# LIME keys a regression's weights under 1 (and their negatives under 0).
_REGRESSION_KEY = 1


@explainer
class LimeExplainer(Explainer):
    """LIME on the model's probabilities (classification) or on its numeric output
    (regression), with features discretized into the background's quartiles, as LIME does by
    default. A row's values are the local model's weights for the bins the row falls in, its
    base value the local model's intercept: they add up to the local model's prediction, which
    is near the model's (`prediction`) but not equal to it."""

    name = "lime"
    serial = True  # LimeTabularExplainer draws its samples from one random state

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        sample = self.background()
        features = self.features()
        scores, self._kind = target.scores()
        self._function = on_rows(scores, features)
        self._classification = self._kind == "probability"
        lime_tabular = require("lime.lime_tabular", extra="explain")
        self._lime = lime_tabular.LimeTabularExplainer(
            sample, feature_names=list(features.names), discretize_continuous=True,
            mode="classification" if self._classification else "regression", random_state=0,
        )  # fmt: skip

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        outputs = self._function(rows).reshape(len(rows), -1)
        values = np.zeros((len(rows), len(features.names), outputs.shape[1]))
        base = np.zeros(outputs.shape)
        for i, output in enumerate(picked(outputs)):
            if self._classification:
                found = self._lime.explain_instance(
                    rows[i], self._function, labels=(int(output),),
                    num_features=len(features.names), num_samples=LIME_SAMPLES,
                )  # fmt: skip
                key = int(output)
            else:
                found = self._lime.explain_instance(
                    rows[i], _one_output(self._function, int(output)),
                    num_features=len(features.names), num_samples=LIME_SAMPLES,
                )  # fmt: skip
                key = _REGRESSION_KEY
            for feature, weight in found.local_exp[key]:
                values[i, feature, output] = weight
            base[i, output] = found.intercept[key]
        return self.target.explanation(
            values=values, base=base, outputs=outputs, kind=self._kind, rows=rows,
            features=features, explainer=self.name,
        )  # fmt: skip


def _one_output(function: RowFunction, index: int) -> RowFunction:
    def one(rows: Matrix) -> np.ndarray[Any, Any]:
        return function(rows).reshape(len(rows), -1)[:, index]

    return one
