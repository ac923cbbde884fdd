"""A local yard per test, and small tabular data sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelyard import Settings, Yard


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    # The operator allows the test models' classes (tests.*), which torch versions name.
    with Yard(Settings(home=tmp_path / "home", user="ana", trusted_modules=["tests"])) as yard:
        yield yard


@pytest.fixture(scope="session")
def binary() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
    return x, y


@pytest.fixture(scope="session")
def multiclass() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=1
    )
    return x, y


@pytest.fixture(scope="session")
def regression() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=300, n_features=6, noise=1.0, random_state=2)
    return x, y
