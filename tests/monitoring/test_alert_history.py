"""The alert history: events appended and read back (damaged lines skipped), the rules snapshot
replaced whole, the alert loop recording its state changes and actions through the narrow
`AlertJournal` seam, and a serving process writing both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.monitoring import (
    AlertHistory,
    AlertLoop,
    AlertRule,
    alert_folder,
    read_alert_history,
    read_alert_rules,
)
from modelyard.monitoring._alert_history import MAX_LINE_BYTES
from tests.asgi import serving
from tests.monitoring.test_alert_loop import RULE, Gauges, Registryless, Traffic, Window

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def history(tmp_path: Path) -> AlertHistory:
    return AlertHistory(alert_folder(tmp_path))


async def test_events_read_back_newest_first_with_limit_and_since(tmp_path: Path) -> None:
    journal = history(tmp_path)
    for value in range(5):
        journal.record("fraud", {"rule": "r", "event": "firing", "value": value})
    read = read_alert_history(tmp_path, "fraud", limit=3)
    assert [e["value"] for e in read.events] == [4, 3, 2] and read.damaged == 0
    assert all(e["at"].tzinfo is not None for e in read.events)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert read_alert_history(tmp_path, "fraud", since=later).events == []
    assert read_alert_history(tmp_path, "other") == read_alert_history(tmp_path, "none")


async def test_damaged_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    journal = history(tmp_path)
    journal.record("fraud", {"rule": "r", "event": "pending"})
    with open(alert_folder(tmp_path) / "fraud.jsonl", "ab") as handle:
        handle.write(b'{"rule": "torn", "ev\n[1, 2]\n{"time": "yesterday"}\n')
    journal.record("fraud", {"rule": "r", "event": "firing"})
    read = read_alert_history(tmp_path, "fraud")
    assert [e["event"] for e in read.events] == ["firing", "pending"]
    assert read.damaged == 3


async def test_lines_stay_short_whatever_the_outcomes(tmp_path: Path) -> None:
    journal = history(tmp_path)
    outcomes = ["webhook failed: " + "x" * 5000] * 50
    journal.record("fraud", {"rule": "r", "event": "actions", "outcomes": outcomes})
    line = (alert_folder(tmp_path) / "fraud.jsonl").read_bytes()
    assert len(line) <= MAX_LINE_BYTES and line.endswith(b"\n")
    (event,) = read_alert_history(tmp_path, "fraud").events
    assert event["event"] == "actions" and event["rule"] == "r"


async def test_rules_snapshot_is_replaced_whole(tmp_path: Path) -> None:
    journal = history(tmp_path)
    hooked = RULE.model_copy(update={"actions": [
        RULE.actions[0].model_copy(update={"type": "webhook", "url": "https://hooks.local/T0KEN?k=1"}),
    ]})  # fmt: skip
    journal.write_rules([RULE, hooked])
    (first, second) = read_alert_rules(tmp_path, "fraud")
    assert first["name"] == "fraud-errors" and first["window_seconds"] == 300.0
    assert second["actions"] == ["webhook https://hooks.local"]  # the token stays out
    journal.write_rules([RULE])
    assert len(read_alert_rules(tmp_path, "fraud")) == 1
    assert sorted(p.name for p in alert_folder(tmp_path).iterdir()) == ["fraud.rules.json"]
    (alert_folder(tmp_path) / "fraud.rules.json").write_bytes(b"{not json")
    assert read_alert_rules(tmp_path, "fraud") == []


class Journal:
    """The fake `AlertJournal`: keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.rules: list[AlertRule] = []

    def record(self, model: str, event: Any) -> None:
        self.events.append((model, dict(event)))

    def write_rules(self, rules: Any) -> None:
        self.rules = list(rules)


async def test_the_loop_records_state_changes_and_action_outcomes() -> None:
    journal, traffic = Journal(), Traffic(Window(requests=50, error_rate=0.5, latency_p99=0.1))
    pending = RULE.model_copy(update={"for_": timedelta(minutes=1)})
    loop = AlertLoop([pending], yard=Registryless(), metrics=Gauges(), interval=60,
                     traffic=traffic, history=journal)  # fmt: skip
    start = datetime.now(UTC)
    await loop.evaluate(start)
    await loop.evaluate(start + timedelta(seconds=30))  # still pending: nothing new
    await loop.evaluate(start + timedelta(minutes=2))
    traffic.window = Window(requests=50, error_rate=0.0, latency_p99=0.1)
    await loop.evaluate(start + timedelta(minutes=3))
    kinds = [event["event"] for _, event in journal.events]
    assert kinds == ["pending", "firing", "actions", "resolved"]
    assert {model for model, _ in journal.events} == {"fraud"}
    actions = journal.events[2][1]
    assert actions["outcomes"] == ["rolled back fraud@production"]
    assert actions["rule"] == "fraud-errors" and actions["version"] == "2"


async def test_the_loop_writes_the_rules_when_it_starts(tmp_path: Path) -> None:
    journal = Journal()
    loop = AlertLoop([RULE], yard=Registryless(), metrics=Gauges(), interval=3600,
                     history=journal)  # fmt: skip
    loop.start()
    for _ in range(100):
        if journal.rules:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    assert journal.rules == [RULE]


RNG = np.random.default_rng(8)
REFERENCE = RNG.normal(size=(500, 4)).astype(np.float32)


async def test_a_serving_process_keeps_its_rules_and_what_fired(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- {name: fraud-drift, model: fraud@production, signal: drift_share, op: '>=',"
        " threshold: 0.5, window: 5m, min_rows: 50, actions: [{type: log}]}\n"
    )
    settings = Settings(home=tmp_path / "home", serve_alerts=rules, serve_log_sample=1,
                        serve_alert_seconds=3600)  # fmt: skip
    with Yard(settings) as yard:
        labels = (REFERENCE[:, 0] > 0).astype(int)
        yard.log_model(LogisticRegression().fit(REFERENCE, labels), name="fraud",
                       input_example=REFERENCE[:2], reference_data=REFERENCE,
                       alias="production")  # fmt: skip
        drifted = RNG.normal(size=(200, 4)).astype(np.float32) * 3 + 2
        async with serving(yard, "fraud@production") as client:
            body = {"inputs": [{"name": "input-0", "shape": [200, 4], "datatype": "FP32",
                                "data": drifted.ravel().tolist()}]}  # fmt: skip
            assert (await client.post("/v2/models/fraud/infer", json=body)).status_code == 200
            home = settings.home
            await asyncio.sleep(1.2)  # the prediction log flushes every 0.5 s
            assert [r["name"] for r in read_alert_rules(home, "fraud")] == ["fraud-drift"]
            app_alerts = client._transport.app.alerts  # type: ignore[attr-defined]
            assert await app_alerts.evaluate() == ["fraud-drift"]
    events = read_alert_history(home, "fraud").events
    assert [e["event"] for e in events] == ["actions", "firing"]
    assert events[1]["value"] >= 0.5 and events[0]["outcomes"] == ["logged"]
    raw = (alert_folder(home) / "fraud.jsonl").read_bytes().splitlines()
    assert all(orjson.loads(line)["rule"] == "fraud-drift" for line in raw)
