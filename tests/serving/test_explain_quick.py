"""Quick explanations (tree SHAP on a few rows) are answered on the event loop; slow ones and
the first, which builds the explainer, in a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from modelyard import Settings, Yard
from modelyard.explain import Explainer, Explanation, Features
from tests.serving.test_app import infer_body
from tests.serving.test_explain_route import serving

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 3))
Y = X @ np.array([1.0, -2.0, 0.5])


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    yard = Yard(Settings(home=tmp_path / "home"))
    model = GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, Y)
    yard.log_model(model, name="gbm", input_example=X[:2], reference_data=X)
    return yard


def spy(built: Explainer, threads: list[int]) -> None:
    """Record the thread each explanation runs in (the explainer itself is left as it is)."""
    original = built.explain_rows

    def recorded(rows: Any, features: Features) -> Explanation:
        threads.append(threading.get_ident())
        return original(rows, features)

    built.explain_rows = recorded  # type: ignore[method-assign]


async def test_quick_explanations_skip_the_thread_hand_off(yard: Yard) -> None:
    loop = threading.get_ident()  # the app runs on the test's event loop
    async with serving(yard, "gbm") as (client, pool):
        first = await client.post("/v2/models/gbm/explain", content=infer_body(X[:1]))
        built = pool.get("gbm").explainers[""]
        assert built.quick(1) and not built.quick(1, within=0.0)
        threads: list[int] = []
        spy(built, threads)
        again = await client.post("/v2/models/gbm/explain", content=infer_body(X[:1]))
        assert again.content == first.content
        assert threads == [loop]
        built.row_seconds = 1.0  # as if the last call had been slow: back to a worker thread
        await client.post("/v2/models/gbm/explain", content=infer_body(X[:1]))
        assert len(threads) == 2 and threads[1] != loop
        assert built.row_seconds < 1.0  # measured again


async def test_explainers_that_take_turns_are_never_quick(yard: Yard) -> None:
    body = infer_body(X[:1], parameters={"explainer": "kernel"})
    async with serving(yard, "gbm") as (client, pool):
        assert (await client.post("/v2/models/gbm/explain", content=body)).status_code == 200
        kernel = pool.get("gbm").explainers["kernel"]
        assert kernel.row_seconds < float("inf") and not kernel.quick(1, within=1e9)
