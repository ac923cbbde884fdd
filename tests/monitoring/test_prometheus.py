"""A real Prometheus scrapes a real server and answers a query for a drift metric."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from tests.conftest import service_env
from tests.servers import free_port, serving_process

RNG = np.random.default_rng(4)
REFERENCE = RNG.normal(size=(1000, 3)).astype(np.float32)


def test_prometheus_reads_the_drift_share_back(tmp_path: Path) -> None:
    prometheus = service_env("MODELYARD_TEST_PROMETHEUS")
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(LogisticRegression().fit(REFERENCE, REFERENCE[:, 0] > 0), name="fraud",
                       input_example=REFERENCE[:2], reference_data=REFERENCE,
                       alias="production")  # fmt: skip
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- {name: drift, model: fraud@production, signal: drift_share, threshold: 0.5}"
    )
    env = {"MODELYARD_SERVE_ALERT_SECONDS": "0.5"}
    args = ("fraud@production", "--log-sample", "1", "--alerts", str(rules))
    with serving_process(home, *args, env=env) as url:
        drifted = RNG.normal(size=(300, 3)).astype(np.float32) * 2 + 3
        body = {"inputs": [{"name": "input-0", "shape": [300, 3], "datatype": "FP32",
                            "data": drifted.ravel().tolist()}]}  # fmt: skip
        assert httpx.post(f"{url}/v2/models/fraud/infer", content=orjson.dumps(body)).is_success
        port = free_port()
        target = url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        jobs = [{"job_name": "modelyard", "static_configs": [{"targets": [target]}]}]
        config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            value = _query(port, 'modelyard_drift_share{kind="inputs",model="fraud"}')
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert value >= 0.5


def _query(port: int, query: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
            result = answer.json()["data"]["result"]
            if result:
                return float(result[0]["value"][1])
        except (httpx.TransportError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, f"Prometheus never had {query}"
        time.sleep(0.5)
