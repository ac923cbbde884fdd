"""Plots: a bar chart of global importance and a waterfall per row, written as PNG files."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from modelyard import Yard
from modelyard.errors import InvalidInput
from modelyard.explain import explain_version, global_importance, plot_waterfall


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header, which must be a PNG's."""
    content = path.read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and content[12:16] == b"IHDR"
    width, height = struct.unpack(">II", content[16:24])
    return width, height


def test_bar_chart_and_waterfall(yard: Yard, multiclass: Any, tmp_path: Path) -> None:
    x, y = multiclass
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y)
    yard.log_model(model, name="hgb", input_example=x[:2], reference_data=x)
    explanation = explain_version(yard, "hgb", x[:10])
    bars = explanation.plot(tmp_path / "bars.png")
    waterfall = explanation.plot(tmp_path / "plots" / "row3.png", row=3, k=4)  # 2 summed as one
    stored = global_importance(yard, "hgb").plot(tmp_path / "stored.png", k=3)
    assert png_size(bars)[0] == 800 and png_size(waterfall)[0] == 800
    assert png_size(stored)[1] < png_size(bars)[1]  # three bars, not six
    with pytest.raises(InvalidInput, match="row 10 is not explained: there are 10 rows"):
        plot_waterfall(explanation, tmp_path / "none.png", row=10)


def test_a_waterfall_of_every_feature(yard: Yard, regression: Any, tmp_path: Path) -> None:
    x, y = regression
    from sklearn.linear_model import LinearRegression

    yard.log_model(LinearRegression().fit(x, y), name="lin", reference_data=x)
    explanation = explain_version(yard, "lin", x[:1])
    assert png_size(explanation.plot(tmp_path / "all.png", row=0))[0] == 800
    assert np.isfinite(explanation.values).all()
