"""Monitoring a served version end to end in-process: a reference logged with the version,
traffic through the inference app with the prediction log on, then a drift report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.errors import NotFound, UntrustedModel
from modelyard.monitoring import read_reference, read_window

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(11)
REFERENCE = RNG.normal(size=(3000, 4)).astype(np.float32)
LABELS = (REFERENCE[:, 0] > 0).astype(int)


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    settings = Settings(home=tmp_path / "home", serve_log_sample=1.0)
    yard = Yard(settings)
    model = LogisticRegression().fit(REFERENCE, LABELS)
    yard.log_model(model, name="fraud", input_example=REFERENCE[:2], reference_data=REFERENCE,
                   alias="production")  # fmt: skip
    return yard


async def send(yard: Yard, batches: list[np.ndarray]) -> None:  # type: ignore[type-arg]
    app = create_inference_app(yard.settings, ["fraud@production"], yard=yard)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        for batch in batches:
            body = {"inputs": [{"name": "input-0", "shape": list(batch.shape),
                                "datatype": "FP32", "data": batch.ravel().tolist()}]}  # fmt: skip
            assert (
                await client.post("/v2/models/fraud/infer", content=orjson.dumps(body))
            ).is_success
    await app.on_shutdown()


async def test_drifted_traffic_is_reported_column_by_column(yard: Yard) -> None:
    shifted = RNG.normal(size=(2000, 4)).astype(np.float32)
    shifted[:, 0] += 1.5  # the feature the model leans on: predictions drift too
    await send(yard, list(shifted.reshape(20, 100, 4)))
    report = yard.monitor("fraud@production", window=timedelta(minutes=5))
    assert (report.requests, report.rows) == (20, 2000)
    assert report.inputs is not None and report.predictions is not None
    drifted = {c.column for c in report.inputs.columns if c.drifted}
    assert "input-0[0]" in drifted and len(drifted) <= 2
    assert report.predictions.drifted and report.drifted


async def test_traffic_like_the_reference_is_not_drift(yard: Yard) -> None:
    same = RNG.normal(size=(2000, 4)).astype(np.float32)
    await send(yard, list(same.reshape(10, 200, 4)))
    report = yard.monitor("fraud@production", window=timedelta(minutes=5))
    assert report.inputs is not None and not report.inputs.drifted
    assert not report.drifted


def test_an_empty_window_and_a_version_without_reference(yard: Yard, tmp_path: Path) -> None:
    report = yard.monitor("fraud", window=timedelta(minutes=5))
    assert (report.requests, report.inputs, report.predictions) == (0, None, None)
    yard.log_model(LogisticRegression().fit(REFERENCE, LABELS), name="plain")
    with pytest.raises(NotFound, match="plain:1 has no reference profile: log it with"):
        yard.monitor("plain")


def test_references_from_a_dataframe_and_a_folder(yard: Yard, tmp_path: Path) -> None:
    frame = pd.DataFrame({"amount": RNG.random(200), "country": ["fr", "de"] * 100})
    from tests.flavors.pyfunc_models import Spend

    version = yard.log_model(Spend(), name="spend", input_example=frame[:2], reference_data=frame)
    folder = yard.load_model(version.ref, trust=True).folder
    reference = read_reference(folder)
    assert reference is not None
    assert set(reference[0].columns) == {"amount", "country"}
    assert set(reference[1].columns) == {"output-0"}
    with pytest.raises(UntrustedModel):  # its stored code is not run to profile predictions
        yard.log_model(folder, name="spend", reference_data=frame[:50])
    sklearn_folder = yard.load_model("fraud").folder
    again = yard.log_model(sklearn_folder, name="copy", reference_data=REFERENCE[:100])
    copied = read_reference(yard.load_model(again.ref).folder)
    assert copied is not None and copied[0].rows == 100
    original = read_reference(sklearn_folder)  # the caller's folder is left as it was
    assert original is not None and original[0].rows == len(REFERENCE)


def test_windows_select_by_time(tmp_path: Path) -> None:
    folder = tmp_path / "fraud" / "1"
    folder.mkdir(parents=True)
    now = datetime.now(UTC)
    lines = [
        {"time": (now - timedelta(hours=h)).isoformat(), "inputs": {"x": [[h, h]]},
         "outputs": {"y": [h]}}
        for h in (0.1, 2, 30)
    ]  # fmt: skip
    for line in lines:
        day = datetime.fromisoformat(str(line["time"])).date().isoformat()
        with open(folder / f"{day}.jsonl", "ab") as handle:
            handle.write(orjson.dumps(line) + b"\n")
    inputs, outputs, requests = read_window(tmp_path, "fraud", "1",
                                            since=now - timedelta(hours=3), until=now)  # fmt: skip
    assert requests == 2
    assert sorted(inputs["x[0]"].tolist()) == [0.1, 2.0] and sorted(outputs["y"]) == [0.1, 2.0]


async def test_feedback_through_the_server_gives_real_performance(yard: Yard) -> None:
    app = create_inference_app(yard.settings, ["fraud@production"], yard=yard)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    batch = RNG.normal(size=(50, 4)).astype(np.float32)
    body = {"inputs": [{"name": "input-0", "shape": [50, 4], "datatype": "FP32",
                        "data": batch.ravel().tolist()}]}  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        answer = (await client.post("/v2/models/fraud/infer", content=orjson.dumps(body))).json()
        truth = (batch[:, 0] > 0).astype(int).tolist()
        stored = await client.post("/v2/models/fraud/feedback",
                                   json={"id": answer["id"], "label": truth})  # fmt: skip
        assert stored.json() == {"stored": 1}
        unknown = await client.post("/v2/models/nope/feedback", json={"id": "x", "label": 1})
        assert unknown.status_code == 404
        bad = await client.post("/v2/models/fraud/feedback", json={"label": 1})
        assert bad.status_code == 400 and "needs a string id" in bad.json()["error"]
        metrics = (await client.get("/metrics")).text
    await app.on_shutdown()
    assert 'modelyard_feedback_total{model="fraud"} 1.0' in metrics
    yard.log_feedback("fraud", "not-a-request", 1)  # joins nothing, harms nothing
    report = yard.monitor("fraud", window=timedelta(minutes=5))
    assert report.performance is not None and report.performance.rows == 50
    predicted = np.asarray(answer["outputs"][0]["data"])
    expected = np.mean(predicted == np.asarray(truth))
    assert report.performance.metrics["accuracy"] == pytest.approx(expected)


def test_confidence_gives_an_accuracy_estimate_before_labels() -> None:
    from modelyard.monitoring._reports import estimated_accuracy

    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    outputs = {"output-0[0]": probabilities[:, 0], "output-0[1]": probabilities[:, 1]}
    assert estimated_accuracy(outputs) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert estimated_accuracy({"output-0": np.array([0, 1, 1])}) is None
    assert estimated_accuracy({"x[0]": np.array([2.0]), "x[1]": np.array([3.0])}) is None
    assert estimated_accuracy({"x[0]": np.array([0.5])}) is None


async def test_a_probability_model_reports_its_estimated_accuracy(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path / "home", serve_log_sample=1.0))
    model = LogisticRegression().fit(REFERENCE, LABELS)
    yard.log_model(model, name="fraud", input_example=REFERENCE[:2], reference_data=REFERENCE,
                   options={"method": "predict_proba"}, alias="production")  # fmt: skip
    batch = RNG.normal(size=(300, 4)).astype(np.float32)
    await send(yard, [batch])
    report = yard.monitor("fraud", window=timedelta(minutes=5))
    expected = model.predict_proba(batch).max(axis=1).mean()
    assert report.estimated_accuracy == pytest.approx(expected, rel=1e-5)
    yard.close()
