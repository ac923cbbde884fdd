"""`POST /v2/models/{name}/explain`: the same requests as `/infer`, answered with explanations."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.serving import ModelPool
from modelyard.serving._oip import ExplanationResponse
from tests.serving.test_app import infer_body

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 3)).astype(np.float32)
Y = X @ np.array([2.0, -1.0, 0.5], dtype=np.float32)


@asynccontextmanager
async def serving(yard: Yard, *refs: str) -> AsyncIterator[tuple[httpx.AsyncClient, ModelPool]]:
    """An in-process client of the inference app for `refs`, and the app's model pool."""
    app = create_inference_app(yard.settings, list(refs), yard=yard)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            yield client, app.plane.pool
    finally:
        await app.on_shutdown()


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    settings = Settings(home=tmp_path / "home", serve_poll_seconds=0.05, serve_max_body_bytes=4096)
    yard = Yard(settings)
    boosted = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, Y)
    yard.log_model(boosted, name="gbm", input_example=X[:2], reference_data=X, alias="production")
    yard.log_model(LinearRegression().fit(X, Y), name="gbm", input_example=X[:2])  # no reference
    frame = pd.DataFrame({"amount": X[:, 0].astype(np.float64), "hour": X[:, 1] > 0})
    model = LinearRegression().fit(frame, Y)
    yard.log_model(model, name="frame", input_example=frame[:2], reference_data=frame)
    return yard


async def test_rows_are_explained_by_the_served_version(yard: Yard) -> None:
    async with serving(yard, "gbm@production", "gbm:2") as (client, pool):
        response = await client.post("/v2/models/gbm/explain", content=infer_body(X[:4], id="7"))
        assert response.status_code == 200
        answer = ExplanationResponse.model_validate_json(response.content)
        assert (answer.model_name, answer.model_version, answer.id) == ("gbm", "1", "7")
        assert (answer.explainer, answer.output, answer.classes) == ("tree", "value", None)
        assert answer.features == ["x0", "x1", "x2"]
        values = np.asarray(answer.values)
        assert values.shape == (4, 3)
        model = yard.load_model("gbm:1").native
        np.testing.assert_allclose(answer.prediction, model.predict(X[:4]))
        total = np.asarray(answer.base_value) + values.sum(axis=1)
        assert np.abs(total - np.asarray(answer.prediction)).max() <= 1e-6
        inferred = await client.post("/v2/models/gbm/infer", content=infer_body(X[:4]))
        np.testing.assert_allclose(answer.prediction, inferred.json()["outputs"][0]["data"],
                                   rtol=1e-6)  # fmt: skip
        named = await client.post(
            "/v2/models/gbm/versions/1/explain",
            content=infer_body(X[:1], parameters={"explainer": "kernel"}),
        )
        assert named.json()["explainer"] == "kernel"
        served = pool.get("gbm", "1")
        assert set(served.explainers) == {"", "kernel"}  # built once, kept for the next request
        again = await client.post("/v2/models/gbm/explain", content=infer_body(X[:4], id="7"))
        assert again.content == response.content


async def test_dataframe_models_take_one_input_per_column(yard: Yard) -> None:
    async with serving(yard, "frame") as (client, _):
        body = orjson.dumps({"inputs": [
            {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.5, -0.5]},
            {"name": "hour", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]})  # fmt: skip
        answer = (await client.post("/v2/models/frame/explain", content=body)).json()
        assert answer["features"] == ["amount", "hour"] and answer["explainer"] == "linear"
        assert "id" not in answer


BAD = [
    (infer_body(X, name="x"), "/v2/models/gbm/{}"),
    (infer_body(X, datatype="BYTES"), "/v2/models/gbm/{}"),
    (infer_body(X[:, :2]), "/v2/models/gbm/{}"),
    (b"{", "/v2/models/gbm/{}"),
    (b'{"inputs": 3}', "/v2/models/gbm/{}"),
    (infer_body(X), "/v2/models/nope/{}"),
    (infer_body(X), "/v2/models/gbm/versions/9/{}"),
    (infer_body(np.zeros((2000, 3))), "/v2/models/gbm/{}"),
]


async def test_bad_requests_get_the_answer_inference_gives(yard: Yard) -> None:
    async with serving(yard, "gbm@production") as (client, _):
        for body, path in BAD:
            inferred = await client.post(path.format("infer"), content=body)
            explained = await client.post(path.format("explain"), content=body)
            assert 400 <= explained.status_code < 500, explained.json()
            assert explained.status_code == inferred.status_code
            assert explained.json() == inferred.json()
            assert list(explained.json()) == ["error", "code"]
        assert (await client.get("/v2/models/gbm/explain")).status_code == 405


async def test_explainers_that_cannot_answer(yard: Yard) -> None:
    refusals = [
        ("1", {"explainer": "nope"}, "unknown explainer 'nope'; use one of"),
        ("1", {"explainer": 3}, "parameters.explainer must name an explainer"),
        ("1", {"explainer": "linear"}, "needs a scikit-learn linear model"),
        ("2", {}, "needs background rows and gbm:2 has none: log it with reference_data"),
    ]
    async with serving(yard, "gbm@production", "gbm:2") as (client, _):
        for version, parameters, message in refusals:
            body = infer_body(X[:2], parameters=parameters)
            response = await client.post(f"/v2/models/gbm/versions/{version}/explain", content=body)
            assert response.status_code == 400
            assert re.search(message, response.json()["error"])
