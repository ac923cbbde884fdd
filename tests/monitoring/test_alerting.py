"""The loop the issue asks for, against a real server process: serve v2 as production, send
drifted traffic, the rule fires, a local webhook receives the JSON, the alias moves back to v1,
the server follows, and the audit log records why."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from tests.servers import serving_process

RNG = np.random.default_rng(8)
REFERENCE = RNG.normal(size=(2000, 4)).astype(np.float32)


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def body(rows: np.ndarray) -> bytes:  # type: ignore[type-arg]
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
              "data": rows.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


def answered_by(infer: str) -> str:
    return str(httpx.post(infer, content=body(REFERENCE[:5])).json()["model_version"])


def wait_for(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_drift_fires_a_webhook_and_rolls_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with webhook_receiver() as (hook, received), Yard(Settings(home=home)) as yard:
        for seed in (1, 2):
            labels = (REFERENCE[:, seed] > 0).astype(int)
            yard.log_model(LogisticRegression().fit(REFERENCE, labels), name="fraud",
                           input_example=REFERENCE[:2], reference_data=REFERENCE,
                           alias="production")  # fmt: skip
        rules = tmp_path / "rules.yaml"
        rules.write_text(f"""
- name: fraud-drift
  model: fraud@production
  signal: drift_share
  op: ">="
  threshold: 0.5
  window: 5m
  for: 0s
  actions: [{{type: webhook, url: "{hook}"}}, {{type: rollback}}, {{type: log}}]
""")
        env = {
            "MODELYARD_SERVE_ALERT_SECONDS": "0.5",
            "MODELYARD_SERVE_POLL_SECONDS": "0.2",
            "MODELYARD_ALERT_WEBHOOKS": json.dumps([hook]),  # scheme, host, port and path
        }
        args = ("fraud@production", "--log-sample", "1", "--alerts", str(rules))
        with serving_process(home, *args, env=env) as url:
            infer = f"{url}/v2/models/fraud/infer"
            assert httpx.post(infer, content=body(REFERENCE[:5])).json()["model_version"] == "2"
            drifted = RNG.normal(size=(600, 4)).astype(np.float32) * 3 + 2
            for rows in drifted.reshape(6, 100, 4):
                assert httpx.post(infer, content=body(rows)).status_code == 200
            wait_for(lambda: received)
            wait_for(
                lambda: (
                    httpx.post(infer, content=body(REFERENCE[:5])).json()["model_version"] == "1"
                )
            )
            # Counted once the actions have run, a moment after the rollback; the state gauge
            # may already be back to inactive (the next evaluation sees version 1's quiet window).
            fired = 'modelyard_alert_firings_total{rule="fraud-drift"} 1.0'
            wait_for(lambda: fired in httpx.get(f"{url}/metrics").text)
            metrics = httpx.get(f"{url}/metrics").text
        alert = received[0]
        assert (alert["alert"], alert["state"], alert["version"]) == ("fraud-drift", "firing", "2")
        assert alert["signal"] == "drift_share" and alert["value"] >= 0.5
        assert yard.get_version("fraud@production").number == 1
        (event,) = [
            e
            for e in yard.alias_history("fraud", "production")
            if e.version == 1 and e.previous == 2
        ]
        assert event.reason.startswith("alert fraud-drift: drift_share")
        rollbacks = [e for e in yard.audit_log() if e.action == "alias.rollback"]
        assert rollbacks[-1].target == "fraud@production" and rollbacks[-1].actor
        assert rollbacks[-1].after["reason"].startswith("alert fraud-drift")
    # The gauge shows the rule's state at the last evaluation: firing (2) until the rolled-back
    # version's window is evaluated, then inactive; the firing itself is the webhook above.
    assert 'modelyard_alert_state{rule="fraud-drift"}' in metrics
    assert 'modelyard_drift_share{kind="inputs",model="fraud",version="2"}' in metrics
