"""PythonModel subclasses for the serving tests; they live in a module so their code is stored."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from modelyard.errors import InvalidInput
from modelyard.flavors import PythonModel


class Careless(PythonModel):
    """Answers each row after a short pause (so that requests under load share batches): its
    sum, or with `ragged`, as many labels as the row calls for (0, 1 or 2: a batch's answer is
    then a ragged list, as a model answering top labels above a threshold gives). A call holding
    a negative value fails, quoting every value it was given, as careless model code does:
    served, that message must reach only the request the values came from. A zero divides by
    zero; a value past a million breaks it as a bug would; an infinite one is refused with
    modelyard's own `InvalidInput`."""

    def __init__(self, ragged: bool = False) -> None:
        self.ragged = ragged
        self.calls: list[int] = []  # rows of each call, for tests of how batches are split

    def predict(self, inputs: Any) -> Any:
        time.sleep(0.002)
        array = np.asarray(inputs, dtype=np.float64)
        self.calls.append(len(array))
        if (array < 0).any():
            raise ValueError(f"negative values in {array.ravel().tolist()}")
        if (array == 0).any():
            return 1 / 0  # ZeroDivisionError: the values' fault too
        if np.isinf(array).any():  # a model may raise modelyard's errors to choose the status
            raise InvalidInput("infinite values are not taken")
        if (array > 1e6).any():
            raise RuntimeError("the accumulator overflowed")  # a bug: the model's fault
        if self.ragged:
            return [labels(row) for row in array]
        return array.sum(axis=1)


def labels(row: Any) -> list[int]:
    """The labels `Careless(ragged=True)` answers for a row."""
    return list(range(int(row[0]) % 3))
