"""The inference server in-process: the ASGI app over real models from a real registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelyard import Settings, Yard
from modelyard.api import InferenceApp, create_inference_app
from modelyard.errors import ConfigurationError
from modelyard.serving._oip import InferenceResponse, MetadataModelResponse
from tests.asgi import serving as served_app
from tests.flavors.pyfunc_models import Picky, Spend

pytestmark = pytest.mark.anyio

X = np.arange(12, dtype=np.float32).reshape(4, 3)


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    settings = Settings(home=tmp_path / "home", serve_poll_seconds=0.05, serve_max_body_bytes=4096)
    yard = Yard(settings)
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2],
                   alias="production")  # fmt: skip
    frame = pd.DataFrame({"amount": [1.0, 2.0], "country": ["fr", "de"]})
    yard.log_model(Spend(), name="frame", input_example=frame)
    yard.log_model(Picky(), name="picky", input_example=X[:2])
    return yard


def seven() -> LinearRegression:
    """Answers 7.0 whatever the row, as float32 like `sum`: a version that may replace it."""
    return LinearRegression().fit(X, np.full(len(X), 7.0, np.float32))


@asynccontextmanager
async def serving(yard: Yard, *refs: str, **routing: Any) -> AsyncIterator[httpx.AsyncClient]:
    routing.setdefault("trust", True)
    async with served_app(yard, *refs, **routing) as client:
        yield client


def infer_body(data: Any, *, name: str = "input-0", datatype: str = "FP32", **extra: Any) -> bytes:
    array = np.asarray(data)
    tensor = {"name": name, "shape": list(array.shape), "datatype": datatype,
              "data": array.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor], **extra})


async def test_health_metadata_and_inference(yard: Yard) -> None:
    async with serving(yard, "sum@production") as client:
        assert (await client.get("/v2/health/live")).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200
        assert "binary_tensor_data" in (await client.get("/v2")).json()["extensions"]
        metadata = MetadataModelResponse.model_validate((await client.get("/v2/models/sum")).json())
        assert (metadata.platform, metadata.versions) == ("sklearn", ["1"])
        assert metadata.inputs is not None and metadata.inputs[0].shape == [-1, 3]
        assert (await client.get("/v2/models/sum/ready")).status_code == 200
        assert (await client.get("/v2/models/sum/versions/1/ready")).status_code == 200
        response = await client.post("/v2/models/sum/infer", content=infer_body(X, id="42"))
        answer = InferenceResponse.model_validate_json(response.content)
        assert (answer.model_name, answer.model_version, answer.id) == ("sum", "1", "42")
        np.testing.assert_allclose(answer.outputs[0].data.root, X.sum(axis=1), rtol=1e-5)
        pinned = await client.post("/v2/models/sum/versions/1/infer", content=infer_body(X[:1]))
        assert pinned.json()["outputs"][0]["shape"] == [1]
        assert "openapi" in (await client.get("/openapi.json")).json()


async def test_dataframe_models_take_one_input_per_column(yard: Yard) -> None:
    async with serving(yard, "frame") as client:
        body = orjson.dumps({"inputs": [
            {"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
            {"name": "country", "shape": [2], "datatype": "BYTES", "data": ["fr", "de"]},
        ]})  # fmt: skip
        response = await client.post("/v2/models/frame/infer", content=body)
        assert response.json()["outputs"][0]["data"] == [3.0, 5.0]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/sum/infer", infer_body(X, name="x"), 400, "unknown input 'x' and missing"),
        ("/v2/models/sum/infer", infer_body(X, datatype="BYTES"), 400, "must be FP32, got BYTES"),
        ("/v2/models/sum/infer", infer_body(X[:, :2]), 400, r"shape \[-1, 3\], got \[4, 2\]"),
        ("/v2/models/sum/infer", b"{", 400, "not valid JSON"),
        ("/v2/models/nope/infer", infer_body(X), 404, "model 'nope' is not served here"),
        ("/v2/models/sum/versions/9/infer", infer_body(X), 404, "version '9' of model 'sum'"),
        ("/v2/models/sum/infer", infer_body(np.zeros((2000, 3))), 413, "over the limit of 4096"),
        ("/v2/nowhere", b"", 405, "POST is not allowed"),
        ("/v2/models/sum/ready", b"", 405, "POST is not allowed"),
    ],
)
async def test_bad_requests_get_oip_errors(
    yard: Yard, path: str, body: bytes, status: int, message: str
) -> None:
    async with serving(yard, "sum@production") as client:
        response = await client.post(path, content=body)
        assert response.status_code == status
        assert list(response.json()) == ["error", "code"]
        assert __import__("re").search(message, response.json()["error"])


async def test_unknown_routes_and_versions(yard: Yard) -> None:
    async with serving(yard, "sum@production") as client:
        assert (await client.get("/v1/models")).status_code == 404
        assert (await client.get("/v2/models/sum/versions/x")).status_code == 404


async def test_a_failing_model_answers_4xx_or_500_and_the_server_goes_on(yard: Yard) -> None:
    async with serving(yard, "picky") as client:
        # The model refused the client's values (ValueError): the client's to fix, a 422.
        refused = await client.post("/v2/models/picky/infer", content=infer_body(-X))
        assert refused.status_code == 422
        assert "picky:1 failed to predict: ValueError: negative values" in refused.json()["error"]
        # The model broke (any other exception): the server's problem, a 500.
        broken = await client.post("/v2/models/picky/infer", content=infer_body(X + 2e6))
        assert broken.status_code == 500
        assert "RuntimeError: the accumulator overflowed" in broken.json()["error"]
        good = await client.post("/v2/models/picky/infer", content=infer_body(X))
        assert good.status_code == 200


async def test_requested_outputs_and_metrics(yard: Yard) -> None:
    async with serving(yard, "sum@production", "picky") as client:
        chosen = await client.post(
            "/v2/models/sum/infer", content=infer_body(X, outputs=[{"name": "nothing"}])
        )
        assert chosen.json()["outputs"] == []
        await asyncio.gather(
            *(client.post("/v2/models/sum/infer", content=infer_body(X)) for _ in range(10))
        )
        await client.post("/v2/models/sum/infer", content=infer_body(X, name="x"))
        text = (await client.get("/metrics")).text
    assert 'modelyard_requests_total{code="200",model="sum",version="1"} 11.0' in text
    assert 'modelyard_requests_total{code="400",model="sum",version="1"} 1.0' in text
    assert 'modelyard_request_seconds_count{model="sum",version="1"}' in text
    assert 'modelyard_batch_rows_count{model="sum",version="1"}' in text
    assert 'modelyard_queue_depth{model="sum",version="1"} 0.0' in text
    assert 'modelyard_loaded_versions{model="picky",version="1"} 1.0' in text


async def test_a_moved_alias_is_swapped_in(yard: Yard) -> None:
    yard.log_model(seven(), name="sum", input_example=X[:1])
    async with serving(yard, "sum@production", "sum:1") as client:
        before = await client.post("/v2/models/sum/infer", content=infer_body(X[:1]))
        assert before.json()["model_version"] == "1"
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:2")
        for _ in range(100):
            answer = (await client.post("/v2/models/sum/infer", content=infer_body(X[:1]))).json()
            if answer["model_version"] == "2":
                break
            await asyncio.sleep(0.02)
        assert answer["outputs"][0]["data"] == [7.0]
        versions = (await client.get("/v2/models/sum")).json()["versions"]
        assert versions == ["1", "2"]  # 1 stays: it is pinned by sum:1
        assert (await client.get("/v2/models/sum/versions/1/ready")).status_code == 200


async def test_not_ready_before_startup(yard: Yard) -> None:
    app: InferenceApp = create_inference_app(yard.settings, ["sum@production"], yard=yard)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        assert (await client.get("/v2/health/ready")).status_code == 503
        response = await client.post("/v2/models/sum/infer", content=infer_body(X))
        assert response.status_code == 503 and "still loading" in response.json()["error"]


async def test_canary_takes_its_share_and_says_so(yard: Yard) -> None:
    yard.log_model(seven(), name="sum", input_example=X[:1])
    async with serving(yard, "sum@production", canaries={"sum:2": 0.3}) as client:
        answers = await asyncio.gather(
            *(client.post("/v2/models/sum/infer", content=infer_body(X[:1])) for _ in range(300))
        )
        pinned = await client.post("/v2/models/sum/versions/1/infer", content=infer_body(X[:1]))
    versions = [answer.json()["model_version"] for answer in answers]
    assert 40 < versions.count("2") < 140  # 30% of 300, with room for chance
    for answer in answers:
        body = answer.json()
        expected = 7.0 if body["model_version"] == "2" else float(X[0].sum())
        assert body["outputs"][0]["data"] == pytest.approx([expected])
    assert pinned.json()["model_version"] == "1"


async def test_shadow_sees_copies_and_agreement_is_counted(yard: Yard) -> None:
    yard.log_model(seven(), name="sum", input_example=X[:1])
    yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:1])
    async with serving(yard, "sum@production", shadows=["sum:2", "sum:3"]) as client:
        for _ in range(5):
            answer = await client.post("/v2/models/sum/infer", content=infer_body(X[:2]))
            assert answer.json()["model_version"] == "1"  # never the shadow's answer
        await asyncio.sleep(0.2)
        text = (await client.get("/metrics")).text
    assert 'outcome="agree",shadow="3",version="1"} 5.0' in text
    assert 'outcome="disagree",shadow="2",version="1"} 5.0' in text


def test_bad_routing_is_refused(yard: Yard) -> None:
    with pytest.raises(ConfigurationError, match="between 0 and 1, got 1.5"):
        create_inference_app(yard.settings, ["sum"], yard=yard, canaries={"sum:1": 1.5})
    with pytest.raises(ConfigurationError, match="a candidate for 'other', which is not served"):
        create_inference_app(yard.settings, ["sum"], yard=yard, shadows=["other:1"])


async def test_a_failing_shadow_is_counted_not_felt(yard: Yard) -> None:
    yard.log_model(Picky(), name="sum", input_example=X[:1])  # answers float64: allowed below
    allowing = Yard(yard.settings.model_copy(update={"serve_allow_signature_change": True}))
    async with serving(allowing, "sum@production", shadows=["sum:2"], trust=True) as client:
        answer = await client.post("/v2/models/sum/infer", content=infer_body(-X[:2]))
        assert answer.status_code == 200
        await asyncio.sleep(0.2)
        text = (await client.get("/metrics")).text
    assert 'outcome="error",shadow="2",version="1"} 1.0' in text
    allowing.close()


async def test_answers_are_logged_with_an_id_for_feedback(yard: Yard) -> None:
    settings = yard.settings.model_copy(update={"serve_log_sample": 1.0})
    logged = Yard(settings)
    async with serving(logged, "sum@production") as client:
        answer = (await client.post("/v2/models/sum/infer", content=infer_body(X[:2]))).json()
    assert len(answer["id"]) == 32
    (day,) = (settings.home / "predictions" / "sum" / "1").iterdir()
    record = orjson.loads(day.read_bytes().splitlines()[0])
    assert record["id"] == answer["id"] and record["inputs"]["input-0"] == X[:2].tolist()
    logged.close()


async def test_swapping_back_and_forth_frees_memory(tmp_path: Path) -> None:
    import psutil
    import torch

    yard = Yard(Settings(home=tmp_path / "home", serve_poll_seconds=0.02))
    example = np.zeros((1, 2048), np.float32)
    for seed in (1, 2):
        torch.manual_seed(seed)
        big = torch.nn.Sequential(torch.nn.Linear(2048, 4096), torch.nn.Linear(4096, 1))  # 32 MiB
        yard.log_model(big, name="big", input_example=example,
                       alias="production" if seed == 1 else None)  # fmt: skip
    process = psutil.Process()
    sizes = []
    async with serving(yard, "big@production") as client:
        for i in range(8):
            target = "big:2" if i % 2 == 0 else "big:1"
            await asyncio.to_thread(yard.set_alias, "big", "production", target)
            for _ in range(200):
                answer = await client.post("/v2/models/big/infer", content=infer_body(example))
                if answer.json()["model_version"] == target[-1]:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # the old version is retired just after the swap
            sizes.append(process.memory_info().rss)
    yard.close()
    growth = (sizes[-1] - sizes[1]) / 2**20
    assert growth < 32, f"RSS grew {growth:.0f} MiB over 6 swaps of a 32 MiB model: {sizes}"
