"""What explainers return: per-row contributions (`Explanation`) and their global summary
(`GlobalImportance`, stored with a version as `explain/importance.json`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from modelyard import _html

IMPORTANCE_FILE = "explain/importance.json"

Label = str | int | float | bool


@dataclass(frozen=True, eq=False)
class Explanation:
    """Why a model answered as it did, feature by feature, for each row explained.

    `values[i, j]` is feature j's contribution to row i's `prediction`, measured from
    `base_value[i]` (the model's average answer over the background). For SHAP explainers
    `base_value + values.sum(axis=1) == prediction` (exactly, up to float rounding, for tree,
    linear, deep and kernel SHAP; approximately for gradient SHAP); LIME's are the weights of a
    local linear fit. `output` says which of the model's outputs is explained: for a classifier
    the positive class of a binary one, else the class predicted for each row (`classes`).

        >>> explanation = yard.explain("fraud@production", X[:1])
        >>> explanation.top(0, 3)
        [('amount', 1.92), ('hour', -0.41), ('country_risk', 0.33)]
    """

    features: tuple[str, ...]
    values: npt.NDArray[np.float64]  # rows x features
    base_value: npt.NDArray[np.float64]  # rows
    prediction: npt.NDArray[np.float64]  # rows
    output: str
    explainer: str
    data: npt.NDArray[np.float64]  # rows x features: the feature values explained
    classes: tuple[Label, ...] | None = None  # the class explained for each row

    @property
    def rows(self) -> int:
        """How many rows are explained."""
        return int(self.values.shape[0])

    def top(self, row: int = 0, k: int = 10) -> list[tuple[str, float]]:
        """The `k` features that moved `row`'s prediction most, largest first (signed)."""
        contributions = self.values[row]
        order = np.argsort(-np.abs(contributions), kind="stable")[:k]
        return [(self.features[i], float(contributions[i])) for i in order]

    def importance(self) -> GlobalImportance:
        """Mean absolute contribution of each feature over the rows explained."""
        return GlobalImportance(
            features=list(self.features),
            importance=[float(v) for v in np.abs(self.values).mean(axis=0)],
            explainer=self.explainer,
            output=self.output,
            rows=self.rows,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON document of the explanation (what `POST /v2/models/{name}/explain` answers)."""
        return {
            "explainer": self.explainer,
            "output": self.output,
            "features": list(self.features),
            "values": self.values.tolist(),
            "base_value": self.base_value.tolist(),
            "prediction": self.prediction.tolist(),
            "classes": None if self.classes is None else list(self.classes),
        }

    def plot(self, path: str | Path, *, row: int | None = None, k: int = 15) -> Path:
        """Write a PNG: the waterfall of one `row`, or (no row) the bar chart of the mean
        absolute contribution per feature over the rows explained."""
        from modelyard.explain._plots import plot_importance, plot_waterfall

        if row is None:
            return plot_importance(self.importance(), path, k=k)
        return plot_waterfall(self, path, row=row, k=k)

    def __repr__(self) -> str:
        return (
            f"<Explanation {self.explainer}: {self.rows} rows x {len(self.features)} features, "
            f"{self.output}>"
        )

    def _repr_html_(self) -> str:
        cards = []
        for row in range(min(self.rows, 5)):
            top = self.top(row, 10)
            largest = max((abs(value) for _, value in top), default=0.0)
            rows = [(name, f"{value:+.4g}", _html.bar(value, largest)) for name, value in top]
            label = "" if self.classes is None else f", class {self.classes[row]}"
            base = f"base {self.base_value[row]:.4g}{label}"
            title = f"row {row}: prediction {self.prediction[row]:.4g} ({base})"
            cards.append(_html.section(title, _html.table(["feature", "contribution", ""], rows)))
        more = f"… and {self.rows - 5} more rows" if self.rows > 5 else ""
        note = f"{self.explainer} explanation of {self.output}"
        return _html.card(
            f"{self.rows} rows x {len(self.features)} features", *cards, more, note=note
        )


class GlobalImportance(BaseModel):
    """How much each feature matters to a model overall: the mean absolute SHAP value over a
    sample of rows. Computed at registration from the reference data (`explain/importance.json`
    in the version's files) or on demand."""

    model_config = ConfigDict(frozen=True)

    features: list[str]
    importance: list[float]
    explainer: str
    output: str
    rows: int

    def ranked(self, k: int | None = None) -> list[tuple[str, float]]:
        """(feature, importance) pairs, most important first; the first `k` when given."""
        pairs = sorted(zip(self.features, self.importance, strict=True), key=lambda p: -p[1])
        return pairs if k is None else pairs[:k]

    def plot(self, path: str | Path, *, k: int = 15) -> Path:
        """Write a PNG bar chart of the `k` most important features."""
        from modelyard.explain._plots import plot_importance

        return plot_importance(self, path, k=k)
