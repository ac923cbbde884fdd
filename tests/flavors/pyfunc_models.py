"""PythonModel subclasses for the pyfunc tests; they live in a module so their code is stored."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.flavors import ModelContext, PythonModel


class Scaler(PythonModel):
    """Multiplies inputs by a factor read from an artifact, plus an offset from `init`."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.factor = 1.0

    def load_context(self, context: ModelContext) -> None:
        self.factor = float(context.artifacts["factor"].read_text())

    def predict(self, inputs: Any) -> Any:
        return np.asarray(inputs, dtype=np.float64) * self.factor + self.offset


class Picky(PythonModel):
    """Sums each row; refuses rows with a negative number (a ValueError: the values are the
    client's to fix) and breaks on one past a million, as a model with a bug would."""

    def predict(self, inputs: Any) -> Any:
        array = np.asarray(inputs, dtype=np.float64)
        if (array < 0).any():
            raise ValueError("negative values are not supported")
        if (array > 1e6).any():
            raise RuntimeError("the accumulator overflowed")
        return array.sum(axis=1)


class Spend(PythonModel):
    """Takes a DataFrame: `amount` times the length of `country`."""

    def predict(self, inputs: Any) -> Any:
        lengths = inputs["country"].astype(str).str.len().to_numpy()
        return inputs["amount"].to_numpy() * lengths


class Sleepy(PythonModel):
    """Takes half a second per batch: a slow model, for tests of draining."""

    def predict(self, inputs: Any) -> Any:
        import time

        time.sleep(0.5)
        return np.asarray(inputs, dtype=np.float64).sum(axis=1)


class Shapes(PythonModel):
    """Answers in the shape `kind` names: dict, frame, tuple, or a scalar for the whole batch."""

    def __init__(self, kind: str = "dict") -> None:
        self.kind = kind

    def predict(self, inputs: Any) -> Any:
        x = np.asarray(inputs, dtype=np.float64)
        if self.kind == "dict":
            return {"total": x.sum(axis=1), "top": x.max(axis=1)}
        if self.kind == "frame":
            import pandas as pd

            return pd.DataFrame({"total": x.sum(axis=1)})
        if self.kind == "tuple":
            return x.sum(axis=1), x.max(axis=1)
        return float(x.sum())
