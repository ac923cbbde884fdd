"""A small digits classifier, trained once per session, for the optimization tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and evaluation splits of scikit-learn's digits, scaled to [0, 1], as float32."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    return x[:1200], y[:1200], x[1200:], y[1200:]


@pytest.fixture(scope="session")
def digits_mlp(digits: Any) -> Any:
    """A trained `DigitsMLP` (hidden 64, three hidden layers): ~93% on the held-out digits."""

    from tests.optimize.models import DigitsMLP, one_thread, train

    x, y, _, _ = digits
    with one_thread():
        return train(DigitsMLP(hidden=64), x, y, epochs=25)


@pytest.fixture
def yard(tmp_path: Any) -> Any:
    """The embedded registry only: the steps run in the client, whichever registry it uses
    (one test goes through the API, with `make_yard` parametrized to "asgi")."""
    from modelyard import Settings, Yard

    # The operator allows the test models' classes (tests.*), which torch versions name.
    with Yard(Settings(home=tmp_path / "home", user="ana", trusted_modules=["tests"])) as yard:
        yield yard


@pytest.fixture
def single_thread() -> Iterator[None]:
    """torch on one thread for the test (see `models.one_thread`)."""
    from tests.optimize.models import one_thread

    with one_thread():
        yield
