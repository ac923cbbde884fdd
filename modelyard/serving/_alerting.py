"""Alert rules evaluated by the serving process on a schedule: each rule's window is reported on
(drift, performance), its signal checked, its state exported, and its actions run when it starts
firing. A rollback moves the alias, which the pool then follows like any other move."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from modelyard._yard import Yard
from modelyard.monitoring import MonitorReport
from modelyard.monitoring._actions import alert_body, run_actions
from modelyard.monitoring._alerts import AlertRule, RuleState, signal_value
from modelyard.serving._metrics import Metrics

log = logging.getLogger("modelyard.alerts")


class AlertLoop:
    """Evaluate `rules` every `interval` seconds against what the server logged."""

    def __init__(
        self, rules: list[AlertRule], *, yard: Yard, metrics: Metrics, interval: float
    ) -> None:
        self.states = [RuleState(rule) for rule in rules]
        self.yard = yard
        self.metrics = metrics
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Evaluate on the running loop from now on."""
        if self._task is None and self.states:
            self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        """Stop evaluating."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def evaluate(self, now: datetime | None = None) -> list[str]:
        """Evaluate every rule once; the names of the rules that started firing."""
        fired = []
        for state in self.states:
            rule = state.rule
            try:
                report = await asyncio.to_thread(self.yard.monitor, rule.model, window=rule.window)
            except Exception:  # no reference, registry down: this rule waits for next time
                log.exception("alert %s: cannot evaluate", rule.name)
                continue
            self._export(report)
            if state.update(signal_value(rule, report), now):
                fired.append(rule.name)
                await self._fire(rule, state.value or 0.0, str(report.version))
            self.metrics.alert_state.labels(rule.name).set(int(state.state))
        return fired

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
