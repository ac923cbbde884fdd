"""PythonModel subclasses for the tensor-encoding tests; in a module so their code is stored."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.flavors import PythonModel


class Mirror(PythonModel):
    """Answers each input under its own name: numbers doubled, BOOL negated, text upper-cased and
    bytes reversed, so every datatype travels both ways and a test can tell it was computed."""

    def predict(self, inputs: Any) -> Any:
        answers: dict[str, Any] = {}
        for name, value in inputs.items():
            if value.dtype == np.bool_:
                answers[name] = ~value
            elif value.dtype.kind in "OSU":
                answers[name] = np.array(
                    [v.upper() if isinstance(v, str) else v[::-1] for v in value.ravel()],
                    dtype=object,
                ).reshape(value.shape)
            else:
                answers[name] = value * 2
        return answers


class Double(PythonModel):
    """Doubles one tensor in place: an answer as large as the question, from a model that writes
    to its input (which it may)."""

    def predict(self, inputs: Any) -> Any:
        inputs *= 2
        return inputs
