"""Alert rules on the serving process's own traffic: error rate and latency."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.serving._traffic import Traffic
from tests.flavors.pyfunc_models import Picky

pytestmark = pytest.mark.anyio


def test_summary_of_a_window() -> None:
    traffic = Traffic(capacity=3)
    assert traffic.summary("m", 60) is None
    for status, seconds in [(200, 0.1), (500, 0.2), (200, 0.3), (503, 0.4)]:
        traffic.record("m", status, seconds)
    summary = traffic.summary("m", 60)
    assert summary is not None and summary.requests == 3  # the ring keeps the last three
    assert summary.error_rate == pytest.approx(2 / 3)
    assert summary.latency_p50 == pytest.approx(0.3) and summary.latency_p99 <= 0.4
    assert traffic.summary("m", 0) is None


async def test_error_rate_and_latency_rules_fire(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
- {name: errors, model: picky, signal: error_rate, threshold: 0.5, window: 1m, min_rows: 4}
- {name: slow, model: picky, signal: latency_p99, threshold: 0, window: 1m, min_rows: 4}
- {name: quiet, model: picky, signal: error_rate, threshold: 0.5, window: 1m, min_rows: 1000}
""")
    settings = Settings(home=tmp_path / "home", serve_alerts=rules)
    with Yard(settings) as yard:
        yard.log_model(Picky(), name="picky", input_example=np.ones((1, 2)))
        app = create_inference_app(settings, ["picky"], yard=yard, trust=True)
        assert app.on_startup is not None and app.on_shutdown is not None and app.alerts
        await app.on_startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            for value in (1, 2e6, 2e6, 2e6):  # past a million the model breaks: 500s
                tensor = {"name": "input-0", "shape": [1, 2], "datatype": "FP64",
                          "data": [value, value]}  # fmt: skip
                await client.post(
                    "/v2/models/picky/infer", content=orjson.dumps({"inputs": [tensor]})
                )
            assert sorted(await app.alerts.evaluate()) == ["errors", "slow"]
            text = (await client.get("/metrics")).text
        await app.on_shutdown()
    assert 'modelyard_alert_state{rule="errors"} 2.0' in text
    assert 'modelyard_alert_state{rule="quiet"} 0.0' in text
