"""Tables for the monitoring tests: seeded, so a failure reproduces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def table(rng: np.random.Generator, rows: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Two numeric and one categorical column; `shift` moves the numbers and skews the colours."""
    colours = np.array(["red", "green", "blue", "grey"])
    weights = np.array([0.4, 0.3, 0.2, 0.1]) + np.array([-1, 0, 0, 1]) * min(shift, 0.3)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, rows),
            "income": rng.lognormal(10 + shift, 1, rows),
            "colour": rng.choice(colours, rows, p=weights / weights.sum()),
        }
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)
