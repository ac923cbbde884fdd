"""Alert rules evaluated by the serving process on a schedule: each rule's window is reported on
(drift, performance), its signal checked, its state exported, and its actions run when it starts
firing. A rollback moves the alias, which the pool then follows like any other move."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from modelyard._yard import Yard
from modelyard.monitoring import MonitorReport
from modelyard.monitoring._actions import alert_body, run_actions
from modelyard.monitoring._alerts import TRAFFIC_SIGNALS, AlertRule, RuleState, signal_value
from modelyard.serving._metrics import Metrics
from modelyard.serving._tasks import cancel
from modelyard.serving._traffic import Traffic

log = logging.getLogger("modelyard.alerts")


class AlertLoop:
    """Evaluate `rules` every `interval` seconds against what the server logged."""

    def __init__(
        self,
        rules: list[AlertRule],
        *,
        yard: Yard,
        metrics: Metrics,
        interval: float,
        traffic: Traffic | None = None,
    ) -> None:
        self.states = [RuleState(rule) for rule in rules]
        self.yard = yard
        self.metrics = metrics
        self.interval = interval
        self.traffic = traffic  # this process's recent requests, for error rate and latency
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Evaluate on the running loop from now on."""
        if self._task is None and self.states:
            self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        """Stop evaluating."""
        await cancel(self._task)
        self._task = None

    async def evaluate(self, now: datetime | None = None) -> list[str]:
        """Evaluate every rule once; the names of the rules that started firing."""
        fired = []
        reports: dict[tuple[str, timedelta], MonitorReport] = {}  # rules sharing a window
        for state in self.states:
            rule = state.rule
            try:
                value, version = await self._signal(rule, reports)
            except Exception:  # no reference, registry down: this rule waits for next time
                log.exception("alert %s: cannot evaluate", rule.name)
                continue
            if state.update(value, now):
                fired.append(rule.name)
                await self._fire(rule, state.value or 0.0, version)
            self.metrics.alert_state.labels(rule.name).set(int(state.state))
        return fired

    async def _signal(
        self, rule: AlertRule, reports: dict[tuple[str, timedelta], MonitorReport]
    ) -> tuple[float | None, str]:
        if rule.signal in TRAFFIC_SIGNALS:
            version = await asyncio.to_thread(self.yard.get_version, rule.model)
            name = rule.model.partition("@")[0]
            seconds = rule.window.total_seconds()
            summary = self.traffic.summary(name, seconds) if self.traffic is not None else None
            if summary is None or summary.requests < rule.min_rows:
                return None, str(version.number)
            return float(getattr(summary, rule.signal)), str(version.number)
        key = (rule.model, rule.window)
        if key not in reports:
            reports[key] = await asyncio.to_thread(
                self.yard.monitor, rule.model, window=rule.window
            )
            self._export(reports[key])
        return signal_value(rule, reports[key]), str(reports[key].version)

    async def _fire(self, rule: AlertRule, value: float, version: str) -> None:
        def rollback(name: str, alias: str, reason: str) -> object:
            return self.yard.rollback(name, alias, reason=reason)

        body = alert_body(rule, value, version)
        outcomes = await asyncio.to_thread(run_actions, rule, body, rollback=rollback)
        log.warning("alert %s fired (%s = %.4g): %s", rule.name, rule.signal, value,
                    "; ".join(outcomes))  # fmt: skip

    def _export(self, report: MonitorReport) -> None:
        version = str(report.version)
        for kind, drift in (("inputs", report.inputs), ("predictions", report.predictions)):
            if drift is not None:
                self.metrics.drift_share.labels(report.model, version, kind).set(drift.share)
        for column in report.inputs.columns if report.inputs is not None else ():
            self.metrics.drift_score.labels(report.model, version, column.column).set(column.score)
        if report.performance is not None and "accuracy" in report.performance.metrics:
            accuracy = report.performance.metrics["accuracy"]
            self.metrics.accuracy.labels(report.model, version).set(accuracy)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.evaluate()
