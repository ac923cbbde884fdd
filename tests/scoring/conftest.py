"""A LocalCluster of two one-thread worker processes, started once per test module (a second
or more each), and a yard with a small regression model that has a reference profile."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import Settings, Yard

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",  # loopback only, ephemeral ports: the
        dashboard_address="127.0.0.1:0",  # scheduler serves /metrics even with no dashboard
        silence_logs=logging.ERROR,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> str:
    return str(cluster.scheduler_address)


def frame(rows: int, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Two features (`a` shifted by `shift`) and an id column the model does not take."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "a": rng.normal(size=rows) + shift,
            "b": rng.normal(size=rows),
        }
    )


def fit_model() -> Any:
    from sklearn.linear_model import LinearRegression

    data = frame(400)
    features = data[["a", "b"]]
    return LinearRegression().fit(features, 2 * features.a - features.b), features


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home")) as opened:
        yield opened


@pytest.fixture
def version(yard: Yard) -> str:
    model, features = fit_model()
    return yard.log_model(
        model, name="lin", input_example=features.head(3), reference_data=features
    ).ref
