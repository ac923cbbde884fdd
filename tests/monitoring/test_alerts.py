from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from modelyard.errors import ConfigurationError
from modelyard.monitoring import MonitorReport
from modelyard.monitoring._actions import alert_body, run_actions
from modelyard.monitoring._alerts import AlertRule, RuleState, State, load_rules, signal_value
from modelyard.monitoring._drift import ColumnDrift, DriftReport
from modelyard.monitoring._performance import Performance

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {"name": "r", "model": "fraud@production", "signal": "drift_share",
                                 "threshold": 0.5, **changes}  # fmt: skip
    return AlertRule.model_validate(fields)


def report(share: float | None = 0.6, accuracy: float | None = None) -> MonitorReport:
    drift = None
    if share is not None:
        column = ColumnDrift(column="amount", kind="numeric", test="ks", score=0.3, p_value=0.01,
                             threshold=0.05, drifted=True)  # fmt: skip
        drift = DriftReport(columns=(column,), share=share, share_threshold=0.5,
                            drifted=share >= 0.5)  # fmt: skip
    performance = None
    if accuracy is not None:
        performance = Performance(task="classification", rows=10, metrics={"accuracy": accuracy})
    return MonitorReport(model="fraud", version=2, since=NOW, until=NOW, requests=3, rows=300,
                         inputs=drift, predictions=drift, performance=performance)  # fmt: skip


def test_rules_file_is_read_and_checked(tmp_path: Path) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text("""
- {name: a, model: fraud@production, signal: accuracy, op: "<", threshold: 0.8, window: 1h,
   for: 10m, actions: [{type: webhook, url: "https://hooks.example/x"}, {type: rollback}]}
- {name: b, model: fraud, signal: "column:amount", threshold: 0.2, window: 90}
""")
    first, second = load_rules(file, allowed_webhooks=["https://hooks.example/"])
    assert (first.window, first.for_) == (timedelta(hours=1), timedelta(minutes=10))
    assert second.window == timedelta(seconds=90) and second.actions[0].type == "log"
    with pytest.raises(ConfigurationError, match="webhook 'https://hooks.example/x' is not allow"):
        load_rules(file, allowed_webhooks=[])
    for text, message in [
        ("- {name: a, model: m, signal: vibes, threshold: 1}", "unknown signal 'vibes'"),
        ("- {name: a, model: m, signal: accuracy, threshold: 1, window: soon}", "30s, 15m"),
        ("- {name: a, model: m, signal: accuracy, threshold: 1, actions: [{type: webhook}]}",
         "needs a url"),
        ("- {name: a, model: m, signal: accuracy}", "rule 0: threshold: Field required"),
        ("name: a", "must hold a list of rules"),
        ("- [unclosed", "cannot read alert rules"),
    ]:  # fmt: skip
        file.write_text(text)
        with pytest.raises(ConfigurationError, match=message):
            load_rules(file, allowed_webhooks=[])
    with pytest.raises(ConfigurationError, match="cannot read alert rules"):
        load_rules(tmp_path / "missing.yaml", allowed_webhooks=[])


def test_signals() -> None:
    assert signal_value(rule(), report(0.6)) == 0.6
    assert signal_value(rule(signal="prediction_drift"), report(0.25)) == 0.25
    assert signal_value(rule(signal="column:amount"), report()) == 0.3
    assert signal_value(rule(signal="column:other"), report()) is None
    assert signal_value(rule(signal="accuracy"), report(accuracy=0.7)) == 0.7
    assert signal_value(rule(signal="accuracy"), report()) is None
    assert signal_value(rule(min_rows=301), report(0.6)) is None  # 300 rows: too few to judge
    empty = report(share=None)
    for signal in ("drift_share", "prediction_drift", "column:amount"):
        assert signal_value(rule(signal=signal), empty) is None


def test_pending_then_firing_once_then_resolved() -> None:
    state = RuleState(rule(**{"for": "5m"}))
    assert not state.update(0.7, NOW) and state.state is State.PENDING
    assert not state.update(0.7, NOW + timedelta(minutes=4))
    assert state.update(0.7, NOW + timedelta(minutes=5)) and state.state is State.FIRING
    assert not state.update(0.9, NOW + timedelta(minutes=6))  # fires once
    assert not state.update(0.1, NOW + timedelta(minutes=7)) and state.state is State.INACTIVE
    assert not state.update(None, NOW) and state.state is State.INACTIVE
    assert RuleState(rule()).update(0.5, NOW)  # for: 0 fires at once


def test_actions_run_in_order_and_survive_failures() -> None:
    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        return httpx.Response(503 if len(attempts) < 2 else 204)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    rolled: list[tuple[str, str, str]] = []
    firing = rule(actions=[{"type": "webhook", "url": "http://hook"}, {"type": "log"},
                           {"type": "rollback"}])  # fmt: skip
    body = alert_body(firing, 0.8, "2")
    outcomes = run_actions(firing, body, rollback=lambda *a: rolled.append(a), client=client)
    assert outcomes == ["webhook 204", "logged", "rolled back fraud@production"]
    assert len(attempts) == 2 and rolled[0][:2] == ("fraud", "production")
    assert rolled[0][2] == "alert r: drift_share = 0.8 >= 0.5"

    def broken(*args: object) -> None:
        raise RuntimeError("registry down")

    failing = rule(model="fraud", actions=[{"type": "rollback"}, {"type": "log"}])
    outcomes = run_actions(failing, body, rollback=broken)
    assert outcomes == ["rollback failed: registry down", "logged"]


def test_a_webhook_that_never_answers_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelyard.monitoring._actions.time.sleep", lambda s: None)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = httpx.Client(transport=httpx.MockTransport(down))
    firing = rule(actions=[{"type": "webhook", "url": "http://hook"}])
    outcomes = run_actions(firing, alert_body(firing, 1.0, "2"), rollback=print, client=client)
    assert outcomes == ["webhook failed after 4 attempts"]
