"""Two `modelyard serve` replicas on one home with the same alert rules: one evaluates them
(`modelyard_alert_evaluator` 1 there, 0 on the other), so drifted traffic spread over both fires
one webhook and one rollback, which both follow; when the evaluator stops, the other takes over
at its next interval (the lease is released on shutdown)."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from tests.monitoring.test_alerting import REFERENCE, RNG, body, wait_for, webhook_receiver
from tests.servers import serving_process

RULES = """
- name: fraud-drift
  model: fraud@production
  signal: drift_share
  op: ">="
  threshold: 0.5
  window: 5m
  for: 0s
  actions: [{{type: webhook, url: "{hook}"}}, {{type: rollback}}]
"""


def sample(url: str, name: str) -> float:
    found = re.search(rf"^{name} ([0-9.e+-]+)$", httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def version(url: str) -> str:
    infer = f"{url}/v2/models/fraud/infer"
    return str(httpx.post(infer, content=body(REFERENCE[:5])).json()["model_version"])


def test_two_replicas_fire_once_and_hand_over(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with (
        webhook_receiver() as (hook, received),
        Yard(Settings(home=home)) as yard,
        ExitStack() as stack,
    ):
        for seed in (1, 2):
            labels = (REFERENCE[:, seed] > 0).astype(int)
            yard.log_model(LogisticRegression().fit(REFERENCE, labels), name="fraud",
                           input_example=REFERENCE[:2], reference_data=REFERENCE,
                           alias="production")  # fmt: skip
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(hook=hook))
        # A lease longer than an evaluation on a loaded machine; a clean stop hands over at once.
        env = {"MODELYARD_SERVE_ALERT_SECONDS": "0.3", "MODELYARD_SERVE_POLL_SECONDS": "0.2",
               "MODELYARD_ALERT_LEASE_SECONDS": "10",
               "MODELYARD_ALERT_WEBHOOKS": json.dumps([hook])}  # fmt: skip
        args = ("fraud@production", "--log-sample", "1", "--alerts", str(rules))
        replicas = [stack.enter_context(ExitStack()) for _ in range(2)]  # each stops on its own

        def start(i: int) -> str:
            log = tmp_path / f"replica-{i}.log"
            return replicas[i].enter_context(serving_process(home, *args, env=env, log=log))

        with ThreadPoolExecutor(2) as pool:  # both start at once: half the wait
            urls = list(pool.map(start, range(2)))
        wait_for(lambda: sum(sample(url, "modelyard_alert_evaluator") for url in urls) == 1)
        assert [version(url) for url in urls] == ["2", "2"]
        drifted = RNG.normal(size=(600, 4)).astype(np.float32) * 3 + 2
        for i, rows in enumerate(drifted.reshape(6, 100, 4)):  # spread over both
            answer = httpx.post(f"{urls[i % 2]}/v2/models/fraud/infer", content=body(rows))
            assert answer.status_code == 200
        wait_for(lambda: received)
        wait_for(lambda: [version(url) for url in urls] == ["1", "1"])
        time.sleep(1.5)  # five more intervals: nobody fires again
        firings = 'modelyard_alert_firings_total{rule="fraud-drift"}'
        assert sum(sample(url, re.escape(firings)) for url in urls) == 1
        assert len(received) == 1 and received[0]["version"] == "2"
        moves = yard.alias_history("fraud", "production")
        assert sum(1 for e in moves if (e.previous, e.version) == (2, 1)) == 1
        evaluating = [sample(url, "modelyard_alert_evaluator") for url in urls]
        holder = evaluating.index(1.0)
        replicas[holder].close()  # SIGTERM: the lease is released on the way out
        other = urls[1 - holder]
        started = time.monotonic()
        wait_for(lambda: sample(other, "modelyard_alert_evaluator") == 1, timeout=10)
        assert time.monotonic() - started < 5  # an interval or two, not a lease's lifetime
