"""The Prometheus rules pass promtool, and every metric the rules and the dashboard use is one
a live server exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.monitoring._alerts import load_rules
from modelyard.monitoring._export import grafana_dashboard, prometheus_rules
from tests.cli.test_registry import ok
from tests.conftest import service_env

RULES = """
- {name: fraud-drift, model: fraud@production, signal: drift_share, threshold: 0.5, for: 5m}
- {name: fraud-outputs, model: fraud@production, signal: prediction_drift, threshold: 0.5}
- {name: fraud-accuracy, model: fraud, signal: accuracy, op: "<", threshold: 0.8}
- {name: amount, model: fraud, signal: "column:input-0[0]", threshold: 0.3}
- {name: errors, model: fraud, signal: error_rate, threshold: 0.05, window: 5m}
- {name: slow, model: fraud, signal: latency_p99, threshold: 0.5}
"""
MORE_RULES = """
- {name: confidence, model: fraud, signal: estimated_accuracy, op: "<", threshold: 0.7}
- {name: joint, model: fraud, signal: multivariate_drift, threshold: 1}
- {name: missing, model: fraud, signal: "missing_share:input-0[0]", threshold: 0.1}
- {name: vectors, model: fraud, signal: "embedding_drift:emb", threshold: 0.95}
- {name: reviews, model: fraud, signal: "text_drift:review", threshold: 0.95}
"""


def test_rules_pass_promtool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    ok("monitor", "export", "--out", str(tmp_path / "out"), "--rules", str(tmp_path / "rules.yaml"))
    checked = subprocess.run(
        [service_env("MODELYARD_TEST_PROMTOOL"), "check", "rules",
         str(tmp_path / "out" / "prometheus-rules.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 11 rules found" in checked.stdout
    dashboard = orjson.loads((tmp_path / "out" / "grafana-dashboard.json").read_bytes())
    assert dashboard["uid"] == "modelyard" and len(dashboard["panels"]) == 13


def test_every_signal_becomes_the_metric_that_carries_it(tmp_path: Path) -> None:
    """Each signal's rule reads the series the evaluator exports for it (not a drift score of a
    column named after the signal)."""
    (tmp_path / "rules.yaml").write_text(RULES + MORE_RULES)
    rules = prometheus_rules(load_rules(tmp_path / "rules.yaml", allowed_webhooks=[]))
    expressions = {
        rule["alert"].removeprefix("Modelyard"): rule["expr"]
        for rule in rules["groups"][1]["rules"]
    }
    assert expressions["Errors"].startswith('sum(rate(modelyard_requests_total{model="fraud",code')
    assert "[300s]" in expressions["Errors"]
    assert "modelyard_request_seconds_bucket" in expressions["Slow"]
    assert expressions["Confidence"] == 'modelyard_estimated_accuracy{model="fraud"} < 0.7'
    assert expressions["Joint"] == 'modelyard_multivariate_drift{model="fraud"} >= 1.0'
    assert "modelyard_data_quality" in expressions["Missing"]
    assert expressions["Vectors"] == (
        'modelyard_sample_drift{model="fraud",test="embedding_drift",name="emb"} >= 0.95'
    )
    assert 'test="text_drift",name="review"' in expressions["Reviews"]
    assert not any("drift_score" in expression for expression in expressions.values()
                   if "column" not in expression)  # fmt: skip
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [service_env("MODELYARD_TEST_PROMTOOL"), "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.anyio
async def test_every_metric_used_is_exported(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    settings = Settings(home=tmp_path / "home", serve_log_sample=1.0, serve_alerts=rules_file)
    reference = np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32)
    with Yard(settings) as yard:
        for column in (0, 1):
            model = LogisticRegression().fit(reference, reference[:, column] > 0)
            yard.log_model(model, name="fraud", input_example=reference[:2],
                           reference_data=reference, alias="production")  # fmt: skip
        app = create_inference_app(settings, ["fraud@production"], yard=yard, shadows=["fraud:1"])
        assert app.on_startup is not None and app.on_shutdown is not None
        await app.on_startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            body = {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32",
                                "data": [0.1, 0.2, 0.3, 0.4]}]}  # fmt: skip
            answer = (await client.post("/v2/models/fraud/infer", json=body)).json()
            await client.post(
                "/v2/models/fraud/feedback", json={"id": answer["id"], "label": [1, 0]}
            )
            app.plane.log.capacity = 0  # type: ignore[union-attr]  # one dropped record, counted
            await client.post("/v2/models/fraud/infer", json=body)
            await app.plane.log.stop()  # type: ignore[union-attr]
            alerts = app.alerts
            assert alerts is not None
            await alerts.evaluate()
            exported = (await client.get("/metrics")).text
        await app.on_shutdown()
    samples = {line.split("{")[0].split(" ")[0] for line in exported.splitlines()
               if line and not line.startswith("#")}  # fmt: skip
    expressions = [panel["targets"][0]["expr"] for panel in grafana_dashboard()["panels"]]
    loaded = load_rules(rules_file, allowed_webhooks=[])
    for group in prometheus_rules(loaded)["groups"]:
        expressions += [rule["expr"] for rule in group["rules"]]
    used = {name for expression in expressions for name in re.findall(r"modelyard_\w+", expression)}
    assert used <= samples, sorted(used - samples)
    assert yaml.safe_dump(prometheus_rules(loaded))
