"""Each optimization step says what it is doing (INFO on `modelyard.optimize`), which the CLI
shows as a status line on a terminal."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Yard


def test_the_steps_are_logged_as_they_start(yard: Yard, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    version = yard.log_model(LogisticRegression().fit(x, y), name="lr", input_example=x[:2])
    caplog.set_level(logging.INFO, logger="modelyard.optimize")
    yard.optimize.convert(version.ref, eval_data=(x, y), max_slowdown=None)
    steps = [r.getMessage() for r in caplog.records if r.name == "modelyard.optimize"]
    assert steps == ["loading lr:1", "converting lr:1",
                     "measuring latency and accuracy, before and after",
                     "registering the result"]  # fmt: skip
