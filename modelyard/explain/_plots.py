"""PNG plots of explanations: a bar chart of global importance and a waterfall for one row.

Drawn on a plain matplotlib `Figure` (no pyplot), so no global figure state is touched and plots
can be drawn from any thread, a server's included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InvalidInput
from modelyard.explain._explanation import Explanation, GlobalImportance

_UP, _DOWN, _BAR = "#d6404e", "#2f7fc1", "#4c72b0"


def plot_importance(importance: GlobalImportance, path: str | Path, *, k: int = 15) -> Path:
    """Write a horizontal bar chart of the `k` most important features (mean |SHAP|)."""
    ranked = importance.ranked(k)
    figure = _figure(len(ranked))
    axes = figure.add_subplot()
    names = [name for name, _ in ranked][::-1]
    axes.barh(names, [value for _, value in ranked][::-1], color=_BAR)
    axes.set_xlabel(f"mean |contribution| to the {importance.output}")
    axes.set_title(
        f"Global importance ({importance.explainer}, {importance.rows} rows)", loc="left"
    )
    _tidy(axes)
    return _save(figure, path)


def plot_waterfall(
    explanation: Explanation, path: str | Path, *, row: int = 0, k: int = 15
) -> Path:
    """Write a waterfall for one row: from the base value, each of the `k` largest
    contributions in turn (the rest summed into one bar), to the prediction."""
    if not 0 <= row < explanation.rows:
        raise InvalidInput(f"row {row} is not explained: there are {explanation.rows} rows")
    top = explanation.top(row, k)
    index = {name: i for i, name in enumerate(explanation.features)}
    labels = [f"{name} = {explanation.data[row, index[name]]:.4g}" for name, _ in top]
    steps = [value for _, value in top]
    rest = float(explanation.values[row].sum() - sum(steps))
    if len(explanation.features) > len(top):
        labels.append(f"{len(explanation.features) - len(top)} other features")
        steps.append(rest)
    # From the bottom up, as shap draws it: the base value, the rest, the smaller contributions,
    # and at the top the largest, ending at the prediction.
    labels, steps = labels[::-1], steps[::-1]
    base = float(explanation.base_value[row])
    starts = base + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    figure = _figure(len(steps))
    axes = figure.add_subplot()
    positions = np.arange(len(steps))
    colours = [_UP if step >= 0 else _DOWN for step in steps]
    axes.barh(positions, steps, left=starts, color=colours)
    for position, start, step in zip(positions, starts, steps, strict=True):
        axes.annotate(f"{step:+.3g}", (start + step, position), xytext=(3 if step >= 0 else -3, 0),
                      textcoords="offset points", va="center", ha="left" if step >= 0 else "right",
                      fontsize=8)  # fmt: skip
    axes.set_yticks(positions, labels)
    ends = starts + np.asarray(steps)
    low, high = min(starts.min(), ends.min()), max(starts.max(), ends.max())
    pad = 0.12 * (high - low or 1.0)  # room for the labels (bars would stick to the edges)
    axes.set_xlim(low - pad, high + pad)
    axes.axvline(base, color="grey", linestyle=":", linewidth=1)
    end = base + sum(steps)
    axes.axvline(end, color="black", linestyle="--", linewidth=1)
    what = f"{explanation.output}" + _class_of(explanation, row)
    axes.set_xlabel(f"{what}: base {base:.4g} -> {end:.4g}")
    axes.set_title(
        f"Row {row}: prediction {float(explanation.prediction[row]):.4g} ({explanation.explainer})",
        loc="left",
    )
    _tidy(axes)
    return _save(figure, path)


def _class_of(explanation: Explanation, row: int) -> str:
    if explanation.classes is None or "predicted" not in explanation.output:
        return ""
    return f" ({explanation.classes[row]!r})"


def _figure(bars: int) -> Any:
    require("matplotlib", extra="explain")
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 1.2 + 0.35 * max(bars, 1)), dpi=100, layout="constrained")


def _tidy(axes: Any) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(axis="y", labelsize=8)


def _save(figure: Any, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target
