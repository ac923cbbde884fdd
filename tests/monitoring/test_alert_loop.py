"""The alert loop over its narrow seams, without a server: a fake `AlertSource` (versions, a
rollback that records its calls), real Prometheus gauges and a fake window of traffic.
tests/monitoring/test_alerting.py runs the same loop end to end in a real server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelyard.monitoring import AlertLoop, AlertRule, MonitorReport
from modelyard.registry import ModelVersion

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Registryless:
    """Version 2 of `fraud` is production until a rollback moves it back to 1."""

    def __init__(self) -> None:
        self.production = 2
        self.rollbacks: list[tuple[str, str, str]] = []

    def version(self, number: int) -> ModelVersion:
        now = datetime.now(UTC)
        return ModelVersion(id=str(number), name="fraud", number=number, created_at=now,
                            updated_at=now)  # fmt: skip

    def get_version(self, ref: str) -> ModelVersion:
        return self.version(self.production)

    def monitor(self, ref: str, *, window: timedelta = timedelta(hours=1)) -> MonitorReport:
        raise AssertionError("traffic signals never ask for a drift report")

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> ModelVersion:
        self.rollbacks.append((name, alias, reason))
        self.production = 1
        return self.version(1)


class Gauges:
    def __init__(self) -> None:
        registry = CollectorRegistry()
        self.registry = registry
        self.alert_state = Gauge("alert_state", "", ["rule"], registry=registry)
        self.alert_firings = Counter("alert_firings", "", ["rule"], registry=registry)
        self.alert_evaluator = Gauge("alert_evaluator", "", registry=registry)
        self.drift_share = Gauge("drift_share", "", ["model", "version", "kind"], registry=registry)
        self.drift_score = Gauge("drift_score", "", ["model", "version", "column"],
                                 registry=registry)  # fmt: skip
        self.accuracy = Gauge("accuracy", "", ["model", "version"], registry=registry)
        self.log_unreadable = Gauge("log_unreadable", "", ["model", "version"], registry=registry)
        self.data_quality = Gauge("data_quality", "", ["model", "version", "column", "check"],
                                  registry=registry)  # fmt: skip
        self.multivariate_drift = Gauge("multivariate_drift", "", ["model", "version"],
                                        registry=registry)  # fmt: skip
        self.estimated_accuracy = Gauge("estimated_accuracy", "", ["model", "version"],
                                        registry=registry)  # fmt: skip
        self.sample_drift = Gauge("sample_drift", "", ["model", "version", "test", "name"],
                                  registry=registry)  # fmt: skip


@dataclass(frozen=True)
class Window:
    requests: int
    error_rate: float
    latency_p99: float


class Traffic:
    def __init__(self, window: Window | None) -> None:
        self.window = window

    def summary(self, model: str, window: float) -> Window | None:
        return self.window if model == "fraud" else None


RULE = AlertRule.model_validate({
    "name": "fraud-errors", "model": "fraud@production", "signal": "error_rate", "op": ">=",
    "threshold": 0.1, "window": "5m", "min_rows": 10, "actions": [{"type": "rollback"}],
})  # fmt: skip


async def test_a_firing_rule_rolls_back_through_the_source() -> None:
    source, gauges = Registryless(), Gauges()
    traffic = Traffic(Window(requests=50, error_rate=0.4, latency_p99=0.01))
    loop = AlertLoop([RULE], yard=source, metrics=gauges, interval=60, traffic=traffic)
    assert await loop.evaluate() == ["fraud-errors"]
    [(name, alias, reason)] = source.rollbacks
    assert (name, alias) == ("fraud", "production")
    assert reason.startswith("alert fraud-errors: error_rate = 0.4")
    assert gauges.registry.get_sample_value("alert_state", {"rule": "fraud-errors"}) == 2
    assert await loop.evaluate() == []  # firing already: the actions do not run again
    assert len(source.rollbacks) == 1


async def test_too_little_traffic_gives_no_verdict() -> None:
    source, gauges = Registryless(), Gauges()
    traffic = Traffic(Window(requests=3, error_rate=1.0, latency_p99=0.01))
    loop = AlertLoop([RULE], yard=source, metrics=gauges, interval=60, traffic=traffic)
    assert await loop.evaluate() == []
    assert source.rollbacks == []
    assert gauges.registry.get_sample_value("alert_state", {"rule": "fraud-errors"}) == 0
